/**
 * Integer codes for a factor matrix (PowerSGD's P̂ and Q'): each column k gets one fp32 scale
 * s_k = max_i |A[i, k]| / L and every entry the nearest code c ∈ [−L, L], read back as c·s_k, with L = 127 for
 * 8-bit and 7 for 4-bit codes (symmetric: the two's-complement minimum −L − 1 is never sent and is refused).
 *
 * Wire of one factor (rows × r): r scales (fp32, finite, ≥ 0), then rows·r codes row-major as one bitstream —
 * code j occupies bits [j·b, (j + 1)·b) counting from bit 0 of the first code byte (8-bit: one byte each; 4-bit:
 * low nibble first) — padded with zero bits to a whole byte.
 *
 * Rounding is to nearest, not stochastic: the worker's error feedback keeps what the codes lose, as it keeps
 * bf16's rounding. A column's relative error is at most 1/(2L) of its largest entry per entry.
 */
import { CodecError } from './codecError.ts';
import type { FactorEncoding } from './compressionPlan.ts';
import { readValue, writeValue } from './valueCodec.ts';

export type FactorCodeBits = 4 | 8;

/** Bits per code of an integer factor encoding, or null for fp32/bf16 scalars. */
export function codeBits(values: FactorEncoding): FactorCodeBits | null {
  return values === 'int8' ? 8 : values === 'int4' ? 4 : null;
}

/** Largest code magnitude L for b bits. */
export function codeLimit(bits: FactorCodeBits): number {
  return bits === 8 ? 127 : 7;
}

/** Bytes of one rows × r factor in b-bit codes. */
export function factorCodeBytes(rows: number, r: number, bits: FactorCodeBits): number {
  return 4 * r + Math.ceil((rows * r * bits) / 8);
}

const f32 = new Float32Array(1);

/**
 * Quantise A (rows × r, row-major) in place to what the wire reads back, and write its scales and codes at
 * out[pos…]. Returns the position after the factor.
 */
export function writeFactorCodes(
  A: Float64Array,
  rows: number,
  r: number,
  bits: FactorCodeBits,
  out: Uint8Array,
  pos: number,
): number {
  const limit = codeLimit(bits);
  const codesAt = pos + 4 * r;
  out.fill(0, codesAt, codesAt + Math.ceil((rows * r * bits) / 8));
  for (let k = 0; k < r; k++) {
    let max = 0;
    for (let i = 0; i < rows; i++) max = Math.max(max, Math.abs(A[i * r + k]));
    f32[0] = max / limit;
    const scale = f32[0];
    writeValue(out, pos + 4 * k, scale, 'fp32');
    for (let i = 0; i < rows; i++) {
      const j = i * r + k;
      const code = scale > 0 ? Math.max(-limit, Math.min(limit, Math.round(A[j] / scale))) : 0;
      A[j] = Math.fround(code * scale);
      if (bits === 8) out[codesAt + j] = code & 0xff;
      else out[codesAt + (j >> 1)] |= (code & 0x0f) << ((j & 1) * 4);
    }
  }
  return codesAt + Math.ceil((rows * r * bits) / 8);
}

/**
 * Validate one factor's scales and codes at bytes[pos…] (the caller has checked the total length) and write
 * its values: dst[at + i·r + k] (row-major), or dst[at + k·rows + i] when `transposed`. Throws before writing
 * anything on a non-finite or negative scale, a code of −L − 1 or nonzero padding. `name` labels the errors.
 */
export function readFactorCodes(
  bytes: Uint8Array,
  pos: number,
  rows: number,
  r: number,
  bits: FactorCodeBits,
  dst: Float32Array,
  at: number,
  transposed: boolean,
  name: string,
): number {
  const codesAt = pos + 4 * r;
  const nCodes = rows * r;
  for (let k = 0; k < r; k++) {
    const s = readValue(bytes, pos + 4 * k, 'fp32');
    if (!Number.isFinite(s)) throw new CodecError('non-finite', `powersgd: ${name} scale ${k} is not finite`);
    if (s < 0) throw new CodecError('negative-scale', `powersgd: ${name} scale ${k} is ${s}`);
  }
  const forbidden = bits === 8 ? 0x80 : 0x8;
  for (let j = 0; j < nCodes; j++) {
    const raw = bits === 8 ? bytes[codesAt + j] : (bytes[codesAt + (j >> 1)] >> ((j & 1) * 4)) & 0x0f;
    if (raw === forbidden) {
      throw new CodecError(
        'code-out-of-range',
        `powersgd: ${name} code ${j} is ${-codeLimit(bits) - 1}, outside [−${codeLimit(bits)}, ${codeLimit(bits)}]`,
      );
    }
  }
  const end = codesAt + Math.ceil((nCodes * bits) / 8);
  if (bits === 4 && nCodes % 2 === 1 && bytes[end - 1] >> 4 !== 0) {
    throw new CodecError(
      'nonzero-padding',
      `powersgd: ${name} padding bits after code ${nCodes - 1} are set`,
    );
  }
  for (let k = 0; k < r; k++) {
    const s = readValue(bytes, pos + 4 * k, 'fp32');
    for (let i = 0; i < rows; i++) {
      const j = i * r + k;
      let c: number;
      if (bits === 8) {
        c = bytes[codesAt + j];
        if (c >= 0x80) c -= 0x100;
      } else {
        c = (bytes[codesAt + (j >> 1)] >> ((j & 1) * 4)) & 0x0f;
        if (c >= 0x8) c -= 0x10;
      }
      dst[transposed ? at + k * rows + i : at + j] = c * s;
    }
  }
  return end;
}
