/**
 * Random-K with a coordinator-issued seed: the k coordinates of a layer in a round are a deterministic function
 * of (seed, numel, k), so every worker sends the same coordinates and only their values travel (k values, fp32 or
 * bf16, in increasing index order). Values are not rescaled by numel/k: the compressor is biased and relies on
 * error feedback (the scaled, unbiased variant must not be combined with error feedback).
 */
import { CodecError } from './codecError.ts';
import { Rng, deriveSeed } from '../random.ts';
import { firstNonFiniteValue, readValue, valueWidth, writeValue, type ValueEncoding } from './valueCodec.ts';

/** The seed of layer `layer` in round `round`, derived from the coordinator's job seed. */
export function randkSeed(jobSeed: number, round: number, layer: number): number {
  return deriveSeed(jobSeed, 0x52414e44, round, layer);
}

/**
 * The k distinct coordinates of [0, numel) for `seed`, ascending, into out[0, k). Floyd's sampling (k draws)
 * into `bitset` (scratch of ⌈numel/32⌉ words, left zeroed), then one scan of the set bits.
 */
export function randkIndices(
  seed: number,
  numel: number,
  k: number,
  out: Uint32Array,
  bitset: Uint32Array,
): void {
  const rng = new Rng(seed);
  const words = (numel + 31) >>> 5;
  for (let j = numel - k; j < numel; j++) {
    const t = rng.int(j + 1);
    const pick = (bitset[t >>> 5] & (1 << (t & 31))) !== 0 ? j : t;
    bitset[pick >>> 5] |= 1 << (pick & 31);
  }
  let c = 0;
  for (let w = 0; w < words; w++) {
    let bits = bitset[w];
    if (bits === 0) continue;
    bitset[w] = 0;
    while (bits !== 0) {
      const low = bits & -bits;
      out[c++] = (w << 5) + (31 - Math.clz32(low));
      bits ^= low;
    }
  }
}

/** Encode p at the given coordinates; returns bytes written (k · value width). */
export function randkEncode(
  p: Float32Array,
  indices: Uint32Array,
  k: number,
  values: ValueEncoding,
  out: Uint8Array,
): number {
  const w = valueWidth(values);
  for (let j = 0; j < k; j++) writeValue(out, j * w, p[indices[j]], values);
  return k * w;
}

/** Validate then decode into dst (dense, zeros off the coordinates). */
export function randkDecode(
  bytes: Uint8Array,
  indices: Uint32Array,
  k: number,
  values: ValueEncoding,
  dst: Float32Array,
): void {
  const w = valueWidth(values);
  if (bytes.length !== k * w) {
    throw new CodecError(
      'wrong-length',
      `randk: ${bytes.length} bytes, the plan implies ${k * w} (k = ${k}, ${values})`,
    );
  }
  const bad = firstNonFiniteValue(bytes, 0, k, values);
  if (bad >= 0) throw new CodecError('non-finite', `randk: value ${bad} is not finite`);
  dst.fill(0);
  for (let j = 0; j < k; j++) dst[indices[j]] = readValue(bytes, j * w, values);
}
