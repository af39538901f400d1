/**
 * The E table of L-GreCo: the squared error ‖p − decode(encode(p))‖² each candidate setting would make on a
 * layer's error-compensated gradient p = g + e, measured on the worker (expectations where the codec is random):
 *   fp32: 0; bf16: Σ (x − bf16(x))²;
 *   topk k: Σ of the squares below the k largest magnitudes + the value rounding of the k kept (exact);
 *   randk k: E over the coordinate draw = (1 − k/n)‖p‖² + (k/n)·Σ rounding (exact expectation);
 *   qsgd: E over the rounding = Σ u²·f(1 − f), u = scale/s, f the fractional level of each element (exact);
 *   powersgd r: ‖M‖² − ‖P̂ᵀM‖² after `iterations` subspace iterations from a seeded Gaussian Q (L-GreCo's
 *   'Power' estimate). Gram–Schmidt is triangular, so the first r columns of one rank-R run are exactly a
 *   rank-r run: every rank comes from one run at the largest rank. With integer factor codes (int8/int4) the
 *   error is exact for those factors: P̂ read back from its codes, Q' = MᵀP̂ read back from its own, and
 *   E = ‖M − P̂Q'ᵀ‖² = ‖M‖² − 2⟨Q', MᵀP̂⟩ + ⟨P̂ᵀP̂, Q'ᵀQ'⟩, prefix by prefix (codes are per column). fp32/bf16
 *   factors are counted as exact: their rounding is ~2⁻⁹ of an entry, far below the rank tail.
 *
 * Two error models (the job's `compression.errorModel`) say which vector the table is measured on and what it
 * counts:
 *   step:     E = the one-round error above, on p = g + e (L-GreCo's statistic);
 *   feedback: E = the squared error-feedback memory the setting would settle at, from its contraction on the
 *             fresh gradient g alone (feedbackErrors); the job default.
 * The step model's p carries the memory the current plan left behind, so a layer the plan starved looks costly
 * at the next re-plan and one it fed looks cheap, and plans can swing between the two. The feedback model's
 * table depends on the gradient only, and it prices a setting by what error feedback pays for it over time.
 */
import type { ParameterLayout } from '../layout/parameterLayout.ts';
import { Rng } from '../random.ts';
import { matrixShape, type LayerSetting } from './compressionPlan.ts';
import { codeBits, factorCodeBytes, writeFactorCodes, type FactorCodeBits } from './factorCodes.ts';
import { orthonormalizeColumns } from './powerSgd.ts';
import { qsgdLevels } from './qsgd.ts';
import { roundToWire, type ValueEncoding } from './valueCodec.ts';

export type ErrorModel = 'step' | 'feedback';

export interface ErrorOptions {
  /** Subspace iterations of the PowerSGD estimate (L-GreCo's default: 5). */
  iterations?: number;
  /** Seed of the PowerSGD estimate's initial Q. */
  seed?: number;
}

/** E of every candidate of one layer, in candidate order. */
export function measureLayerErrors(
  p: Float32Array,
  shape: readonly number[],
  candidates: readonly LayerSetting[],
  options: ErrorOptions = {},
): Float64Array {
  const out = new Float64Array(candidates.length);
  let sorted: Float32Array | null = null;
  let normSq = -1;
  const rounding = new Map<ValueEncoding, number>();
  const roundingOf = (enc: ValueEncoding) => {
    let v = rounding.get(enc);
    if (v === undefined) {
      v = roundingError(p, enc);
      rounding.set(enc, v);
    }
    return v;
  };
  let maxRank = 0;
  for (const c of candidates) if (c.kind === 'powersgd') maxRank = Math.max(maxRank, c.rank);
  const subspace = maxRank > 0 ? powerSubspace(p, shape, maxRank, options) : null;
  const coded = new Map<FactorCodeBits, Float64Array>();
  /** E of every rank 1..maxRank in the setting's factor encoding. */
  const powerErrors = (setting: LayerSetting & { kind: 'powersgd' }): Float64Array => {
    const bits = codeBits(setting.values);
    if (subspace === null) return new Float64Array(maxRank).fill(Infinity);
    if (bits === null) return subspace.tails;
    let e = coded.get(bits);
    if (e === undefined) {
      e = codedPowerSgdErrors(p, subspace, bits);
      coded.set(bits, e);
    }
    return e;
  };
  candidates.forEach((c, i) => {
    switch (c.kind) {
      case 'fp32':
        out[i] = 0;
        break;
      case 'bf16':
        out[i] = roundingOf('bf16');
        break;
      case 'topk': {
        if (sorted === null) {
          sorted = Float32Array.from(p, Math.abs).sort(); // ascending
        }
        out[i] = topkError(sorted, c.k, c.values);
        break;
      }
      case 'randk': {
        if (normSq < 0) normSq = sumSquares(p);
        const share = c.k / p.length;
        out[i] = (1 - share) * normSq + share * roundingOf(c.values);
        break;
      }
      case 'qsgd':
        out[i] = qsgdExpectedError(p, c.bits, c.bucket);
        break;
      case 'powersgd':
        out[i] = powerErrors(c)[c.rank - 1];
        break;
    }
  });
  return out;
}

