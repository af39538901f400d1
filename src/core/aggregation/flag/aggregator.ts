/**
 * Flag Aggregator (`flag`; Almasi, Mishra, Zhang & Ravi, "Flag Aggregator: Scalable Distributed Training under
 * Failures and Augmented Losses using Convex Optimization", ICLR 2023), Phalanx's default robust rule; the
 * rule and its defaults are described in docs/aggregation.md. Pure: no I/O, no randomness.
 *
 * ## Gram form (solver.ts)
 * Every quantity is a function of the p×p cosine Gram K = ĜᵀĜ of the normalised gradients ĝᵢ = gᵢ/‖gᵢ‖: one
 * O(p²d) pass builds R = GᵀG (the kernel registry's Gram, float64), K = D^{−1/2} R D^{−1/2};
 * subspaces are Y = Ĝ B (B p×r); the IRLS step's weighted d×q matrix X = Ĝ C (q = p, or p² with the λ columns)
 * only enters through M = C Cᵀ (p×p), so each step is a p×p symmetric eigenproblem of T = Lᵀ K L (M = L Lᵀ) —
 * never d×q, never q×q. Output Ĝ c with c = (1/r) B Bᵀ K 1 (= (1/r)·Y Yᵀ Σᵢ ĝᵢ, the reference's scaling, checked
 * against the vectors), reconstruction ratios vᵢ = ‖Bᵀ K eᵢ‖² = ‖Yᵀĝᵢ‖², then one O(pd) output pass
 * Σᵢ (α cᵢ/‖gᵢ‖) gᵢ.
 *
 * ## mode: 'reference' (alias compat: 'garfield')
 * Reproduces hamidralmasi/FlagAggregator `flag.aggregate` (one IRLS step of the flag median from Y₀ with ε = 1e-7,
 * weights (|1 − ‖Y₀ᵀĝᵢ‖²| + ε)^(−1/4), ordered-pair difference columns ĝᵢ − ĝⱼ weighted λ/(p(p−1))·(…)^(−1/4),
 * top-r left singular vectors, kept only if the objective Σᵢ √max(0, 1 − ‖Yᵀĝᵢ‖²) strictly decreased, else Y₀;
 * output (1/r) Y Yᵀ Σᵢ ĝᵢ; ĝ = g/max(‖g‖, 1e-12), zero vectors stay in as zero columns). Options: r (default 1,
 * or y0's width), lambda (0), epsilon (1e-7), y0 (d×r rows, the reference's random start; without it the weights
 * are uniform, the reference's high-dimension limit). Matches every FA entry of the reference vectors
 * (test/fixtures) to ≤ 3.5e-7 relative (float32 reference), and its own float64 Gram-form entries to ≤ 5e-8.
 *
 * ## mode: 'phalanx' (default)
 * Full IRLS of the flag median (relative objective change < `tolerance`, at most `maxIterations` steps) from a
 * deterministic start: uniform weights, i.e. the top-r eigenvectors of K (or, `warmStart`, last round's subspace),
 * then the options below. Defaults (FLAG_DEFAULTS):
 *   r: 'n-2f' (max(1, n − 2f), at most p − 1: see byzantineRank), lambda: 0, epsilon: 1e-7, maxIterations: 100,
 *   tolerance: 1e-6, signAware: true, signThreshold: −0.3, signSpread: null, signDirection: 'combined',
 *   signAxisThreshold: −0.8, signAxisSpread: null, minTrust: 0, rescale: 'median-norm', step: 'trusted-mean',
 *   vote: 'unit', readmit: false, warmStart: false.
 * Workers excluded by signAware/minTrust are dropped and the IRLS is re-run on the rest from a fresh start, so
 * excluded workers take no part in the output's linear combination (nor in the subspace). With `readmit`, the
 * sign-excluded ones are then scored against the kept workers' own references and those that pass come back
 * (one more refit).
 *
 * Health: trust = vᵢ ∈ [0, 1] (0 when excluded by the sign test: a flipped gradient has a high vᵢ, that is the
 * weakness); weight = α·cᵢ, the coefficient of ĝᵢ in the update (α = rescale factor); included = not zero,
 * non-finite, sign-excluded or below minTrust; cosine to the update from K. Diagnostics: r, iterations, objective
 * (and its history), converged, irlsWeights (wᵢ² = (sᵢ + ε)^(−1/2) at the final subspace), reconstructionRatios,
 * coefficients (cᵢ before rescaling), signScores, votes (ωᵢ, vote 'norm'), eigenvalues of K, subspaceEigenvalues,
 * rescaleFactor, excluded, readmitted (the workers `readmit` took back).
 *
 * Preconditions: n ≥ 1 vectors with at least one finite, non-zero one (p = the valid ones), r ≤ p, and
 * y0 (reference mode) with d rows. Cost: one O(p²d) Gram pass, p×p eigenproblems per IRLS step (λ > 0 adds a
 * p×p Cholesky and T = LᵀKL), one O(pd) output pass; warmStart adds r rows to the Gram pass and r output
 * columns. Why the defaults are what they are (sign awareness, r = n − 2f, median-norm rescaling, full IRLS):
 * docs/aggregation.md.
 */
