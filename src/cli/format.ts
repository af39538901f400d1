/** Number and duration formats of the CLI's human output. Pure. */

/**
 * A loss or other quantity of any magnitude, compactly: three significant digits between 0.001 and 10 000
 * (0.588, 2.38, 41.7, 1234), exponent form outside (5.00e36, 1.23e-5), never a long fixed-point string.
 */
export function formatNumber(x: number): string {
  if (Number.isNaN(x)) return '–';
  if (!Number.isFinite(x)) return x > 0 ? '∞' : '-∞';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e-3 && a < 1e4) {
    const decimals = Math.max(0, 2 - Math.floor(Math.log10(a)));
    let text = x.toFixed(decimals);
    // Rounding can carry into a new digit (9.996 → "10.00"): one decimal fewer keeps three significant digits.
    if (Math.abs(Number(text)) >= 10 ** (Math.floor(Math.log10(a)) + 1) && decimals > 0) {
      text = x.toFixed(decimals - 1);
    }
    if (Math.abs(Number(text)) < 1e4) return text;
  }
  return x.toExponential(2).replace('e+', 'e');
}

/** An accuracy in [0, 1] as a percentage with one decimal ("81.2%"), '–' when unknown. */
export function formatPercent(x: number): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : '–';
}

/** Seconds as 0s, 45s, 1m10s, 2h05m (rounded to the second). */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
