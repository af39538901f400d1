/**
 * Dense wire codecs for parameters and gradients: fp32 and bf16, little-endian. Decoding copies into an
 * aligned destination (protobuf `bytes` may start at any offset) and reports the first non-finite element, so
 * the caller can reject a hostile push before anything is committed.
 */
import { copyFloat32Checked, firstNonFinite } from '../simd/finiteScan.ts';

export type DenseEncoding = 'fp32' | 'bf16';

export function bytesPerElement(encoding: DenseEncoding): number {
  return encoding === 'fp32' ? 4 : 2;
}

const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * The wire bytes of src[from, from+count) for a message about to be serialised: a view of `src` where the wire
 * layout is the memory layout (fp32 on a little-endian host; serialisation copies it once), else an encoded copy.
 */
export function denseBytes(src: Float32Array, from: number, count: number, encoding: DenseEncoding): Buffer {
  if (encoding === 'fp32' && littleEndian)
    return Buffer.from(src.buffer, src.byteOffset + from * 4, count * 4);
  const bytes = encodeDense(src, from, count, encoding);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Encode src[from, from+count) into a new byte array. */
export function encodeDense(
  src: Float32Array,
  from: number,
  count: number,
  encoding: DenseEncoding,
): Uint8Array {
  if (encoding === 'fp32') {
    const out = new Uint8Array(count * 4);
    if (littleEndian) {
      out.set(new Uint8Array(src.buffer, src.byteOffset + from * 4, count * 4));
    } else {
      const view = new DataView(out.buffer);
      for (let i = 0; i < count; i++) view.setFloat32(i * 4, src[from + i], true);
    }
    return out;
  }
  const out = new Uint8Array(count * 2);
  const bits = new Uint32Array(src.buffer, src.byteOffset + from * 4, count);
  for (let i = 0; i < count; i++) {
    const b = bits[i];
    let half: number;
    if ((b & 0x7f800000) === 0x7f800000 && (b & 0x007fffff) !== 0) {
      half = (b >>> 16) | 0x0040; // keep NaN a quiet NaN
    } else {
      // round to nearest, ties to even
      half = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
    }
    out[2 * i] = half & 0xff;
    out[2 * i + 1] = (half >>> 8) & 0xff;
  }
  return out;
}

/**
 * Decode `bytes` into dst[offset, offset + n). Returns the index (relative to offset) of the first non-finite
 * value, or -1. Throws if the byte length is not a whole number of elements or does not fit.
 */
export function decodeDenseInto(
  bytes: Uint8Array,
  dst: Float32Array,
  offset: number,
  encoding: DenseEncoding,
): number {
  const width = bytesPerElement(encoding);
  if (bytes.byteLength % width !== 0) {
    throw new RangeError(`chunk of ${bytes.byteLength} bytes is not a whole number of ${encoding} elements`);
  }
  const n = bytes.byteLength / width;
  if (offset < 0 || offset + n > dst.length) {
    throw new RangeError(`chunk of ${n} elements at offset ${offset} overruns a tensor of ${dst.length}`);
  }
  if (encoding === 'fp32') {
    if (littleEndian) {
      return copyFloat32Checked(bytes, dst, offset);
    } else {
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let i = 0; i < n; i++) dst[offset + i] = view.getFloat32(i * 4, true);
    }
  } else {
    const bits = new Uint32Array(dst.buffer, dst.byteOffset + offset * 4, n);
    for (let i = 0; i < n; i++) bits[i] = (bytes[2 * i] | (bytes[2 * i + 1] << 8)) << 16;
  }
  return firstNonFinite(dst, offset, n);
}

/**
 * What `v` becomes after crossing the wire in `encoding`, in place: fp32 is exact; bf16 keeps the upper 16 bits
 * rounded to nearest, ties to even (NaN stays NaN) — bit for bit what encodeDense then decodeDenseInto give.
 * `phalanx simulate` applies it so a simulated run sees the same gradients as a distributed one.
 */
export function wireRoundTripInPlace(v: Float32Array, encoding: DenseEncoding): void {
  if (encoding === 'fp32') return;
  const bits = new Uint32Array(v.buffer, v.byteOffset, v.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i];
    const half =
      (b & 0x7f800000) === 0x7f800000 && (b & 0x007fffff) !== 0
        ? (b >>> 16) | 0x0040
        : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
    bits[i] = (half << 16) >>> 0;
  }
}