import { PreconditionError } from '../types.ts';
import type {
  AggregationInput,
  AggregationResult,
  AggregationRule,
  RuleFactory,
  WorkerHealth,
} from '../types.ts';
import { linearCombination } from '../kernels/linear.ts';
import { computeGram } from '../kernels/registry.ts';
import { FLAG_DEFAULTS, parseFlagOptions } from './options.ts';
import type { FlagOptions } from './options.ts';
import {
  fitSubspace,
  flagObjective,
  irlsFlag,
  irlsWeights,
  mixingCoefficients,
  projections,
  reconstructionRatios,
  uniformWeights,
} from './solver.ts';
import type { IrlsResult } from './solver.ts';
import { symmetricEigen } from './symmetricEigen.ts';
import { flagExclusionText } from '../../reasonCodes.ts';

export { FLAG_DEFAULTS, parseFlagOptions };
export type { FlagOptions };

/** The reference normalises with F.normalize: ĝ = g / max(‖g‖, 1e-12). */
const NORMALIZE_EPS = 1e-12;
/** Slack on the sign test so that workers orthogonal to the robust direction are not excluded by rounding. */
const SIGN_SLACK = 1e-9;

type Status = 'ok' | 'zero' | 'non-finite';

/** A worker Flag's sign or trust test excluded, with the number it compared and the threshold. */
interface Exclusion {
  code: 'against-robust-direction' | 'low-trust';
  score: number;
  threshold: number;
  /** signAxisThreshold: excluded by the combined test's principal axis. */
  option?: 'signAxisThreshold';
}

interface Prepared {
  n: number;
  d: number;
  /** Gram of [vectors, extra] ((n + m)² row-major). */
  R: Float64Array;
  /** Stride of R (n + m). */
  N: number;
  norms: Float64Array;
  status: Status[];
}

interface WarmState {
  d: number;
  r: number;
  columns: Float32Array[];
}

function validateInput(input: AggregationInput): { n: number; d: number } {
  const { vectors, workerIds, f } = input;
  const n = vectors.length;
  if (workerIds.length !== n) {
    throw new PreconditionError(
      `flag needs one worker id per vector (${workerIds.length} ids, ${n} vectors)`,
    );
  }
  if (n < 1) throw new PreconditionError('flag needs n ≥ 1 vectors, got 0');
  if (!Number.isInteger(f) || f < 0) throw new PreconditionError(`flag needs an integer f ≥ 0, got ${f}`);
  const d = vectors[0].length;
  for (let i = 1; i < n; i++) {
    if (vectors[i].length !== d) {
      throw new PreconditionError(
        `flag needs vectors of equal length (vector ${i} has ${vectors[i].length}, not ${d})`,
      );
    }
  }
  return { n, d };
}

/** `gram`: the inputs' Gram matrix when the caller already has it (only without extra vectors). */
function prepare(input: AggregationInput, extra: Float32Array[], gram?: Float64Array): Prepared {
  const { n, d } = validateInput(input);
  const all = extra.length > 0 ? [...input.vectors, ...extra] : input.vectors;
  const R = gram && extra.length === 0 ? gram : computeGram(all);
  const N = all.length;
  const norms = new Float64Array(n);
  const status: Status[] = [];
  for (let i = 0; i < n; i++) {
    const rii = R[i * N + i];
    if (!Number.isFinite(rii)) {
      status.push('non-finite');
      norms[i] = 0;
    } else {
      norms[i] = Math.sqrt(rii);
      status.push(rii > 0 ? 'ok' : 'zero');
    }
  }
  return { n, d, R, N, norms, status };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : 0.5 * (s[m - 1] + s[m]);
}

function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

/** Sub-matrix K[rows, cols] (row-major |rows|×|cols|). */
function subMatrix(K: Float64Array, p: number, rows: number[], cols: number[]): Float64Array {
  const out = new Float64Array(rows.length * cols.length);
  for (let a = 0; a < rows.length; a++) {
    for (let b = 0; b < cols.length; b++) out[a * cols.length + b] = K[rows[a] * p + cols[b]];
  }
  return out;
}

/** Multiplicative margin on the noise edge used by r = 'auto'. */
const AUTO_EDGE_MARGIN = 1.1;

/**
 * r = 'auto': the number of eigenvalues of the cosine Gram K that stand clear of the noise bulk, i.e. exceed
 * 1.1·(1 + √(p/d))² (the Marchenko–Pastur upper edge of p independent unit vectors in d dimensions, with a 10 %
 * margin: a direction must carry clearly more than one worker's worth of energy), clamped to [1, min(rMax, p − 1)].
 * This counts the directions that stand above the noise bulk rather than looking for a ratio gap λₖ/λₖ₊₁ among
 * the signal eigenvalues, which f copies of one vector can make largest at r = 1 (and r = 1 then locks onto the
 * copies).
 */
export function chooseRank(eigenvalues: ArrayLike<number>, p: number, d: number, rMax: number): number {
  const edge = AUTO_EDGE_MARGIN * (1 + Math.sqrt(p / Math.max(d, 1))) ** 2;
  let count = 0;
  while (count < p && eigenvalues[count] > edge) count++;
  return Math.max(1, Math.min(count, rMax, p - 1));
}

/**
 * r = 'n-2f': max(1, n − 2f), at most p − 1. When honest gradients are noise-dominated (pairwise cosines near 0,
 * as on Dirichlet shards), the flag median of p nearly orthogonal unit vectors is a subspace through r of them
 * (objective ≈ p − r, while any subspace between them leaves every worker near 90°), so the IRLS weights pile
 * onto r workers and the update is about a sum of r gradients: with the noise edge's small r (often 1) it is
 * one worker's noise. n − 2f is the largest r that the n − f honest workers can still fill on their own after
 * f outliers among them are set aside (the count trimmed mean averages); it is also the bound of r = 'auto'.
 */