/**
 * The flat L × |C| table of a whole vector (layer by layer, candidates in order): step errors, or under
 * `model: 'feedback'` their steady-state memories (feedbackErrors) with N the layer's own ‖x‖².
 */
export function measureErrorTable(
  flat: Float32Array,
  layout: ParameterLayout,
  candidates: readonly LayerSetting[][],
  options: ErrorOptions & { model?: ErrorModel } = {},
): Float64Array {
  const rows = layout.layers.map((slot, l) => {
    const x = flat.subarray(slot.offset, slot.offset + slot.size);
    const step = measureLayerErrors(x, slot.shape, candidates[l], {
      ...options,
      seed: (options.seed ?? 0) + l,
    });
    return options.model === 'feedback' ? feedbackErrors(step, sumSquares(x)) : step;
  });
  const table = new Float64Array(rows.reduce((n, r) => n + r.length, 0));
  let at = 0;
  for (const r of rows) {
    table.set(r, at);
    at += r.length;
  }
  return table;
}

/**
 * The steady-state memory of error feedback, per candidate, from one-round errors E on a gradient of squared norm
 * N. With ρ = E/N, a compressor that keeps ‖x − C(x)‖ ≤ √ρ·‖x‖ (δ-contractive, δ = 1 − ρ) and a memory
 * e' = (g + e) − C(g + e) gives ‖e'‖ ≤ √ρ·(‖g‖ + ‖e‖), whose fixed point is ‖e‖ = √ρ/(1 − √ρ)·‖g‖:
 *   M = N·ρ/(1 − √ρ)²   (≈ 4(1 − δ)/δ²·N for small δ, the memory bound of EF-SGD analyses).
 * ρ ≥ 1 (a setting that sends nothing of the layer's mass) never settles: +∞, so the planner cannot choose it.
 * N = 0: nothing to compress, M = 0.
 */
export function feedbackErrors(stepErrors: Float64Array, normSq: number): Float64Array {
  const out = new Float64Array(stepErrors.length);
  if (!(normSq > 0)) return out;
  for (let i = 0; i < out.length; i++) {
    const rho = Math.max(0, stepErrors[i]) / normSq;
    const root = Math.sqrt(rho);
    out[i] = Number.isNaN(rho) ? NaN : root >= 1 ? Infinity : (normSq * rho) / ((1 - root) * (1 - root));
  }
  return out;
}

function sumSquares(p: Float32Array): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) s += p[i] * p[i];
  return s;
}

function roundingError(p: Float32Array, enc: ValueEncoding): number {
  if (enc === 'fp32') return 0;
  let s = 0;
  for (let i = 0; i < p.length; i++) {
    const d = p[i] - roundToWire(p[i], enc);
    s += d * d;
  }
  return s;
}

/** sorted: |p| ascending. Dropped: the n − k smallest; kept values carry their rounding. */
function topkError(sorted: Float32Array, k: number, enc: ValueEncoding): number {
  const n = sorted.length;
  let e = 0;
  for (let i = 0; i < n - k; i++) e += sorted[i] * sorted[i];
  if (enc !== 'fp32') {
    for (let i = n - k; i < n; i++) {
      const d = sorted[i] - roundToWire(sorted[i], enc);
      e += d * d;
    }
  }
  return e;
}

function qsgdExpectedError(p: Float32Array, bits: number, bucket: number): number {
  const s = qsgdLevels(bits);
  let e = 0;
  for (let from = 0; from < p.length; from += bucket) {
    const to = Math.min(p.length, from + bucket);
    let scale = 0;
    for (let i = from; i < to; i++) scale = Math.max(scale, Math.abs(p[i]));
    if (scale === 0) continue;
    const u = scale / s;
    let part = 0;
    for (let i = from; i < to; i++) {
      const t = Math.abs(p[i]) / u;
      const f = t - Math.floor(t);
      part += f * (1 - f);
    }
    e += u * u * part;
  }
  return e;
}

