/**
 * QSGD with bucketed max-normalisation and stochastic rounding. bits b ∈ [2, 8] give s = 2^(b−1) − 1 magnitude
 * levels. Per bucket of `bucket` consecutive elements, scale = max |x| (fp32). Each x becomes
 * level ℓ ∈ {⌊t⌋, ⌊t⌋ + 1} with t = s·|x|/scale, rounded up with probability t − ⌊t⌋, so E[ℓ] = t and the decoded
 * value sign(x)·scale·ℓ/s is unbiased. Code = sign bit (bit b−1) | ℓ.
 *
 * Wire: ⌈numel/bucket⌉ fp32 scales (finite, ≥ 0), then the codes as a little-endian bitstream (code i at bit
 * offset i·b, bit 0 of a byte first), padded to a whole byte with zero bits.
 */
import { CodecError } from './codecError.ts';
import { Rng } from '../random.ts';
import { qsgdBytes } from './compressionPlan.ts';
import { firstNonFiniteValue, readValue, writeValue } from './valueCodec.ts';

export function qsgdLevels(bits: number): number {
  return (1 << (bits - 1)) - 1;
}

/** Encode p; the rounding draws come from `seed` (the worker's own). Returns bytes written. */
export function qsgdEncode(
  p: Float32Array,
  bits: number,
  bucket: number,
  seed: number,
  out: Uint8Array,
): number {
  const n = p.length;
  const s = qsgdLevels(bits);
  const signBit = 1 << (bits - 1);
  const buckets = Math.ceil(n / bucket);
  const rng = new Rng(seed);
  let pos = 4 * buckets;
  let acc = 0;
  let accBits = 0;
  for (let b = 0; b < buckets; b++) {
    const from = b * bucket;
    const to = Math.min(n, from + bucket);
    let scale = 0;
    for (let i = from; i < to; i++) {
      const a = Math.abs(p[i]);
      if (a > scale) scale = a;
    }
    writeValue(out, 4 * b, scale, 'fp32');
    const unit = scale > 0 ? s / scale : 0;
    for (let i = from; i < to; i++) {
      const x = p[i];
      const t = Math.abs(x) * unit;
      let level = Math.floor(t);
      if (rng.next() < t - level) level++;
      if (level > s) level = s;
      const code = level === 0 ? 0 : x < 0 ? signBit | level : level;
      acc |= code << accBits;
      accBits += bits;
      if (accBits >= 8) {
        out[pos++] = acc & 0xff;
        acc >>>= 8;
        accBits -= 8;
      }
    }
  }
  if (accBits > 0) out[pos++] = acc & 0xff;
  return pos;
}

/** Validate then decode into dst (length numel). */
export function qsgdDecode(bytes: Uint8Array, bits: number, bucket: number, dst: Float32Array): void {
  const n = dst.length;
  const expected = qsgdBytes(n, bits, bucket);
  if (bytes.length !== expected) {
    throw new CodecError(
      'wrong-length',
      `qsgd: ${bytes.length} bytes, the plan implies ${expected} (numel ${n}, ${bits} bits, bucket ${bucket})`,
    );
  }
  const buckets = Math.ceil(n / bucket);
  const bad = firstNonFiniteValue(bytes, 0, buckets, 'fp32');
  if (bad >= 0) throw new CodecError('non-finite', `qsgd: scale of bucket ${bad} is not finite`);
  for (let b = 0; b < buckets; b++) {
    if ((bytes[4 * b + 3] & 0x80) !== 0 && readValue(bytes, 4 * b, 'fp32') < 0) {
      throw new CodecError('negative-scale', `qsgd: scale of bucket ${b} is negative`);
    }
  }
  const usedBits = n * bits;
  const tailBits = usedBits & 7;
  if (tailBits !== 0 && bytes[bytes.length - 1] >>> tailBits !== 0) {
    throw new CodecError('nonzero-padding', `qsgd: padding bits after code ${n - 1} are not zero`);
  }
  const s = qsgdLevels(bits);
  const levelMask = s;
  const signBit = 1 << (bits - 1);
  const codeMask = (1 << bits) - 1;
  let pos = 4 * buckets;
  let acc = 0;
  let accBits = 0;
  for (let b = 0; b < buckets; b++) {
    const from = b * bucket;
    const to = Math.min(n, from + bucket);
    const step = readValue(bytes, 4 * b, 'fp32') / s;
    for (let i = from; i < to; i++) {
      if (accBits < bits) {
        acc |= bytes[pos++] << accBits;
        accBits += 8;
      }
      const code = acc & codeMask;
      acc >>>= bits;
      accBits -= bits;
      const v = (code & levelMask) * step;
      dst[i] = (code & signBit) !== 0 ? -v : v;
    }
  }
}