export function byzantineRank(n: number, f: number, p: number): number {
  return Math.max(1, Math.min(n - 2 * f, p - 1));
}

class FlagAggregator implements AggregationRule {
  readonly name = 'flag';
  private warm: WarmState | null = null;

  constructor(private readonly options: FlagOptions) {}

  aggregate(input: AggregationInput): AggregationResult {
    return this.options.mode === 'reference' ? this.aggregateReference(input) : this.aggregatePhalanx(input);
  }

  saveState(): Record<string, unknown> {
    const w = this.warm;
    return {
      version: 1,
      subspace: w ? { d: w.d, r: w.r, columns: w.columns.map((c) => Array.from(c)) } : null,
    };
  }

  loadState(state: Record<string, unknown>): void {
    if (state.version !== 1) throw new Error(`flag: unsupported state version ${String(state.version)}`);
    const s = state.subspace as { d?: unknown; r?: unknown; columns?: unknown } | null | undefined;
    if (s === null || s === undefined) {
      this.warm = null;
      return;
    }
    const { d, r, columns } = s;
    if (
      typeof d !== 'number' ||
      !Number.isInteger(d) ||
      d < 0 ||
      typeof r !== 'number' ||
      !Number.isInteger(r)
    ) {
      throw new Error('flag: state.subspace needs integer d and r');
    }
    if (!Array.isArray(columns) || columns.length < 1 || columns.length > r) {
      throw new Error('flag: state.subspace.columns must hold 1..r columns');
    }
    const cols = columns.map((c: unknown, k: number) => {
      if ((!Array.isArray(c) && !(c instanceof Float32Array)) || c.length !== d) {
        throw new Error(`flag: state.subspace.columns[${k}] must have length d = ${d}`);
      }
      const col = Float32Array.from(c as ArrayLike<number>);
      for (const x of col)
        if (!Number.isFinite(x)) throw new Error('flag: state.subspace has non-finite entries');
      return col;
    });
    this.warm = { d, r, columns: cols };
  }

