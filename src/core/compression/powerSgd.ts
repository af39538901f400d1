/**
 * PowerSGD, one power step per round with a warm-started Q (Vogels et al. 2019), decoded per worker.
 *
 * For the layer's matrix M (rows × cols, see compressionPlan.matrixShape) and rank r:
 *   P = M·Q (Q: cols × r, the previous round's Q, Gaussian at the start or after a rank change);
 *   P̂ = Gram–Schmidt(P), columns orthonormal (a column that vanishes against the earlier ones is set to zero);
 *   Q' = Mᵀ·P̂ computed from P̂ as it is sent (after rounding to the value encoding);
 *   the worker sends P̂ and Q', the coordinator reconstructs M̃ = P̂·Q'ᵀ = P̂P̂ᵀM, a projection of M onto r
 *   directions, so a matrix of rank ≤ r comes back exactly (up to rounding). Q' warm-starts the next round.
 * There is no shared-factor all-reduce: each worker's message decodes to its own dense matrix, so the robust
 * rule sees every worker separately.
 *
 * Wire: P̂ (rows × r, row-major) then Q' (cols × r, row-major), values fp32 or bf16, nothing else; or, under
 * int8/int4, each factor as per-column scales and integer codes (factorCodes.ts). Q' is always computed from P̂
 * as it reads back, so the only loss the codes add to the projection is Q''s own rounding.
 */
import { CodecError } from './codecError.ts';
import { powerSgdBytes, type FactorEncoding } from './compressionPlan.ts';
import { codeBits, factorCodeBytes, readFactorCodes, writeFactorCodes } from './factorCodes.ts';
import { Rng } from '../random.ts';
import { firstNonFinite } from '../simd/finiteScan.ts';
import {
  firstNonFiniteValue,
  readValue,
  roundToWire,
  valueWidth,
  writeValue,
  type ValueEncoding,
} from './valueCodec.ts';

/** Worker-side state of one layer: the warm-start factor and the stream that redraws it. */
export interface PowerSgdState {
  rank: number;
  /** cols × rank, row-major. */
  q: Float32Array;
  rng: Rng;
}

/** A fresh Gaussian Q for (cols, rank) — also what a rank change re-initialises to. */
export function initPowerSgdState(cols: number, rank: number, seed: number): PowerSgdState {
  const rng = new Rng(seed);
  const q = new Float32Array(cols * rank);
  for (let i = 0; i < q.length; i++) q[i] = rng.normal();
  return { rank, q, rng };
}

/** Scratch for encoding: float64 P (rows·r), Q' (cols·r) and a copy of Q' (cols·r) for integer codes. */
export interface PowerSgdScratch {
  p: Float64Array;
  q: Float64Array;
  q0: Float64Array;
}

/** Encode M (= p, row-major rows × cols); updates state.q (warm start). Returns bytes written. */
export function powerSgdEncode(
  m: Float32Array,
  rows: number,
  cols: number,
  state: PowerSgdState,
  values: FactorEncoding,
  out: Uint8Array,
  scratch: PowerSgdScratch,
): number {
  const bits = codeBits(values);
  const r = state.rank;
  const P = scratch.p;
  const Q = scratch.q;
  const q0 = state.q;
  // P = M·Q
  P.fill(0, 0, rows * r);
  for (let i = 0; i < rows; i++) {
    const mi = i * cols;
    const pi = i * r;
    for (let j = 0; j < cols; j++) {
      const x = m[mi + j];
      if (x === 0) continue;
      const qj = j * r;
      for (let k = 0; k < r; k++) P[pi + k] += x * q0[qj + k];
    }
  }
  orthonormalizeColumns(P, rows, r);
  let pos = 0;
  if (bits !== null) pos = writeFactorCodes(P, rows, r, bits, out, 0);
  else for (let i = 0; i < rows * r; i++) P[i] = roundToWire(P[i], values as ValueEncoding);
  // Q' = Mᵀ·P̂
  Q.fill(0, 0, cols * r);
  for (let i = 0; i < rows; i++) {
    const mi = i * cols;
    const pi = i * r;
    for (let j = 0; j < cols; j++) {
      const x = m[mi + j];
      if (x === 0) continue;
      const qj = j * r;
      for (let k = 0; k < r; k++) Q[qj + k] += x * P[pi + k];
    }
  }
  if (bits !== null) {
    // the codes round their argument in place: code a copy, so that the warm start keeps the unrounded Q'
    const Qc = scratch.q0.subarray(0, cols * r);
    Qc.set(Q.subarray(0, cols * r));
    pos = writeFactorCodes(Qc, cols, r, bits, out, pos);
  } else {
    const enc = values as ValueEncoding;
    const w = valueWidth(enc);
    for (let i = 0; i < rows * r; i++, pos += w) writeValue(out, pos, P[i], enc);
    for (let i = 0; i < cols * r; i++, pos += w) writeValue(out, pos, Q[i], enc);
  }
  // warm start: next round starts from Q'; a zero column (M orthogonal to it) is redrawn so the rank is not lost
  for (let k = 0; k < r; k++) {
    let zero = true;
    for (let j = 0; j < cols && zero; j++) zero = Q[j * r + k] === 0;
    for (let j = 0; j < cols; j++) q0[j * r + k] = zero ? state.rng.normal() : Q[j * r + k];
  }
  return pos;
}

