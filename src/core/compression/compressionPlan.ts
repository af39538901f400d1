/**
 * A compression plan: one setting per layer of the parameter layout, issued by the coordinator under a planId.
 * Every byte count the validator enforces is a function of (setting, layer shape) only — never of a message.
 *
 * Matrix view of a tensor (PowerSGD): the layout stores tfjs shapes, so a dense kernel is [in, out] and a conv
 * kernel [kh, kw, in, out]; both are read row-major as rows = product of all dimensions but the last, cols = the
 * last (out). That is the transpose of PyTorch's [out, in·kh·kw] flattening, with the same rank structure.
 */
import type { LayerSlot, ParameterLayout } from '../layout/parameterLayout.ts';
import { CodecError } from './codecError.ts';
import { codeBits, factorCodeBytes } from './factorCodes.ts';
import { valueWidth, type ValueEncoding } from './valueCodec.ts';
import { MAX_VARINT_BYTES, varintLength } from './varint.ts';

export type { ValueEncoding } from './valueCodec.ts';

/**
 * PowerSGD factor values: fp32/bf16 scalars, or 8-/4-bit integer codes with one fp32 scale per factor column
 * (factorCodes.ts).
 */
export type FactorEncoding = ValueEncoding | 'int8' | 'int4';

export const FACTOR_ENCODINGS: readonly FactorEncoding[] = ['fp32', 'bf16', 'int8', 'int4'];

export type CompressorKind = 'fp32' | 'bf16' | 'topk' | 'randk' | 'qsgd' | 'powersgd';

export type LayerSetting =
  | { kind: 'fp32' }
  | { kind: 'bf16' }
  | { kind: 'topk'; k: number; values: ValueEncoding }
  | { kind: 'randk'; k: number; values: ValueEncoding }
  | { kind: 'qsgd'; bits: number; bucket: number }
  | { kind: 'powersgd'; rank: number; values: FactorEncoding };

export interface CompressionPlan {
  planId: string;
  layers: LayerSetting[];
}

/** Bounds a plan must respect (what a worker can be asked to send, what the coordinator will accept). */
export const PLAN_LIMITS = {
  minBits: 2,
  maxBits: 8,
  maxBucket: 1 << 20,
  maxRank: 1024,
};

export interface MatrixShape {
  rows: number;
  cols: number;
}

/** Row-major matrix view of a tensor shape, or null for a 1-D tensor (sent uncompressed). */
export function matrixShape(shape: readonly number[]): MatrixShape | null {
  if (shape.length < 2) return null;
  const cols = shape[shape.length - 1];
  let rows = 1;
  for (let i = 0; i < shape.length - 1; i++) rows *= shape[i];
  return { rows, cols };
}

function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** k for a density: round(density·numel), at least 1 and at most numel. */
export function kFromDensity(density: number, numel: number): number {
  return Math.max(1, Math.min(numel, Math.round(density * numel)));
}