  private aggregatePhalanx(input: AggregationInput): AggregationResult {
    const o = this.options;
    const { vectors, workerIds, f } = input;
    const { d } = validateInput(input);
    const warm = o.warmStart && this.warm !== null && this.warm.d === d ? this.warm : null;
    const pre = prepare(input, warm ? warm.columns : []);
    const { n, R, N, norms, status } = pre;

    const active: number[] = [];
    for (let i = 0; i < n; i++) if (status[i] === 'ok') active.push(i);
    const p = active.length;
    if (p === 0)
      throw new PreconditionError(`flag needs at least 1 valid (finite, non-zero) vector, got 0 of ${n}`);

    // Cosine Gram of the active workers.
    const K = new Float64Array(p * p);
    for (let a = 0; a < p; a++) {
      const ia = active[a];
      for (let b = 0; b < p; b++) {
        const ib = active[b];
        K[a * p + b] = R[ia * N + ib] / (norms[ia] * norms[ib]);
      }
    }
    const eigK = symmetricEigen(K, p);

    const rMax = o.rMax ?? Math.max(1, n - 2 * f);
    let r: number;
    if (o.r === 'auto') r = chooseRank(eigK.values, p, d, rMax);
    else if (o.r === 'n-2f') r = byzantineRank(n, f, p);
    else {
      r = o.r;
      if (r > p) throw new PreconditionError(`flag needs r ≤ p (r = ${r}, p = ${p} valid vectors)`);
    }

    // vote 'norm': ωᵢ = min(1, ‖gᵢ‖/m), m = the valid workers' median norm (null = 1 each).
    let votes: Float64Array | null = null;
    if (o.vote === 'norm') {
      const m = median(active.map((i) => norms[i]));
      votes = Float64Array.from(active, (i) => Math.min(1, norms[i] / m));
    }
    const irlsOptions = {
      lambda: o.lambda,
      epsilon: o.epsilon,
      maxIterations: o.maxIterations,
      tolerance: o.tolerance,
      votes,
    };
    let start: { P: Float64Array; r: number } | null = null;
    if (warm && warm.r === r) {
      const m = warm.columns.length;
      const P0 = new Float64Array(p * m);
      for (let a = 0; a < p; a++) {
        for (let k = 0; k < m; k++) P0[a * m + k] = R[active[a] * N + n + k] / norms[active[a]];
      }
      start = { P: P0, r: m };
    }
    const first = irlsFlag(K, p, r, irlsOptions, start);
    const rEff0 = first.fit.rEff;
    const v0 = reconstructionRatios(first.P, p, rEff0);

    // Sign-aware and trust filters on the first fit.
    const keep = new Array<boolean>(p).fill(true);
    // Why a worker was excluded, with the numbers the test compared (the text is written with its final cosine).
    const reasons = new Array<Exclusion | undefined>(p).fill(undefined);
    let signScores: Float64Array | null = null;
    let signCutoff: number | null = null;
    let axisScores: Float64Array | null = null;
    let axisCutoff: number | null = null;
    if (o.signAware && rEff0 > 0) {
      const activeNorms = active.map((i) => norms[i]);
      signScores =
        o.signDirection === 'clipped-mean'
          ? clippedMeanScores(K, activeNorms)
          : o.signDirection === 'combined'
            ? clippedMeanScores(K, activeNorms, longestNormBeyond(activeNorms, f))
            : robustDirectionScores(first.P, p, rEff0, K, votes);
      signCutoff = signThresholdFor(signScores, o.signThreshold, o.signSpread);
      if (o.signDirection === 'combined') {
        axisScores = robustDirectionScores(first.P, p, rEff0, K, votes);
        axisCutoff =
          o.signAxisSpread === null
            ? o.signAxisThreshold
            : Math.max(o.signAxisThreshold, signThresholdFor(axisScores, o.signThreshold, o.signAxisSpread));
      }
      for (let a = 0; a < p; a++) {
        if (signScores[a] < signCutoff - SIGN_SLACK) {
          keep[a] = false;
          reasons[a] = { code: 'against-robust-direction', score: signScores[a], threshold: o.signThreshold };
        } else if (axisScores && axisCutoff !== null && axisScores[a] < axisCutoff - SIGN_SLACK) {
          keep[a] = false;
          reasons[a] = {
            code: 'against-robust-direction',
            score: axisScores[a],
            threshold: axisCutoff,
            option: 'signAxisThreshold',
          };
        }
      }
    }
    if (o.minTrust > 0) {
      for (let a = 0; a < p; a++) {
        if (keep[a] && v0[a] < o.minTrust) {
          keep[a] = false;
          reasons[a] = { code: 'low-trust', score: v0[a], threshold: o.minTrust };
        }
      }
    }
    let S: number[] = [];
    for (let a = 0; a < p; a++) if (keep[a]) S.push(a);
    if (S.length === 0) {
      throw new PreconditionError('flag: every worker was excluded by signThreshold/minTrust; relax them');
    }

    // Refit on the kept workers, so that excluded workers take no part in the output's linear combination.
    // Fresh start on the kept set: a warm start from the first fit would keep its lock on an attacker's line
    // (the excluded worker's direction is still in that subspace).
    const fitOn = (kept: number[]) => {
      const refitted = kept.length < p;
      const votesK = votes && refitted ? Float64Array.from(kept, (a) => votes[a]) : votes;
      if (!refitted) return { KS: K, rS: r, votesS: votesK, final: first, refit: false };
      const KK = subMatrix(K, p, kept, kept);
      const rK = Math.min(r, kept.length);
      return {
        KS: KK,
        rS: rK,
        votesS: votesK,
        final: irlsFlag(KK, kept.length, rK, { ...irlsOptions, votes: votesK }),
        refit: true,
      };
    };
    let fitted = fitOn(S);
    let readmitted: number[] = [];
    // readmit: the sign tests again, against the kept workers' own references; a worker excluded only because
    // the first fit leaned on vectors that were then excluded (copies of one direction) comes back.
    if (o.readmit && fitted.refit && signScores && signCutoff !== null) {
      readmitted = signReadmissions(
        K,
        p,
        S,
        active.map((i) => norms[i]),
        f,
        fitted.final,
        o,
        votes,
        {
          sign: signCutoff,
          axis: axisCutoff,
          reasons,
        },
      );
      if (readmitted.length > 0) {
        for (const a of readmitted) {
          keep[a] = true;
          reasons[a] = undefined;
        }
        S = [];
        for (let a = 0; a < p; a++) if (keep[a]) S.push(a);
        fitted = fitOn(S);
      }
    }
    const s = S.length;
    const { KS, rS, votesS, final, refit } = fitted;
    const { B, rEff } = final.fit;
    const c =
      o.step === 'subspace'
        ? mixingCoefficients(KS, s, B, rEff, 1 / rS, votesS)
        : trustedMeanCoefficients(
            KS,
            S.map((a) => norms[active[a]]),
            o.step === 'projected-mean' ? B : null,
            rEff,
          );
    let outNorm2 = 0;
    for (let a = 0; a < s; a++) for (let b = 0; b < s; b++) outNorm2 += c[a] * KS[a * s + b] * c[b];
    const outNorm = Math.sqrt(Math.max(0, outNorm2));
    let alpha = 1;
    if (o.rescale !== 'none') {
      let target = median(S.map((a) => norms[active[a]]));
      // agreement ‖(1/s)·Σ ĝᵢ‖ = √(1ᵀ K_S 1)/s: the length of a mean of s unit vectors
      if (o.rescale === 'agreement') target *= Math.sqrt(Math.max(0, sumAll(KS))) / s;
      alpha = outNorm > 0 ? target / outNorm : 0;
    }

    // Output pass (and the subspace for next round's warm start).
    const used = S.map((a) => vectors[active[a]]);
    const coef = S.map((a, t) => (alpha * c[t]) / norms[active[a]]);
    const update = linearCombination(used, coef, d);
    if (o.warmStart) {
      const columns: Float32Array[] = [];
      for (let k = 0; k < rEff; k++) {
        columns.push(
          linearCombination(
            used,
            S.map((a, t) => B[t * rEff + k] / norms[active[a]]),
            d,
          ),
        );
      }
      this.warm = columns.length > 0 ? { d, r, columns } : null;
    }

    // Per-worker quantities for every active worker against the final subspace and output.
    const KAS = refit
      ? subMatrix(
          K,
          p,
          Array.from({ length: p }, (_, a) => a),
          S,
        )
      : K;
    const Pall = new Float64Array(p * rEff);
    const dotOut = new Float64Array(p);
    for (let a = 0; a < p; a++) {
      for (let k = 0; k < rEff; k++) {
        let acc = 0;
        for (let t = 0; t < s; t++) acc += KAS[a * s + t] * B[t * rEff + k];
        Pall[a * rEff + k] = acc;
      }
      let acc = 0;
      for (let t = 0; t < s; t++) acc += KAS[a * s + t] * c[t];
      dotOut[a] = acc;
    }
    const v = reconstructionRatios(Pall, p, rEff);
    const wFinal = irlsWeights(Pall, p, rEff, 0, o.epsilon).w2;

    const pos = new Int32Array(n).fill(-1);
    active.forEach((i, a) => (pos[i] = a));
    const posS = new Int32Array(p).fill(-1);
    S.forEach((a, t) => (posS[a] = t));
    const workers: WorkerHealth[] = [];
    const irlsW: number[] = new Array<number>(n).fill(0);
    const ratios: number[] = new Array<number>(n).fill(0);
    const coefficients: number[] = new Array<number>(n).fill(0);
    const scores: (number | null)[] = new Array<number | null>(n).fill(null);
    for (let i = 0; i < n; i++) {
      const a = pos[i];
      if (a < 0) {
        workers.push({
          index: i,
          workerId: workerIds[i],
          included: false,
          trust: 0,
          weight: 0,
          norm: norms[i],
          cosine: 0,
          reason: status[i] === 'zero' ? 'zero-vector' : 'non-finite',
          reasonCode: status[i] === 'zero' ? 'zero-vector' : 'non-finite',
        });
        continue;
      }
      const t = posS[a];
      const cosine = outNorm > 0 && alpha !== 0 ? (Math.sign(alpha) * dotOut[a]) / outNorm : 0;
      ratios[i] = v[a];
      irlsW[i] = wFinal[a];
      if (signScores) scores[i] = signScores[a];
      if (t >= 0) {
        coefficients[i] = c[t];
        workers.push({
          index: i,
          workerId: workerIds[i],
          included: true,
          trust: clamp01(v[a]),
          weight: alpha * c[t],
          norm: norms[i],
          cosine,
        });
      } else {
        const why = reasons[a]!;
        workers.push({
          index: i,
          workerId: workerIds[i],
          included: false,
          trust: why.code === 'low-trust' ? clamp01(v0[a]) : 0,
          weight: 0,
          norm: norms[i],
          cosine,
          reason: flagExclusionText(why.code, why.score, why.threshold, cosine, why.option),
          reasonCode: why.code,
          reasonFacts: {
            score: why.score,
            threshold: why.threshold,
            ...(why.option ? { option: why.option } : {}),
          },
        });
      }
    }

    return {
      update,
      workers,
      diagnostics: {
        mode: 'phalanx',
        r,
        rRequested: o.r,
        rEffective: rEff,
        lambda: o.lambda,
        iterations: first.iterations + (refit ? final.iterations : 0),
        converged: final.converged && first.converged,
        objective: final.objective,
        objectiveHistory: first.history,
        refitObjectiveHistory: refit ? final.history : null,
        warmStarted: start !== null,
        irlsWeights: irlsW,
        reconstructionRatios: ratios,
        coefficients,
        signScores: signScores ? scores : null,
        signCutoff,
        axisCutoff,
        axisScores: axisScores
          ? Array.from({ length: n }, (_, i) => (pos[i] >= 0 ? axisScores[pos[i]] : null))
          : null,
        votes: votes ? Array.from({ length: n }, (_, i) => (pos[i] >= 0 ? votes[pos[i]] : 0)) : null,
        excluded: workers.filter((w) => !w.included).map((w) => w.index),
        readmitted: readmitted.map((a) => active[a]),
        eigenvalues: Array.from(eigK.values),
        subspaceEigenvalues: Array.from(final.fit.mu.subarray(0, rEff)),
        rescaleFactor: alpha,
        outputNorm: outNorm * Math.abs(alpha),
      },
    };
  }

