/**
 * Compression plans and layer codecs on the wire (phalanx.v1.CompressionPlan, LayerSetting, Encoding), mapped in
 * one place. A plan read from the wire is checked against the job's layout before anyone uses it.
 */
import type { CompressionPlan as WirePlan } from '../gen/phalanx/v1/CompressionPlan.ts';
import type { Encoding__Output } from '../gen/phalanx/v1/Encoding.ts';
import type { LayerSetting as WireSetting } from '../gen/phalanx/v1/LayerSetting.ts';
import {
  checkPlan,
  type CompressionPlan,
  type CompressorKind,
  type FactorEncoding,
  type LayerSetting,
  type ValueEncoding,
} from '../core/compression/compressionPlan.ts';
import type { ParameterLayout } from '../core/layout/parameterLayout.ts';

const KIND_TO_WIRE: Record<CompressorKind, Encoding__Output> = {
  fp32: 'ENCODING_FP32',
  bf16: 'ENCODING_BF16',
  topk: 'ENCODING_TOPK_VARINT_BF16',
  randk: 'ENCODING_RANDK',
  qsgd: 'ENCODING_QSGD_PACKED',
  powersgd: 'ENCODING_POWERSGD_FACTORS',
};

/** The Encoding a layer under `kind` is sent in (GradientChunk.encoding). */
export function layerEncoding(kind: CompressorKind): Encoding__Output {
  return KIND_TO_WIRE[kind];
}

/** The codec of a GradientChunk.encoding, or undefined. */
export function kindOfEncoding(wire: string | number | undefined): CompressorKind | undefined {
  for (const [kind, w] of Object.entries(KIND_TO_WIRE)) if (w === wire) return kind as CompressorKind;
  return undefined;
}

const FACTOR_TO_WIRE: Record<FactorEncoding, Encoding__Output> = {
  fp32: 'ENCODING_FP32',
  bf16: 'ENCODING_BF16',
  int8: 'ENCODING_INT8_CODES',
  int4: 'ENCODING_INT4_CODES',
};

function factorValuesOf(wire: string | number | undefined): FactorEncoding | undefined {
  for (const [values, w] of Object.entries(FACTOR_TO_WIRE)) if (w === wire) return values as FactorEncoding;
  return undefined;
}

/** Scalar values (topk, randk): the factor encodings that are not integer codes. */
function valuesOf(wire: string | number | undefined): ValueEncoding | undefined {
  const v = factorValuesOf(wire);
  return v === 'fp32' || v === 'bf16' ? v : undefined;
}

export function planToWire(plan: CompressionPlan): WirePlan {
  return {
    planId: plan.planId,
    layers: plan.layers.map((s): WireSetting => {
      const out: WireSetting = { encoding: KIND_TO_WIRE[s.kind] };
      if (s.kind === 'topk' || s.kind === 'randk')
        Object.assign(out, { k: s.k, values: KIND_TO_WIRE[s.values] });
      if (s.kind === 'powersgd') Object.assign(out, { rank: s.rank, values: FACTOR_TO_WIRE[s.values] });
      if (s.kind === 'qsgd') Object.assign(out, { bits: s.bits, bucket: s.bucket });
      return out;
    }),
  };
}

/** The plan a GetRound answer carries, checked against the layout (throws an Error saying what is wrong). */
export function planFromWire(
  wire: { planId?: string; layers?: WireSetting[] } | null | undefined,
  layout: ParameterLayout,
): CompressionPlan {
  if (!wire) throw new Error('the coordinator sent no compression plan for a compressed job');
  const layers = (wire.layers ?? []).map((w, l): LayerSetting => {
    const kind = kindOfEncoding(w.encoding);
    const values = valuesOf(w.values);
    switch (kind) {
      case 'fp32':
      case 'bf16':
        return { kind };
      case 'topk':
      case 'randk':
        if (!values) break;
        return { kind, k: w.k ?? 0, values };
      case 'powersgd': {
        const factors = factorValuesOf(w.values);
        if (!factors) break;
        return { kind, rank: w.rank ?? 0, values: factors };
      }
      case 'qsgd':
        return { kind, bits: w.bits ?? 0, bucket: w.bucket ?? 0 };
      default:
        break;
    }
    throw new Error(`plan ${wire.planId}: layer ${l} has an unknown setting ${JSON.stringify(w)}`);
  });
  const plan: CompressionPlan = { planId: wire.planId ?? '', layers };
  checkPlan(plan, layout);
  return plan;
}
