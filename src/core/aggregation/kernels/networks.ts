/**
 * Comparator networks for order statistics of a small fixed number m of values (the workers of one coordinate).
 *
 * A network is a list of comparators [a, b] (a < b): after one, position a holds the minimum and b the maximum of
 * the two. Branch-free, so it runs on SIMD lanes (one coordinate per lane). {@link selectionNetwork} returns, for
 * a set of wanted ranks, the shorter of two candidates, each pruned to the comparators the wanted outputs depend
 * on (afterwards position r holds the rank-r value, 0-based, for every wanted r):
 * - Batcher's odd–even merge sort for the next power of two (comparators touching the padding dropped: padding
 *   with +∞ never moves), good for central ranks (the median);
 * - partial insertion: the e smallest (and the e' largest) kept sorted in e slots at the ends, every other
 *   element bubbled through them (e·m comparators), good for extreme ranks (trimming f ≤ 3 of 16).
 * Correctness for every input follows from correctness on 0/1 inputs (the 0–1 principle holds for selection).
 */

export type Comparator = [number, number];

/** Batcher's odd–even merge sort on m positions (sorts every input). */
export function batcherSort(m: number): Comparator[] {
  let size = 1;
  while (size < m) size <<= 1;
  const out: Comparator[] = [];
  for (let p = 1; p < size; p <<= 1) {
    for (let k = p; k >= 1; k >>= 1) {
      for (let j = k % p; j + k < size; j += 2 * k) {
        for (let i = 0; i < Math.min(k, size - j - k); i++) {
          const a = i + j;
          const b = i + j + k;
          if (Math.floor(a / (2 * p)) === Math.floor(b / (2 * p)) && b < m) out.push([a, b]);
        }
      }
    }
  }
  return out;
}

/**
 * Partial insertion network on m positions: afterwards positions 0..lo−1 hold the lo smallest values in order
 * and positions m−hi..m−1 the hi largest in order (lo + hi ≤ m).
 */
export function insertionNetwork(m: number, lo: number, hi: number): Comparator[] {
  if (lo + hi > m) throw new Error('insertionNetwork: lo + hi > m');
  const out: Comparator[] = [];
  if (lo > 0) {
    for (const [a, b] of batcherSort(lo)) out.push([a, b]);
    for (let p = lo; p < m; p++) for (let t = 0; t < lo; t++) out.push([t, p]);
  }
  if (hi > 0) {
    const base = m - hi;
    for (const [a, b] of batcherSort(hi)) out.push([base + a, base + b]);
    for (let p = lo; p < base; p++) for (let t = m - 1; t >= base; t--) out.push([p, t]);
  }
  return out;
}

/** Drops the comparators that no wanted output position depends on. */
export function prune(network: Comparator[], wanted: Iterable<number>): Comparator[] {
  const live = new Set(wanted);
  const kept: Comparator[] = [];
  for (let c = network.length - 1; c >= 0; c--) {
    const [a, b] = network[c];
    if (live.has(a) || live.has(b)) {
      live.add(a);
      live.add(b);
      kept.push(network[c]);
    }
  }
  return kept.reverse();
}

/** A network leaving the rank-r value at position r for every r in `ranks` (0 ≤ r < m). */
export function selectionNetwork(m: number, ranks: number[]): Comparator[] {
  for (const r of ranks) {
    if (!Number.isInteger(r) || r < 0 || r >= m)
      throw new Error(`selectionNetwork: rank ${r} out of [0, ${m})`);
  }
  const candidates = [prune(batcherSort(m), ranks)];
  let lo = 0;
  let hi = 0;
  for (const r of ranks) {
    if (r < m - 1 - r) lo = Math.max(lo, r + 1);
    else hi = Math.max(hi, m - r);
  }
  if (lo + hi <= m) candidates.push(prune(insertionNetwork(m, lo, hi), ranks));
  return candidates.reduce((a, b) => (b.length < a.length ? b : a));
}

/** Applies a network to a copy of `values` (reference implementation for tests and tools). */
export function applyNetwork(network: Comparator[], values: ArrayLike<number>): number[] {
  const v = Array.from(values);
  for (const [a, b] of network) {
    if (v[b] < v[a]) {
      const t = v[a];
      v[a] = v[b];
      v[b] = t;
    }
  }
  return v;
}