  private aggregateReference(input: AggregationInput): AggregationResult {
    const o = this.options;
    const { vectors, workerIds } = input;
    const { d } = validateInput(input);
    const y0 = o.y0;
    if (y0 && y0[0].length !== d) {
      throw new PreconditionError(`flag (reference) needs y0 with d = ${d} rows, it has ${y0[0].length}`);
    }
    const pre = prepare(input, y0 ?? []);
    const { n, R, N, norms, status } = pre;
    const active: number[] = [];
    for (let i = 0; i < n; i++) if (status[i] !== 'non-finite') active.push(i);
    const p = active.length;
    if (p === 0) throw new PreconditionError(`flag needs at least 1 valid (finite) vector, got 0 of ${n}`);
    const r = o.r as number;
    if (r > p) throw new PreconditionError(`flag needs r ≤ p (r = ${r}, p = ${p} valid vectors)`);
    const scale = active.map((i) => 1 / Math.max(norms[i], NORMALIZE_EPS));
    const K = new Float64Array(p * p);
    for (let a = 0; a < p; a++) {
      for (let b = 0; b < p; b++) K[a * p + b] = R[active[a] * N + active[b]] * scale[a] * scale[b];
    }

    // Start: P₀ = ĜᵀY₀, or P₀ = 0 (uniform weights) without Y₀.
    const r0 = y0 ? r : 1;
    const P0 = new Float64Array(p * r0);
    if (y0) {
      for (let a = 0; a < p; a++)
        for (let k = 0; k < r; k++) P0[a * r + k] = R[active[a] * N + n + k] * scale[a];
    }
    const J0 = flagObjective(P0, p, r0);
    const weights = y0 ? irlsWeights(P0, p, r0, o.lambda, o.epsilon) : uniformWeights(p, o.lambda, o.epsilon);
    let accepted = false;
    let J1 = J0;
    let fit = null;
    let P1: Float64Array | null = null;
    if (J0 > 1e-10) {
      fit = fitSubspace(K, p, weights, r);
      P1 = projections(K, p, fit.B, fit.rEff);
      J1 = flagObjective(P1, p, fit.rEff);
      accepted = J0 - J1 > 0;
    }

    let update: Float32Array;
    let v: Float64Array;
    let c: Float64Array;
    let dotOut: Float64Array;
    let outNorm: number;
    if (accepted && fit && P1) {
      c = mixingCoefficients(K, p, fit.B, fit.rEff, 1 / r);
      update = linearCombination(
        active.map((i) => vectors[i]),
        active.map((_, a) => c[a] * scale[a]),
        d,
      );
      v = reconstructionRatios(P1, p, fit.rEff);
      dotOut = new Float64Array(p);
      let q = 0;
      for (let a = 0; a < p; a++) {
        let acc = 0;
        for (let b = 0; b < p; b++) acc += K[a * p + b] * c[b];
        dotOut[a] = acc;
        q += c[a] * acc;
      }
      outNorm = Math.sqrt(Math.max(0, q));
    } else {
      // The reference keeps its start Y₀: output (1/r) Y₀ Y₀ᵀ Σᵢ ĝᵢ (zero without a Y₀).
      c = new Float64Array(p).fill(y0 ? 1 / r : 0);
      const sums = new Float64Array(r0);
      for (let a = 0; a < p; a++) for (let k = 0; k < r0; k++) sums[k] += P0[a * r0 + k];
      update = y0
        ? linearCombination(
            y0,
            Array.from(sums, (x) => x / r),
            d,
          )
        : new Float32Array(d);
      v = reconstructionRatios(P0, p, r0);
      dotOut = new Float64Array(p);
      for (let a = 0; a < p; a++) {
        let acc = 0;
        for (let k = 0; k < r0; k++) acc += P0[a * r0 + k] * sums[k];
        dotOut[a] = y0 ? acc / r : 0;
      }
      let q = 0;
      if (y0) {
        for (let k = 0; k < r; k++)
          for (let l = 0; l < r; l++) q += sums[k] * R[(n + k) * N + n + l] * sums[l];
      }
      outNorm = Math.sqrt(Math.max(0, q)) / r;
    }

    const pos = new Int32Array(n).fill(-1);
    active.forEach((i, a) => (pos[i] = a));
    const workers: WorkerHealth[] = [];
    const irlsW: number[] = new Array<number>(n).fill(0);
    const ratios: number[] = new Array<number>(n).fill(0);
    const coefficients: number[] = new Array<number>(n).fill(0);
    for (let i = 0; i < n; i++) {
      const a = pos[i];
      if (a < 0) {
        workers.push({
          index: i,
          workerId: workerIds[i],
          included: false,
          trust: 0,
          weight: 0,
          norm: 0,
          cosine: 0,
          reason: 'non-finite',
          reasonCode: 'non-finite',
        });
        continue;
      }
      irlsW[i] = weights.w2[a];
      ratios[i] = v[a];
      coefficients[i] = c[a];
      const zero = status[i] === 'zero';
      workers.push({
        index: i,
        workerId: workerIds[i],
        included: !zero,
        trust: zero ? 0 : clamp01(v[a]),
        weight: zero ? 0 : c[a],
        norm: norms[i],
        cosine: zero || outNorm === 0 ? 0 : dotOut[a] / outNorm,
        ...(zero ? { reason: 'zero-vector', reasonCode: 'zero-vector' as const } : {}),
      });
    }
    return {
      update,
      workers,
      diagnostics: {
        mode: 'reference',
        r,
        rEffective: accepted && fit ? fit.rEff : r0,
        lambda: o.lambda,
        startFrom: y0 ? 'y0' : 'uniform-weights',
        acceptedStep: accepted,
        iterations: J0 > 1e-10 ? 1 : 0,
        objectiveStart: J0,
        objective: accepted ? J1 : J0,
        irlsWeights: irlsW,
        reconstructionRatios: ratios,
        coefficients,
        subspaceEigenvalues: fit ? Array.from(fit.mu.subarray(0, fit.rEff)) : [],
        outputNorm: outNorm,
      },
    };
  }
}