/** Throws CodecError('invalid-setting') unless `setting` is well formed for a layer of this shape. */
export function checkSetting(setting: LayerSetting, shape: readonly number[], where = 'layer'): void {
  const numel = numelOf(shape);
  const bad = (what: string) => new CodecError('invalid-setting', `${where}: ${setting.kind} ${what}`);
  const isInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v);
  switch (setting.kind) {
    case 'fp32':
    case 'bf16':
      return;
    case 'topk':
    case 'randk':
      if (!isInt(setting.k) || setting.k < 1 || setting.k > numel)
        throw bad(`k = ${setting.k} outside [1, ${numel}]`);
      if (setting.values !== 'fp32' && setting.values !== 'bf16') throw bad(`values '${setting.values}'`);
      return;
    case 'qsgd':
      if (!isInt(setting.bits) || setting.bits < PLAN_LIMITS.minBits || setting.bits > PLAN_LIMITS.maxBits)
        throw bad(`bits = ${setting.bits} outside [${PLAN_LIMITS.minBits}, ${PLAN_LIMITS.maxBits}]`);
      if (!isInt(setting.bucket) || setting.bucket < 1 || setting.bucket > PLAN_LIMITS.maxBucket)
        throw bad(`bucket = ${setting.bucket} outside [1, ${PLAN_LIMITS.maxBucket}]`);
      return;
    case 'powersgd': {
      const m = matrixShape(shape);
      if (m === null) throw bad(`on a 1-D tensor (send it as fp32)`);
      const maxRank = Math.min(m.rows, m.cols, PLAN_LIMITS.maxRank);
      if (!isInt(setting.rank) || setting.rank < 1 || setting.rank > maxRank)
        throw bad(`rank = ${setting.rank} outside [1, ${maxRank}]`);
      if (!FACTOR_ENCODINGS.includes(setting.values)) throw bad(`values '${setting.values}'`);
      return;
    }
    default:
      throw new CodecError(
        'invalid-setting',
        `${where}: unknown kind '${(setting as { kind: string }).kind}'`,
      );
  }
}

export interface ByteBounds {
  min: number;
  max: number;
}

/**
 * Wire bytes of one layer: exact (min = max) for every codec except topk, whose varint index section takes
 * between 1 and varintLength(numel) bytes per index.
 */
export function layerByteBounds(setting: LayerSetting, shape: readonly number[]): ByteBounds {
  const numel = numelOf(shape);
  switch (setting.kind) {
    case 'fp32':
      return exact(4 * numel);
    case 'bf16':
      return exact(2 * numel);
    case 'topk': {
      const values = setting.k * valueWidth(setting.values);
      return {
        min: values + setting.k,
        max: values + setting.k * Math.min(MAX_VARINT_BYTES, varintLength(numel)),
      };
    }
    case 'randk':
      return exact(setting.k * valueWidth(setting.values));
    case 'qsgd':
      return exact(qsgdBytes(numel, setting.bits, setting.bucket));
    case 'powersgd': {
      const m = matrixShape(shape);
      if (m === null) throw new CodecError('invalid-setting', 'powersgd on a 1-D tensor');
      return exact(powerSgdBytes(m, setting.rank, setting.values));
    }
  }
}

/** PowerSGD: P̂ (rows × r) then Q' (cols × r), as scalars or as integer codes with per-column scales. */
export function powerSgdBytes(m: MatrixShape, rank: number, values: FactorEncoding): number {
  const bits = codeBits(values);
  if (bits !== null) return factorCodeBytes(m.rows, rank, bits) + factorCodeBytes(m.cols, rank, bits);
  return rank * (m.rows + m.cols) * valueWidth(values as ValueEncoding);
}

/** QSGD: one fp32 scale per bucket, then numel codes of `bits` bits, packed, padded to a whole byte. */
export function qsgdBytes(numel: number, bits: number, bucket: number): number {
  return 4 * Math.ceil(numel / bucket) + Math.ceil((numel * bits) / 8);
}

/**
 * Expected wire bytes of a layer, for the planner's size table: exact where the size is fixed; for topk, the
 * varint length of the mean gap numel/k per index (random supports; real supports cluster and come out smaller).
 */
export function expectedLayerBytes(setting: LayerSetting, shape: readonly number[]): number {
  if (setting.kind !== 'topk') return layerByteBounds(setting, shape).min;
  const numel = numelOf(shape);
  return setting.k * (valueWidth(setting.values) + varintLength(Math.ceil(numel / setting.k)));
}

function exact(n: number): ByteBounds {
  return { min: n, max: n };
}

export interface PlanBytes {
  perLayer: ByteBounds[];
  total: ByteBounds;
}

/**
 * Validate a plan against a layout and return the byte bounds of every layer and of the whole push; a plan
 * whose largest push exceeds `maxTotalBytes` is refused ('too-large'), so the coordinator's per-push memory is
 * bounded before any worker sends anything.
 */
