/**
 * Top-K sparsification: keep the k entries of largest |p| (ties: lowest indices first), zero the rest.
 *
 * Wire (little-endian): k values (fp32 or bf16) in index order, then k delta varints: d_0 = i_0 + 1,
 * d_j = i_j − i_{j−1}, so every delta is ≥ 1 and indices are strictly increasing by construction; a delta of 0
 * or an index ≥ numel is rejected. The varint section must end exactly at the end of the bytes.
 */
import { CodecError } from './codecError.ts';
import { firstNonFiniteValue, readValue, valueWidth, writeValue, type ValueEncoding } from './valueCodec.ts';
import { readVarint, writeVarint, type VarintCursor } from './varint.ts';

/**
 * Encode the top k of p into out (which must hold the layer's maximal size); `magnitudes` is scratch of length
 * ≥ p.length. Returns the number of bytes written.
 */
export function topkEncode(
  p: Float32Array,
  k: number,
  values: ValueEncoding,
  out: Uint8Array,
  magnitudes: Float32Array,
): number {
  const n = p.length;
  for (let i = 0; i < n; i++) magnitudes[i] = Math.abs(p[i]);
  const threshold = kthLargest(magnitudes, n, k);
  let above = 0;
  for (let i = 0; i < n; i++) if (Math.abs(p[i]) > threshold) above++;
  let ties = k - above;
  const w = valueWidth(values);
  let vpos = 0;
  let ipos = k * w;
  let prev = -1;
  let taken = 0;
  for (let i = 0; i < n && taken < k; i++) {
    const a = Math.abs(p[i]);
    if (a > threshold || (a === threshold && ties-- > 0)) {
      writeValue(out, vpos, p[i], values);
      vpos += w;
      ipos = writeVarint(out, ipos, i - prev);
      prev = i;
      taken++;
    }
  }
  return ipos;
}

/** The k-th largest of a[0, n) (quickselect; reorders a). NaN compares as smallest. */
export function kthLargest(a: Float32Array, n: number, k: number): number {
  const target = n - k; // index in ascending order
  let lo = 0;
  let hi = n - 1;
  while (hi > lo) {
    const mid = (lo + hi) >>> 1;
    // median of three as pivot
    const x = a[lo];
    const y = a[mid];
    const z = a[hi];
    const pivot = Math.max(Math.min(x, y), Math.min(Math.max(x, y), z));
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return a[target];
  }
  return a[target];
}

const cursor: VarintCursor = { value: 0, pos: 0 };

/**
 * Validate then decode: dst (length numel) receives the dense layer — kept values at their indices, zeros
 * elsewhere. Nothing is written to dst unless the whole message is valid.
 */
export function topkDecode(
  bytes: Uint8Array,
  k: number,
  values: ValueEncoding,
  dst: Float32Array,
  indices: Uint32Array,
): void {
  const numel = dst.length;
  const w = valueWidth(values);
  const valueBytes = k * w;
  if (bytes.length < valueBytes + k) {
    throw new CodecError(
      'wrong-length',
      `topk: ${bytes.length} bytes, at least ${valueBytes + k} needed for k = ${k}`,
    );
  }
  // pass 1: indices (into the caller's scratch of length ≥ k)
  let pos = valueBytes;
  let index = -1;
  for (let j = 0; j < k; j++) {
    readVarint(bytes, pos, bytes.length, cursor);
    pos = cursor.pos;
    if (cursor.value === 0) {
      throw new CodecError('index-not-increasing', `topk: entry ${j} repeats index ${index} (delta 0)`);
    }
    index += cursor.value;
    if (index >= numel) {
      throw new CodecError('index-out-of-range', `topk: entry ${j} has index ${index} ≥ numel ${numel}`);
    }
    indices[j] = index;
  }
  if (pos !== bytes.length) {
    throw new CodecError('wrong-length', `topk: ${bytes.length - pos} bytes after the ${k} indices`);
  }
  // pass 2: values, checked finite, straight into their slots
  const bad = firstNonFiniteValue(bytes, 0, k, values);
  if (bad >= 0) throw new CodecError('non-finite', `topk: value ${bad} is not finite`);
  dst.fill(0);
  readValuesScattered(bytes, k, values, indices, dst);
}

function readValuesScattered(
  bytes: Uint8Array,
  k: number,
  values: ValueEncoding,
  indices: Uint32Array,
  dst: Float32Array,
): void {
  const w = valueWidth(values);
  for (let j = 0; j < k; j++) dst[indices[j]] = readValue(bytes, j * w, values);
}