/**
 * Cosine of each worker to the robust direction u = Y a: a is the principal axis of the projections Pᵢ inside
 * the subspace (sign-blind), oriented by Σᵢ mᵢ·⟨Pᵢ, a⟩ where mᵢ is worker i's median cosine to the others.
 * With an honest majority, honest workers have mᵢ > 0 and point along u, and flipped attackers have mᵢ < 0
 * and point against it, so every worker votes for the same orientation. (A plain one-worker-one-vote majority
 * of signs fails when honest gradients are noisy: with 4 honest and 2 flipped, two honest workers on the
 * wrong side of the axis are enough to hand the direction to the attackers — seen in the 6-worker demo.)
 * Ties fall back to that majority vote, then the sum of projections, then the lowest index. With `votes` ωᵢ
 * (vote 'norm'), worker i's projection weighs ωᵢ in the axis (Σᵢ ωᵢ·PᵢPᵢᵀ) and in the orientation.
 */
function robustDirectionScores(
  P: Float64Array,
  p: number,
  r: number,
  K: Float64Array,
  votes: Float64Array | null = null,
  extraRows = 0,
): Float64Array {
  let axis: Float64Array;
  if (r === 1) axis = Float64Array.of(1);
  else {
    const C = new Float64Array(r * r);
    for (let i = 0; i < p; i++) {
      const w = votes === null ? 1 : votes[i];
      for (let k = 0; k < r; k++) for (let l = 0; l < r; l++) C[k * r + l] += w * P[i * r + k] * P[i * r + l];
    }
    const e = symmetricEigen(C, r);
    axis = new Float64Array(r);
    for (let k = 0; k < r; k++) axis[k] = e.vectors[k * r];
  }
  // Rows p … p + extraRows − 1 of P are scored on the axis the first p rows define and orient.
  const proj = new Float64Array(p + extraRows);
  for (let i = p; i < p + extraRows; i++) {
    let x = 0;
    for (let k = 0; k < r; k++) x += P[i * r + k] * axis[k];
    proj[i] = x;
  }
  let vote = 0;
  let sum = 0;
  let firstSign = 0;
  for (let i = 0; i < p; i++) {
    let x = 0;
    for (let k = 0; k < r; k++) x += P[i * r + k] * axis[k];
    proj[i] = x;
    sum += x;
    if (x > SIGN_SLACK) vote++;
    else if (x < -SIGN_SLACK) vote--;
    if (firstSign === 0 && Math.abs(x) > SIGN_SLACK) firstSign = Math.sign(x);
  }
  const centrality = medianCosines(K, p);
  let oriented = 0;
  for (let i = 0; i < p; i++) oriented += (votes === null ? 1 : votes[i]) * centrality[i] * proj[i];
  const flip =
    oriented < -SIGN_SLACK ||
    (Math.abs(oriented) <= SIGN_SLACK &&
      (vote < 0 || (vote === 0 && (sum < 0 || (sum === 0 && firstSign < 0)))));
  if (flip) for (let i = 0; i < p + extraRows; i++) proj[i] = -proj[i];
  return proj;
}

