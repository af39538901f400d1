/**
 * One entry point per side for a layer under a plan setting.
 *
 * Worker: encodeLayer compensates the gradient with the layer's error-feedback memory, encodes it, decodes its
 * own bytes and keeps the residual — the error feedback therefore always matches the bytes that left.
 * Coordinator: validateAndDecodeLayer checks the bytes against the plan (never against anything the message
 * claims) and decodes them into the caller's preallocated slice. On CodecError nothing outside `dst` has been
 * written; `dst` itself is unspecified (the sparse and quantised codecs validate fully before writing, the dense
 * and PowerSGD ones check finiteness of what they wrote).
 */
import { deriveSeed } from '../random.ts';
import { CodecError } from './codecError.ts';
import {
  checkSetting,
  describeSetting,
  layerByteBounds,
  matrixShape,
  type LayerSetting,
} from './compressionPlan.ts';
import type { CodecWorkspace } from './codecWorkspace.ts';
import { decodeDenseInto, denseBytes } from './denseCodec.ts';
import type { LayerMemory } from './errorFeedback.ts';
import { initPowerSgdState, powerSgdDecode, powerSgdEncode } from './powerSgd.ts';
import { qsgdDecode, qsgdEncode } from './qsgd.ts';
import { randkDecode, randkEncode, randkIndices } from './randk.ts';
import { topkDecode, topkEncode } from './topk.ts';

export interface EncodeContext {
  /** Coordinator-issued seed of this (round, layer): randk coordinates, PowerSGD's initial Q. */
  sharedSeed: number;
  /** The worker's own seed of this (round, layer): QSGD's stochastic rounding. */
  privateSeed: number;
}

function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Encode one layer's gradient g under `setting` into `out` (capacity ≥ layerByteBounds(...).max) and update the
 * layer's error-feedback memory. Returns the number of bytes written. Throws CodecError('non-finite') if g + e
 * holds NaN or ±Inf, leaving the memory as it was.
 */
export function encodeLayer(
  setting: LayerSetting,
  shape: readonly number[],
  gradient: Float32Array,
  memory: LayerMemory,
  out: Uint8Array,
  ctx: EncodeContext,
  ws: CodecWorkspace,
): number {
  checkSetting(setting, shape);
  const numel = numelOf(shape);
  const capacity = layerByteBounds(setting, shape).max;
  if (out.length < capacity) {
    throw new RangeError(
      `encodeLayer: output of ${out.length} bytes, ${setting.kind} needs up to ${capacity}`,
    );
  }
  const p = memory.compensate(gradient.subarray(0, numel));
  // A non-finite p has no meaningful encoding (qsgd's max-scale would skip a NaN and send zeros, topk's
  // selection is undefined): refuse it before anything is written or the memory moves.
  for (let i = 0; i < numel; i++) {
    if (!Number.isFinite(p[i]))
      throw new CodecError(
        'non-finite',
        `${describeSetting(setting)}: the error-compensated gradient is ${p[i]} at element ${i}`,
      );
  }
  let written: number;
  switch (setting.kind) {
    case 'fp32':
    case 'bf16': {
      const bytes = denseBytes(p, 0, numel, setting.kind);
      out.set(bytes);
      written = bytes.length;
      break;
    }
    case 'topk':
      written = topkEncode(p, setting.k, setting.values, out, ws.floats(numel));
      break;
    case 'randk': {
      const idx = sharedRandk(ctx.sharedSeed, numel, setting.k, ws);
      written = randkEncode(p, idx, setting.k, setting.values, out);
      break;
    }
    case 'qsgd':
      written = qsgdEncode(p, setting.bits, setting.bucket, ctx.privateSeed, out);
      break;
    case 'powersgd': {
      const m = matrixShape(shape)!;
      let state = memory.powerSgd;
      if (state === null || state.rank !== setting.rank || state.q.length !== m.cols * setting.rank) {
        state = initPowerSgdState(m.cols, setting.rank, deriveSeed(ctx.sharedSeed, 0x50535344));
        memory.powerSgd = state;
      }
      const scratch = ws.powerSgd(m.rows * setting.rank, m.cols * setting.rank);
      written = powerSgdEncode(p, m.rows, m.cols, state, setting.values, out, scratch);
      break;
    }
  }
  validateAndDecodeLayer(setting, shape, out.subarray(0, written), memory.decoded, ctx.sharedSeed, ws);
  memory.absorbResidual();
  return written;
}

/**
 * Validate `bytes` against the plan's setting for a layer of this shape, then decode into dst[0, numel).
 * `sharedSeed` is the coordinator's seed of this (round, layer) (randk only). Throws CodecError.
 */
export function validateAndDecodeLayer(
  setting: LayerSetting,
  shape: readonly number[],
  bytes: Uint8Array,
  dst: Float32Array,
  sharedSeed: number,
  ws: CodecWorkspace,
): void {
  checkSetting(setting, shape);
  const numel = numelOf(shape);
  if (dst.length < numel) throw new RangeError(`decode: destination of ${dst.length} < numel ${numel}`);
  const bounds = layerByteBounds(setting, shape);
  if (bounds.min === bounds.max && bytes.length !== bounds.min) {
    throw new CodecError(
      'wrong-length',
      `${describeSetting(setting)}: ${bytes.length} bytes, the plan implies ${bounds.min}`,
    );
  }
  if (bytes.length > bounds.max) {
    throw new CodecError(
      'too-large',
      `${describeSetting(setting)}: ${bytes.length} bytes, the plan allows at most ${bounds.max}`,
    );
  }
  const out = dst.length === numel ? dst : dst.subarray(0, numel);
  switch (setting.kind) {
    case 'fp32':
    case 'bf16': {
      const bad = decodeDenseInto(bytes, out, 0, setting.kind);
      if (bad >= 0) throw new CodecError('non-finite', `${setting.kind}: element ${bad} is not finite`);
      return;
    }
    case 'topk':
      topkDecode(bytes, setting.k, setting.values, out, ws.indices(setting.k));
      return;
    case 'randk':
      randkDecode(bytes, sharedRandk(sharedSeed, numel, setting.k, ws), setting.k, setting.values, out);
      return;
    case 'qsgd':
      qsgdDecode(bytes, setting.bits, setting.bucket, out);
      return;
    case 'powersgd': {
      const m = matrixShape(shape)!;
      const factors = ws.floats(setting.rank * (m.rows + m.cols));
      powerSgdDecode(bytes, m.rows, m.cols, setting.rank, setting.values, out, factors);
      return;
    }
  }
}

function sharedRandk(seed: number, numel: number, k: number, ws: CodecWorkspace): Uint32Array {
  return ws.randkIndices(seed, numel, k, (o) => randkIndices(seed, numel, k, o, ws.bitset(numel)));
}
