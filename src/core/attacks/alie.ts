/**
 * A Little Is Enough (Baruch et al., NeurIPS 2019). μ, σ: coordinate-wise mean and standard deviation of the
 * honest vectors (σ with `ddof`, default 1 = sample std, as ByzFL, torch.std and CRYPTO-KU).
 *
 * - Default (paper): x = μ − z·σ with s = ⌊n/2 + 1⌋ − f supporters needed and z = Φ⁻¹((n − s)/n), n the
 *   total number of workers. Sign as in CRYPTO-KU `attacks/alie.py` and the FA repo's `lie` (μ − 0.21σ).
 *   `zVariant: 'honest'` uses CRYPTO-KU's denominator instead: z = Φ⁻¹((n − f − s)/(n − f)).
 * - `z`: a given z, same sign convention x = μ − z·σ.
 * - `tau` (ByzFL `ALittleIsEnough(tau=1.5)`, also the NDSS'21 notebooks): x = μ + τ·σ, i.e. z = −τ.
 *
 * Table (paper / honest variant): (n, f) = (12, 2) → 0.2104 / 0.0; (13, 3) → 0.5024 / 0.2533;
 * (15, 3) → 0.4307 / 0.2104; (16, 3) → 0.3186 / 0.0966; (17, 4) → 0.5414 / 0.2934; (25, 5) → 0.4677 / 0.2533.
 */
import { normalQuantile } from './normal.ts';
import { OptionReader } from './options.ts';
import { outputBuffer, requireHonest } from './stats.ts';
import { AttackError, type Attack, type AttackContext, type AttackFactory } from './types.ts';

export type AlieZVariant = 'paper' | 'honest';

export interface AlieOptions {
  /** ByzFL convention x = μ + τσ (exclusive with z). */
  tau?: number;
  /** Paper convention x = μ − zσ with this z (exclusive with tau). */
  z?: number;
  /** How z is computed from (n, f) when neither tau nor z is given (default 'paper'). */
  zVariant?: AlieZVariant;
  /** Delta degrees of freedom of σ (default 1). */
  ddof?: number;
}

/**
 * z_max of the paper: s = ⌊n/2 + 1⌋ − f, z = Φ⁻¹((n − s)/n) ('paper') or Φ⁻¹((n − f − s)/(n − f)) ('honest',
 * CRYPTO-KU). Throws when the probability is outside (0, 1), i.e. z would be infinite.
 */
export function alieZ(n: number, f: number, variant: AlieZVariant = 'paper'): number {
  if (!Number.isInteger(n) || !Number.isInteger(f) || n < 1 || f < 0 || f >= n) {
    throw new AttackError(`alie: needs integers n ≥ 1 and 0 ≤ f < n (got n = ${n}, f = ${f})`);
  }
  const s = Math.floor(n / 2 + 1) - f;
  const p = variant === 'paper' ? (n - s) / n : (n - f - s) / (n - f);
  if (!(p > 0 && p < 1)) {
    throw new AttackError(
      `alie: z = Φ⁻¹(${p}) is infinite for n = ${n}, f = ${f} (s = ${s}, ${variant} formula); give z or tau`,
    );
  }
  return normalQuantile(p);
}

export const createAlie: AttackFactory = (options) => {
  const o = new OptionReader('alie', options, ['tau', 'z', 'zVariant', 'ddof']);
  if (o.has('tau') && o.has('z'))
    throw new AttackError("alie: give 'tau' (μ + τσ) or 'z' (μ − zσ), not both");
  const tau = o.optionalNumber('tau');
  const zGiven = o.optionalNumber('z');
  const zVariant = o.oneOf<AlieZVariant>('zVariant', ['paper', 'honest'], 'paper');
  const ddof = o.number('ddof', 1, { integer: true, min: 0 });
  return {
    name: 'alie',
    craft(ctx: AttackContext, out?: Float32Array): Float32Array {
      const h = requireHonest(ctx, 'alie');
      // x = μ + c·σ with c = τ, or c = −z.
      const c = tau !== undefined ? tau : -(zGiven ?? alieZ(ctx.n, ctx.f, zVariant));
      return meanPlusStd(h, c, ddof, outputBuffer(out, h[0].length));
    },
  } satisfies Attack;
};

/**
 * out = μ + c·σ (σ with ddof; 0 when |H| ≤ ddof), float64 per coordinate, one rounding. Row by row into float64
 * scratch (sums in worker order, so the result is the same as a per-coordinate loop, bit for bit): a column walk
 * across m arrays takes about twice as long at d ≈ 10⁵.
 */
export function meanPlusStd(
  vectors: Float32Array[],
  c: number,
  ddof: number,
  out: Float32Array,
): Float32Array {
  const m = vectors.length;
  const d = out.length;
  const inv = 1 / m;
  const denom = m - ddof;
  if (scratchMean.length < d) {
    scratchMean = new Float64Array(d);
    scratchSq = new Float64Array(d);
  }
  const mu = scratchMean;
  const q = scratchSq;
  mu.fill(0, 0, d);
  q.fill(0, 0, d);
  for (let i = 0; i < m; i++) {
    const v = vectors[i];
    for (let k = 0; k < d; k++) mu[k] += v[k];
  }
  for (let k = 0; k < d; k++) mu[k] *= inv;
  for (let i = 0; i < m; i++) {
    const v = vectors[i];
    for (let k = 0; k < d; k++) {
      const t = v[k] - mu[k];
      q[k] += t * t;
    }
  }
  for (let k = 0; k < d; k++) out[k] = denom > 0 ? mu[k] + c * Math.sqrt(q[k] / denom) : mu[k];
  return out;
}

let scratchMean = new Float64Array(0);
let scratchSq = new Float64Array(0);