/**
 * `readmit`: the workers the sign tests excluded that pass them against the kept set S alone. The references are
 * rebuilt from S: its mean clipped at the (f+1)-th longest of its norms ('combined'; its median norm for
 * 'clipped-mean') and the principal axis of its projections on the refit subspace Y = Ĝ_S B, oriented by S.
 * The cutoffs are the first pass's. Returns the readmitted positions (workers excluded by minTrust stay out).
 */
function signReadmissions(
  K: Float64Array,
  p: number,
  S: number[],
  norms: number[],
  f: number,
  fit: IrlsResult,
  o: FlagOptions,
  votes: Float64Array | null,
  cut: { sign: number; axis: number | null; reasons: (Exclusion | undefined)[] },
): number[] {
  const kept = new Set(S);
  const out: number[] = [];
  for (let a = 0; a < p; a++) {
    if (!kept.has(a) && cut.reasons[a]?.code === 'against-robust-direction') out.push(a);
  }
  if (out.length === 0) return [];
  const s = S.length;
  const pass = new Array<boolean>(out.length).fill(true);
  if (o.signDirection !== 'principal-axis') {
    const normsS = S.map((a) => norms[a]);
    const clip = o.signDirection === 'combined' ? longestNormBeyond(normsS, f) : median(normsS);
    const scores = clippedMeanScores(K, norms, clip, kept);
    out.forEach((a, e) => {
      if (scores[a] < cut.sign - SIGN_SLACK) pass[e] = false;
    });
  }
  const { B, rEff } = fit.fit;
  if (o.signDirection !== 'clipped-mean' && rEff > 0) {
    // projections on Y = Ĝ_S B of S's rows, then of the excluded ones: ĝₐᵀY = Σₜ K[a, Sₜ]·B[t, ·]
    const rows = [...S, ...out];
    const P = new Float64Array(rows.length * rEff);
    rows.forEach((a, i) => {
      for (let k = 0; k < rEff; k++) {
        let acc = 0;
        for (let t = 0; t < s; t++) acc += K[a * p + S[t]] * B[t * rEff + k];
        P[i * rEff + k] = acc;
      }
    });
    const votesS = votes ? Float64Array.from(S, (a) => votes[a]) : null;
    const scores = robustDirectionScores(P, s, rEff, subMatrix(K, p, S, S), votesS, out.length);
    const cutoff = o.signDirection === 'combined' ? (cut.axis ?? cut.sign) : cut.sign;
    out.forEach((_, e) => {
      if (scores[s + e] < cutoff - SIGN_SLACK) pass[e] = false;
    });
  }
  return out.filter((_, e) => pass[e]);
}

/**
 * The principal-axis sign test's scores of raw inputs (r = n − 2f, the flag median by IRLS, the principal axis
 * of the projections oriented by the workers' median cosines; signDirection 'principal-axis'): each vector's
 * cosine to that robust direction, 0 for a zero or non-finite vector. Used by NNM's sign screen, before mixing,
 * which passes the n × n Gram matrix of `vectors` it has already computed (`gram`, float64, row-major).
 */