export function planBytes(
  plan: CompressionPlan,
  layout: ParameterLayout,
  maxTotalBytes = Infinity,
): PlanBytes {
  checkPlan(plan, layout);
  const perLayer = plan.layers.map((s, i) => layerByteBounds(s, layout.layers[i].shape));
  const total = perLayer.reduce((t, b) => ({ min: t.min + b.min, max: t.max + b.max }), { min: 0, max: 0 });
  if (total.max > maxTotalBytes) {
    throw new CodecError(
      'too-large',
      `plan ${plan.planId}: pushes of up to ${total.max} bytes exceed ${maxTotalBytes}`,
    );
  }
  return { perLayer, total };
}

/** Throws CodecError('invalid-setting') unless the plan has one valid setting per layer of the layout. */
export function checkPlan(plan: CompressionPlan, layout: ParameterLayout): void {
  if (typeof plan.planId !== 'string' || plan.planId.length === 0)
    throw new CodecError('invalid-setting', 'plan: empty planId');
  if (plan.layers.length !== layout.layers.length) {
    throw new CodecError(
      'invalid-setting',
      `plan: ${plan.layers.length} settings for ${layout.layers.length} layers`,
    );
  }
  plan.layers.forEach((s, i) =>
    checkSetting(s, layout.layers[i].shape, `plan layer ${i} (${layout.layers[i].name})`),
  );
}

/** PowerSGD compresses a matrix only if rank·(rows + cols)·MIN_COMPRESSION_RATE < rows·cols. */
export const MIN_COMPRESSION_RATE = 2;

/**
 * The setting a uniform baseline gives one layer: PowerSGD applies to matrices it shrinks at least
 * MIN_COMPRESSION_RATE-fold (vectors and small matrices go fp32, and stay out of the L-GreCo adaptation);
 * topk/randk densities become a k for the layer.
 */
export type UniformSetting =
  | { kind: 'fp32' }
  | { kind: 'bf16' }
  | { kind: 'topk'; density: number; values: ValueEncoding }
  | { kind: 'randk'; density: number; values: ValueEncoding }
  | { kind: 'qsgd'; bits: number; bucket: number }
  | { kind: 'powersgd'; rank: number; values: FactorEncoding };

export function settingForLayer(u: UniformSetting, slot: LayerSlot): LayerSetting {
  switch (u.kind) {
    case 'topk':
    case 'randk':
      return { kind: u.kind, k: kFromDensity(u.density, slot.size), values: u.values };
    case 'powersgd': {
      const m = matrixShape(slot.shape);
      // as PyTorch's PowerSGD: compress only if the factors hold fewer than half the matrix's numbers
      if (m === null || u.rank * (m.rows + m.cols) * MIN_COMPRESSION_RATE >= m.rows * m.cols)
        return { kind: 'fp32' };
      return { kind: 'powersgd', rank: u.rank, values: u.values };
    }
    default:
      return { ...u };
  }
}

export function uniformPlan(planId: string, u: UniformSetting, layout: ParameterLayout): CompressionPlan {
  return { planId, layers: layout.layers.map((slot) => settingForLayer(u, slot)) };
}

/** Same kind and parameters? */
export function sameSetting(a: LayerSetting, b: LayerSetting): boolean {
  if (a.kind !== b.kind) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  return ['k', 'values', 'bits', 'bucket', 'rank'].every((f) => x[f] === y[f]);
}

/** Short human description, for error messages and reports: "powersgd rank 4 bf16", "qsgd 4 bits / 128". */
export function describeSetting(s: LayerSetting): string {
  switch (s.kind) {
    case 'fp32':
    case 'bf16':
      return s.kind;
    case 'topk':
    case 'randk':
      return `${s.kind} k ${s.k} ${s.values}`;
    case 'qsgd':
      return `qsgd ${s.bits} bits / ${s.bucket}`;
    case 'powersgd':
      return `powersgd rank ${s.rank} ${s.values}`;
  }
}