/**
 * Modified Gram–Schmidt (applied twice for stability) on the columns of A (rows × r, row-major), in place. A
 * column whose remaining norm is below 1e-10 of its original norm (or zero) becomes zero.
 */
export function orthonormalizeColumns(A: Float64Array, rows: number, r: number): void {
  for (let k = 0; k < r; k++) {
    let original = 0;
    for (let i = 0; i < rows; i++) original += A[i * r + k] * A[i * r + k];
    for (let pass = 0; pass < 2; pass++) {
      for (let c = 0; c < k; c++) {
        let dot = 0;
        for (let i = 0; i < rows; i++) dot += A[i * r + k] * A[i * r + c];
        if (dot === 0) continue;
        for (let i = 0; i < rows; i++) A[i * r + k] -= dot * A[i * r + c];
      }
    }
    let norm = 0;
    for (let i = 0; i < rows; i++) norm += A[i * r + k] * A[i * r + k];
    if (norm === 0 || norm <= 1e-20 * original) {
      for (let i = 0; i < rows; i++) A[i * r + k] = 0;
    } else {
      const inv = 1 / Math.sqrt(norm);
      for (let i = 0; i < rows; i++) A[i * r + k] *= inv;
    }
  }
}

/**
 * Validate then decode into dst (rows·cols). `factors` is scratch of length ≥ r·(rows + cols), sized from the
 * plan. Lengths and finiteness of the factors are checked before anything is written; the product of finite
 * factors can still overflow float32, which is checked after (dst is then unspecified).
 */
export function powerSgdDecode(
  bytes: Uint8Array,
  rows: number,
  cols: number,
  rank: number,
  values: FactorEncoding,
  dst: Float32Array,
  factors: Float32Array,
): void {
  const bits = codeBits(values);
  const expected = powerSgdBytes({ rows, cols }, rank, values);
  if (bytes.length !== expected) {
    throw new CodecError(
      'wrong-length',
      `powersgd: ${bytes.length} bytes, the plan implies ${expected} (rank ${rank}, ${rows}×${cols}, ${values})`,
    );
  }
  // P row-major (rows × r) at [0, rows·r); Q transposed to r × cols at [rows·r, count) for contiguous rows below
  const qt = rows * rank;
  if (bits !== null) {
    // both factors are validated before either is written
    const qAt = factorCodeBytes(rows, rank, bits);
    readFactorCodes(bytes, qAt, cols, rank, bits, factors, qt, true, 'Q');
    readFactorCodes(bytes, 0, rows, rank, bits, factors, 0, false, 'P');
  } else {
    const enc = values as ValueEncoding;
    const w = valueWidth(enc);
    const bad = firstNonFiniteValue(bytes, 0, rank * (rows + cols), enc);
    if (bad >= 0) {
      const where = bad < rows * rank ? `P[${bad}]` : `Q[${bad - rows * rank}]`;
      throw new CodecError('non-finite', `powersgd: factor ${where} is not finite`);
    }
    for (let i = 0; i < rows * rank; i++) factors[i] = readValue(bytes, i * w, enc);
    for (let j = 0; j < cols; j++) {
      for (let k = 0; k < rank; k++)
        factors[qt + k * cols + j] = readValue(bytes, (qt + j * rank + k) * w, enc);
    }
  }
  for (let i = 0; i < rows; i++) {
    const row = i * cols;
    dst.fill(0, row, row + cols);
    for (let k = 0; k < rank; k++) {
      const a = factors[i * rank + k];
      if (a === 0) continue;
      const qk = qt + k * cols;
      for (let j = 0; j < cols; j++) dst[row + j] += a * factors[qk + j];
    }
  }
  const overflow = firstNonFinite(dst, 0, rows * cols);
  if (overflow >= 0) {
    throw new CodecError('non-finite-output', `powersgd: P·Qᵀ overflows float32 at element ${overflow}`);
  }
}