export function flagSignScores(vectors: Float32Array[], f: number, gram?: Float64Array): Float64Array {
  const workerIds = vectors.map((_, i) => `x${i}`);
  if (gram && gram.length !== vectors.length * vectors.length) {
    throw new Error(`flagSignScores: gram has ${gram.length} entries for ${vectors.length} vectors`);
  }
  const { n, R, N, norms, status } = prepare({ vectors, workerIds, f }, [], gram);
  const out = new Float64Array(n);
  const active: number[] = [];
  for (let i = 0; i < n; i++) if (status[i] === 'ok') active.push(i);
  const p = active.length;
  if (p < 2) return out;
  const K = new Float64Array(p * p);
  for (let a = 0; a < p; a++) {
    for (let b = 0; b < p; b++)
      K[a * p + b] = R[active[a] * N + active[b]] / (norms[active[a]] * norms[active[b]]);
  }
  const d = FLAG_DEFAULTS;
  const fit = irlsFlag(K, p, byzantineRank(n, f, p), {
    lambda: d.lambda,
    epsilon: d.epsilon,
    maxIterations: d.maxIterations,
    tolerance: d.tolerance,
  });
  if (fit.fit.rEff === 0) return out;
  const scores = robustDirectionScores(fit.P, p, fit.fit.rEff, K);
  active.forEach((i, a) => (out[i] = scores[a]));
  return out;
}

/** Factory registered as `flag`. Options: see {@link FlagOptions} and the module comment. */
export const createFlagAggregator: RuleFactory = (options) =>
  new FlagAggregator(parseFlagOptions(options ?? {}));

/** Σ of all entries of a square matrix. */
function sumAll(M: Float64Array): number {
  let acc = 0;
  for (const x of M) acc += x;
  return acc;
}

/** Scale of the median absolute deviation that makes it estimate σ for Gaussian data. */
const MAD_SCALE = 1.4826;

/**
 * The sign test's cutoff: `threshold`, or with `spread` = k the lower of it and median − k·1.4826·MAD of the
 * scores. Honest cosines to the robust direction spread out on non-IID shards (some sit below −0.3); a flipped
 * gradient sits near −1, outside that spread, so the cutoff follows the honest workers' agreement.
 */
export function signThresholdFor(
  scores: ArrayLike<number>,
  threshold: number,
  spread: number | null,
): number {
  if (spread === null || scores.length === 0) return threshold;
  const xs = Array.from(scores);
  const m = median(xs);
  const mad = median(xs.map((x) => Math.abs(x - m)));
  return Math.min(threshold, m - spread * MAD_SCALE * mad);
}

/** The (f+1)-th longest of the norms (the shortest when there are at most f): clipping there shortens ≤ f vectors. */
export function longestNormBeyond(norms: number[], f: number): number {
  const desc = [...norms].sort((a, b) => b - a);
  return desc[Math.min(f, desc.length - 1)];
}

/**
 * Cosine of each worker to c = Σⱼ min(‖gⱼ‖, m)·ĝⱼ (m = the median norm unless given), from the cosine Gram
 * alone: ⟨ĝᵢ, c⟩ = (K w)ᵢ and ‖c‖² = wᵀ K w with wⱼ = min(‖gⱼ‖, m). With `members`, only they make up c (wⱼ = 0
 * for the others, who are still scored). All zero when c = 0.
 */
export function clippedMeanScores(
  K: Float64Array,
  norms: number[],
  clipAt?: number,
  members?: ReadonlySet<number>,
): Float64Array {
  const p = norms.length;
  const m = clipAt ?? median(norms);
  const w = norms.map((x, j) => (members && !members.has(j) ? 0 : Math.min(x, m)));
  const kw = new Float64Array(p);
  let cc = 0;
  for (let i = 0; i < p; i++) {
    let acc = 0;
    for (let j = 0; j < p; j++) acc += K[i * p + j] * w[j];
    kw[i] = acc;
    cc += w[i] * acc;
  }
  const cn = Math.sqrt(Math.max(0, cc));
  return kw.map((x) => (cn > 0 ? x / cn : 0));
}

/**
 * Coefficients on the kept workers' unit vectors ĝᵢ of their clipped mean x = (1/s)·Σᵢ min(‖gᵢ‖, m)·ĝᵢ
 * (m = their median norm), or with B (Y = Ĝ B orthonormal) of its projection onto the flag subspace,
 * YYᵀx = Ĝ·B Bᵀ K w with wᵢ = min(‖gᵢ‖, m)/s.
 */
export function trustedMeanCoefficients(
  K: Float64Array,
  norms: number[],
  B: Float64Array | null,
  r: number,
): Float64Array {
  const s = norms.length;
  const m = median(norms);
  const w = Float64Array.from(norms, (x) => Math.min(x, m) / s);
  if (B === null) return w;
  const kw = new Float64Array(s);
  for (let j = 0; j < s; j++) for (let l = 0; l < s; l++) kw[j] += K[j * s + l] * w[l];
  const t = new Float64Array(r);
  for (let k = 0; k < r; k++) for (let j = 0; j < s; j++) t[k] += B[j * r + k] * kw[j];
  const c = new Float64Array(s);
  for (let i = 0; i < s; i++) {
    let acc = 0;
    for (let k = 0; k < r; k++) acc += B[i * r + k] * t[k];
    c[i] = acc;
  }
  return c;
}

/** For each worker, the median of its cosines to the other workers (K is the p×p cosine Gram matrix). */
function medianCosines(K: Float64Array, p: number): Float64Array {
  const out = new Float64Array(p);
  if (p < 2) return out;
  const row = new Float64Array(p - 1);
  for (let i = 0; i < p; i++) {
    let k = 0;
    for (let j = 0; j < p; j++) if (j !== i) row[k++] = K[i * p + j];
    row.sort();
    const m = row.length;
    out[i] = m % 2 ? row[(m - 1) / 2] : (row[m / 2 - 1] + row[m / 2]) / 2;
  }
  return out;
}
