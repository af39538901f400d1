/**
 * Per-coordinate kernels shared by the coordinate-wise rules (median, trimmed mean, MeaMed, Phocas, Bulyan).
 *
 * Every order statistic is taken in the lexicographic order of (value, worker index), so ties go toward the
 * lower worker index and the result is fully deterministic: among equal values the lower index is "smaller"
 * (it is trimmed first from below and last from above, and it is preferred when choosing the closest values).
 *
 * No full sorts: the median uses quickselect; trimming and "the k closest to a centre" use small bounded
 * buffers (exclude the f lowest/highest, or the m − k farthest), which is O(n) per coordinate for small f.
 */
import type { Workspace } from '../util.ts';

/** Scratch buffers for one column of n values, reused across coordinates and rounds. */
export interface ColumnScratch {
  /** Column values in worker (or row) order. */
  vals: Float64Array;
  /** Working copy permuted by quickselect, with the original positions. */
  keys: Float64Array;
  idx: Int32Array;
  /** Distances to the centre. */
  dist: Float64Array;
  /** Bounded selection buffers. */
  bufK: Float64Array;
  bufI: Int32Array;
}

export function columnScratch(ws: Workspace, n: number): ColumnScratch {
  return {
    vals: ws.f64('col.vals', n),
    keys: ws.f64('col.keys', n),
    idx: ws.i32('col.idx', n),
    dist: ws.f64('col.dist', n),
    bufK: ws.f64('col.bufK', n + 1),
    bufI: ws.i32('col.bufI', n + 1),
  };
}

/** s.vals[i] ← vectors[i][k] for i < n. */
export function gatherColumn(vectors: Float32Array[], k: number, n: number, s: ColumnScratch): void {
  const vals = s.vals;
  for (let i = 0; i < n; i++) vals[i] = vectors[i][k];
}

/** (a, ia) < (b, ib) in (value, index) order. */
function lexLess(a: number, ia: number, b: number, ib: number): boolean {
  return a < b || (a === b && ia < ib);
}

/**
 * Rank-r element (0-based, lexicographic (value, position) order) of s.vals[0..m) by quickselect on s.keys /
 * s.idx. Afterwards s.keys[r] / s.idx[r] hold it and every position > r holds a larger element.
 */
export function selectRank(m: number, r: number, s: ColumnScratch): void {
  const keys = s.keys;
  const idx = s.idx;
  const vals = s.vals;
  for (let i = 0; i < m; i++) {
    keys[i] = vals[i];
    idx[i] = i;
  }
  let lo = 0;
  let hi = m - 1;
  while (hi > lo) {
    if (hi - lo < 12) {
      // insertion sort of the small remaining range
      for (let i = lo + 1; i <= hi; i++) {
        const k = keys[i];
        const x = idx[i];
        let j = i - 1;
        while (j >= lo && lexLess(k, x, keys[j], idx[j])) {
          keys[j + 1] = keys[j];
          idx[j + 1] = idx[j];
          j--;
        }
        keys[j + 1] = k;
        idx[j + 1] = x;
      }
      return;
    }
    // median-of-three pivot, moved to hi
    const mid = (lo + hi) >> 1;
    if (lexLess(keys[mid], idx[mid], keys[lo], idx[lo])) swap(keys, idx, mid, lo);
    if (lexLess(keys[hi], idx[hi], keys[lo], idx[lo])) swap(keys, idx, hi, lo);
    if (lexLess(keys[mid], idx[mid], keys[hi], idx[hi])) swap(keys, idx, mid, hi);
    const pk = keys[hi];
    const pi = idx[hi];
    let store = lo;
    for (let i = lo; i < hi; i++) {
      if (lexLess(keys[i], idx[i], pk, pi)) swap(keys, idx, i, store++);
    }
    swap(keys, idx, store, hi);
    if (store === r) return;
    if (store < r) lo = store + 1;
    else hi = store - 1;
  }
}

function swap(keys: Float64Array, idx: Int32Array, a: number, b: number): void {
  const k = keys[a];
  keys[a] = keys[b];
  keys[b] = k;
  const x = idx[a];
  idx[a] = idx[b];
  idx[b] = x;
}

/**
 * Median of s.vals[0..m): the middle value, or for even m the midpoint of the two middle values (the lower one
 * if `lower`). Writes the position(s) it used to used[0] and used[1] (−1 when only one).
 */
export function medianOf(m: number, lower: boolean, s: ColumnScratch, used: Int32Array): number {
  const h = m >> 1;
  if (m & 1) {
    selectRank(m, h, s);
    used[0] = s.idx[h];
    used[1] = -1;
    return s.keys[h];
  }
  selectRank(m, h - 1, s);
  const a = s.keys[h - 1];
  used[0] = s.idx[h - 1];
  if (lower) {
    used[1] = -1;
    return a;
  }
  // the rank-h element is the smallest of the upper part
  const keys = s.keys;
  const idx = s.idx;
  let bk = keys[h];
  let bi = idx[h];
  for (let i = h + 1; i < m; i++) {
    if (lexLess(keys[i], idx[i], bk, bi)) {
      bk = keys[i];
      bi = idx[i];
    }
  }
  used[1] = bi;
  return 0.5 * (a + bk);
}

