/** Statistics of one measurement over seeds, as the benches report them. */
export interface SeedStats {
  mean: number;
  /** Sample standard deviation (n − 1). */
  std: number;
  /** The worst seed: the largest value for a loss, the smallest for an accuracy. */
  worst: number;
}

export function seedStats(xs: readonly number[], worse: 'higher' | 'lower'): SeedStats {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1));
  return { mean, std, worst: worse === 'higher' ? Math.max(...xs) : Math.min(...xs) };
}