interface Subspace {
  rows: number;
  cols: number;
  R: number;
  /** rows × R, orthonormal columns. */
  P: Float64Array;
  /** tails[r − 1] = ‖M‖² − ‖P̂_rᵀM‖² for r = 1..R (clamped at 0). */
  tails: Float64Array;
  total: number;
}

/** The rank-R subspace estimate of a matrix; null for a vector (no PowerSGD candidates). */
function powerSubspace(
  p: Float32Array,
  shape: readonly number[],
  R: number,
  options: ErrorOptions,
): Subspace | null {
  const m = matrixShape(shape);
  if (m === null) return null;
  const { rows, cols } = m;
  const tails = new Float64Array(R);
  const rng = new Rng(options.seed ?? 0);
  const Q = new Float64Array(cols * R);
  for (let i = 0; i < Q.length; i++) Q[i] = rng.normal();
  const P = new Float64Array(rows * R);
  const iterations = Math.max(1, options.iterations ?? 5);
  for (let t = 0; t < iterations; t++) {
    orthonormalizeColumns(Q, cols, R);
    multiply(p, rows, cols, Q, R, P);
    orthonormalizeColumns(P, rows, R);
    multiplyTransposed(p, rows, cols, P, R, Q);
  }
  // Q = MᵀP̂: ‖P̂ᵀM‖² restricted to the first r columns = Σ_{k<r} ‖Q[:, k]‖²
  const total = sumSquares(p);
  let captured = 0;
  for (let k = 0; k < R; k++) {
    for (let j = 0; j < cols; j++) captured += Q[j * R + k] * Q[j * R + k];
    tails[k] = Math.max(0, total - captured);
  }
  return { rows, cols, R, P, tails, total };
}

/**
 * E[r − 1] = ‖M − AB_rᵀ‖² for r = 1..R, A = P̂ read back from b-bit codes, B = (MᵀA) read back from its codes,
 * both restricted to their first r columns (the codes' scales are per column, so prefixes agree).
 */
function codedPowerSgdErrors(p: Float32Array, s: Subspace, bits: FactorCodeBits): Float64Array {
  const { rows, cols, R } = s;
  const A = Float64Array.from(s.P);
  const scratch = new Uint8Array(Math.max(factorCodeBytes(rows, R, bits), factorCodeBytes(cols, R, bits)));
  writeFactorCodes(A, rows, R, bits, scratch, 0);
  const Bu = new Float64Array(cols * R);
  multiplyTransposed(p, rows, cols, A, R, Bu);
  const B = Float64Array.from(Bu);
  writeFactorCodes(B, cols, R, bits, scratch, 0);
  const out = new Float64Array(R);
  let e = s.total;
  for (let k = 0; k < R; k++) {
    let cross = 0;
    for (let j = 0; j < cols; j++) cross += B[j * R + k] * Bu[j * R + k];
    // ⟨AᵀA, BᵀB⟩ over the new row and column k of the r × r Gram matrices
    let quad = 0;
    for (let l = 0; l <= k; l++) {
      let aa = 0;
      for (let i = 0; i < rows; i++) aa += A[i * R + k] * A[i * R + l];
      let bb = 0;
      for (let j = 0; j < cols; j++) bb += B[j * R + k] * B[j * R + l];
      quad += (l === k ? 1 : 2) * aa * bb;
    }
    e += quad - 2 * cross;
    out[k] = Math.max(0, e);
  }
  return out;
}

/** P = M·Q (M rows × cols row-major, Q cols × R, P rows × R). */
function multiply(
  M: Float32Array,
  rows: number,
  cols: number,
  Q: Float64Array,
  R: number,
  P: Float64Array,
): void {
  P.fill(0);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const x = M[i * cols + j];
      if (x === 0) continue;
      for (let k = 0; k < R; k++) P[i * R + k] += x * Q[j * R + k];
    }
  }
}

/** Q = Mᵀ·P. */
function multiplyTransposed(
  M: Float32Array,
  rows: number,
  cols: number,
  P: Float64Array,
  R: number,
  Q: Float64Array,
): void {
  Q.fill(0);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const x = M[i * cols + j];
      if (x === 0) continue;
      for (let k = 0; k < R; k++) Q[j * R + k] += x * P[i * R + k];
    }
  }
}
