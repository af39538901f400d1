/**
 * Robust plan statistics: every worker reports its own flat L × |C| error table and the coordinator takes the
 * coordinate-wise median. With f < n/2 liars, each median entry lies between the smallest and the largest honest
 * entry (at least ⌊(n−1)/2⌋ + 1 honest values sit on each side of the middle), so a minority can move the
 * statistics only within the honest range — and not at all when the honest workers agree. NaN counts as +∞
 * and a negative entry as 0 (squared errors are never negative); tables of the wrong length are left out.
 */
export function medianErrorTable(tables: readonly Float64Array[], length: number): Float64Array {
  const valid = tables.filter((t) => t.length === length);
  if (valid.length === 0) throw new RangeError(`median: no error table of length ${length}`);
  const n = valid.length;
  const column = new Float64Array(n);
  const out = new Float64Array(length);
  for (let i = 0; i < length; i++) {
    for (let w = 0; w < n; w++) {
      const v = valid[w][i];
      column[w] = v === v ? Math.max(0, v) : Infinity; // squared errors are ≥ 0
    }
    column.sort();
    out[i] = n % 2 === 1 ? column[(n - 1) >> 1] : middle(column[n / 2 - 1], column[n / 2]);
  }
  return out;
}

/** Mean of the two middle values; equal infinities stay infinite instead of becoming NaN. */
function middle(a: number, b: number): number {
  return a === b ? a : a / 2 + b / 2;
}
