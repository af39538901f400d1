/**
 * Scalar values on the wire: fp32 (4 bytes) or bf16 (2 bytes: the upper half of the fp32 bit pattern, rounded to
 * nearest, ties to even; NaN stays a quiet NaN — the same rounding as denseCodec). Always little-endian, written
 * byte by byte, so the result does not depend on the host or on the alignment of the byte array.
 */
export type ValueEncoding = 'fp32' | 'bf16';

export function valueWidth(encoding: ValueEncoding): number {
  return encoding === 'fp32' ? 4 : 2;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The 16 bf16 bits of x (after rounding x to float32). */
export function bf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x007fffff) !== 0) return (b >>> 16) | 0x0040;
  return (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
}

/** x as it reads back after crossing the wire in `encoding`. */
export function roundToWire(x: number, encoding: ValueEncoding): number {
  if (encoding === 'fp32') return Math.fround(x);
  u32[0] = (bf16Bits(x) << 16) >>> 0;
  return f32[0];
}

/** Write x at byte position pos. */
export function writeValue(out: Uint8Array, pos: number, x: number, encoding: ValueEncoding): void {
  if (encoding === 'fp32') {
    f32[0] = x;
    const b = u32[0];
    out[pos] = b & 0xff;
    out[pos + 1] = (b >>> 8) & 0xff;
    out[pos + 2] = (b >>> 16) & 0xff;
    out[pos + 3] = b >>> 24;
  } else {
    const h = bf16Bits(x);
    out[pos] = h & 0xff;
    out[pos + 1] = h >>> 8;
  }
}

/** Read the value at byte position pos (the caller has checked the bounds). */
export function readValue(bytes: Uint8Array, pos: number, encoding: ValueEncoding): number {
  if (encoding === 'fp32') {
    u32[0] = bytes[pos] | (bytes[pos + 1] << 8) | (bytes[pos + 2] << 16) | (bytes[pos + 3] << 24);
  } else {
    u32[0] = (bytes[pos] << 16) | (bytes[pos + 1] << 24);
  }
  return f32[0];
}

/**
 * Index (0-based) of the first of `count` encoded values from byte pos whose exponent bits are all ones (NaN or
 * ±Inf), or -1 — read from the bytes, before anything is decoded.
 */
export function firstNonFiniteValue(
  bytes: Uint8Array,
  pos: number,
  count: number,
  encoding: ValueEncoding,
): number {
  const w = valueWidth(encoding);
  // the exponent spans the top two bytes of the little-endian value: 7 bits of the last, the top bit of the one before
  let hi = pos + w - 1;
  for (let j = 0; j < count; j++, hi += w) {
    if ((bytes[hi] & 0x7f) === 0x7f && (bytes[hi - 1] & 0x80) === 0x80) return j;
  }
  return -1;
}

/** Read `count` values from byte pos into dst[at, at + count) (the caller has checked bounds and finiteness). */
export function readValues(
  bytes: Uint8Array,
  pos: number,
  count: number,
  encoding: ValueEncoding,
  dst: Float32Array | Float64Array,
  at: number,
): void {
  const w = valueWidth(encoding);
  for (let i = 0; i < count; i++) dst[at + i] = readValue(bytes, pos + i * w, encoding);
}

/** Write src[from, from + count) at byte pos. */
export function writeValues(
  src: Float32Array | Float64Array,
  from: number,
  count: number,
  encoding: ValueEncoding,
  out: Uint8Array,
  pos: number,
): void {
  const w = valueWidth(encoding);
  for (let i = 0; i < count; i++) writeValue(out, pos + i * w, src[from + i], encoding);
}