/**
 * Cut-off of the e largest entries of a[0..m) in (value, position) order: returns the position c of the smallest
 * of them (−1 when e = 0); entry j is among the e largest iff (a[j], j) ≥ (a[c], c).
 */
export function largestCutoff(a: Float64Array, m: number, e: number, s: ColumnScratch): number {
  if (e <= 0) return -1;
  const bk = s.bufK;
  const bi = s.bufI;
  let count = 0;
  for (let i = 0; i < m; i++) {
    const v = a[i];
    // later positions win ties, so an equal value is larger
    let p: number;
    if (count < e) p = count++;
    else if (v >= bk[e - 1])
      p = e - 1; // displaces the current cut-off
    else continue;
    while (p > 0 && v >= bk[p - 1]) {
      bk[p] = bk[p - 1];
      bi[p] = bi[p - 1];
      p--;
    }
    bk[p] = v;
    bi[p] = i;
  }
  return bi[e - 1];
}

/**
 * Cut-off of the e smallest entries of a[0..m) in (value, position) order: returns the position c of the
 * largest of them (−1 when e = 0); entry j is among the e smallest iff (a[j], j) ≤ (a[c], c).
 */
export function smallestCutoff(a: Float64Array, m: number, e: number, s: ColumnScratch): number {
  if (e <= 0) return -1;
  const bk = s.bufK;
  const bi = s.bufI;
  let count = 0;
  for (let i = 0; i < m; i++) {
    const v = a[i];
    // earlier positions win ties, so an equal later value is not smaller
    let p: number;
    if (count < e) p = count++;
    else if (v < bk[e - 1])
      p = e - 1; // displaces the current cut-off
    else continue;
    while (p > 0 && v < bk[p - 1]) {
      bk[p] = bk[p - 1];
      bi[p] = bi[p - 1];
      p--;
    }
    bk[p] = v;
    bi[p] = i;
  }
  return bi[e - 1];
}

/**
 * Trimmed mean of s.vals[0..m): drops the t smallest and t largest ((value, position) order) and averages the
 * rest (2t < m). Adds 1 to counts[map[j]] (or counts[j]) for every kept position j when `counts` is given.
 */
export function trimmedMeanOf(
  m: number,
  t: number,
  s: ColumnScratch,
  counts?: Float64Array,
  map?: ArrayLike<number>,
): number {
  const vals = s.vals;
  if (t === 0) {
    let sum = 0;
    for (let i = 0; i < m; i++) sum += vals[i];
    if (counts) for (let i = 0; i < m; i++) counts[map ? map[i] : i]++;
    return sum / m;
  }
  const lo = smallestCutoff(vals, m, t, s);
  const hi = largestCutoff(vals, m, t, s);
  const lk = vals[lo];
  const hk = vals[hi];
  let sum = 0;
  for (let j = 0; j < m; j++) {
    const v = vals[j];
    // kept iff (v, j) > (lk, lo) and (v, j) < (hk, hi)
    if ((v > lk || (v === lk && j > lo)) && (v < hk || (v === hk && j < hi))) {
      sum += v;
      if (counts) counts[map ? map[j] : j]++;
    }
  }
  return sum / (m - 2 * t);
}

/**
 * Mean of the `count` values of s.vals[0..m) closest to `c`: excludes the m − count largest distances
 * |v − c| in (distance, position) order, so among equal distances the lower position is kept. Adds 1 to
 * counts[map[j]] (or counts[j]) for every kept position j when `counts` is given.
 */
export function closestMean(
  m: number,
  c: number,
  count: number,
  s: ColumnScratch,
  counts?: Float64Array,
  map?: ArrayLike<number>,
): number {
  const vals = s.vals;
  const dist = s.dist;
  for (let i = 0; i < m; i++) dist[i] = Math.abs(vals[i] - c);
  const cut = largestCutoff(dist, m, m - count, s);
  let sum = 0;
  if (cut < 0) {
    for (let j = 0; j < m; j++) {
      sum += vals[j];
      if (counts) counts[map ? map[j] : j]++;
    }
    return sum / count;
  }
  const ck = dist[cut];
  for (let j = 0; j < m; j++) {
    const dj = dist[j];
    // kept iff (dj, j) < (ck, cut)
    if (dj < ck || (dj === ck && j < cut)) {
      sum += vals[j];
      if (counts) counts[map ? map[j] : j]++;
    }
  }
  return sum / count;
}
