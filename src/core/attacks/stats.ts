/**
 * Shared statistics for the attacks: coordinate-wise mean μ and standard deviation σ of a set of vectors
 * (float64 accumulation, one coordinate at a time so no d-sized scratch is needed), context checks, and the
 * own-history ring buffer a real worker uses to estimate μ and σ from its own recent batch gradients.
 */
import { AttackError, type AttackContext } from './types.ts';

type FloatArray = Float32Array | Float64Array;

/** The attack's output buffer: `out` if it has length `d`, else a new array. */
export function outputBuffer(out: Float32Array | undefined, d: number): Float32Array {
  return out !== undefined && out.length === d ? out : new Float32Array(d);
}

/** Checks that `vectors` is non-empty (at least `min`) and that all have the same length; returns it. */
export function commonLength(vectors: Float32Array[], what: string, min = 1): number {
  if (vectors.length < min) {
    throw new AttackError(`${what}: needs at least ${min} vector(s), got ${vectors.length}`);
  }
  const d = vectors[0].length;
  for (let i = 1; i < vectors.length; i++) {
    if (vectors[i].length !== d) {
      throw new AttackError(`${what}: vectors have different lengths (${d} and ${vectors[i].length})`);
    }
  }
  return d;
}

/** The honest vectors of the context, checked (non-empty, equal lengths). */
export function requireHonest(ctx: AttackContext, attack: string, min = 1): Float32Array[] {
  commonLength(ctx.honest, `${attack} (ctx.honest)`, min);
  return ctx.honest;
}

/** The attacker's own gradient, or an error naming the attack. */
export function requireOwn(ctx: AttackContext, attack: string): Float32Array {
  if (ctx.own === undefined) throw new AttackError(`${attack}: needs ctx.own (the attacker's own gradient)`);
  return ctx.own;
}

/** The model dimension: length of `own`, else of the honest vectors, else `ctx.d`. */
export function dimension(ctx: AttackContext, attack: string): number {
  if (ctx.own !== undefined) return ctx.own.length;
  if (ctx.honest.length > 0) return commonLength(ctx.honest, `${attack} (ctx.honest)`);
  if (ctx.d !== undefined && Number.isInteger(ctx.d) && ctx.d >= 0) return ctx.d;
  throw new AttackError(`${attack}: cannot tell the dimension (no ctx.own, ctx.honest or ctx.d)`);
}

/** μ = (1/m) Σᵢ vᵢ, coordinate-wise, accumulated in float64. */
export function meanInto<T extends FloatArray>(vectors: Float32Array[], out: T): T {
  const m = vectors.length;
  const d = out.length;
  const inv = 1 / m;
  for (let k = 0; k < d; k++) {
    let s = 0;
    for (let i = 0; i < m; i++) s += vectors[i][k];
    out[k] = s * inv;
  }
  return out;
}

/**
 * μ and σ = sqrt(Σᵢ (vᵢ − μ)² / (m − ddof)), coordinate-wise (two-pass, float64). With m ≤ ddof samples σ is
 * taken as 0 rather than NaN (the FA repo's `lie` attack produced NaN from a single sample, report Q4).
 */
export function meanStdInto(vectors: Float32Array[], ddof: number, mean: FloatArray, std: FloatArray): void {
  const m = vectors.length;
  const d = mean.length;
  const inv = 1 / m;
  const denom = m - ddof;
  for (let k = 0; k < d; k++) {
    let s = 0;
    for (let i = 0; i < m; i++) s += vectors[i][k];
    const mu = s * inv;
    let q = 0;
    for (let i = 0; i < m; i++) {
      const t = vectors[i][k] - mu;
      q += t * t;
    }
    mean[k] = mu;
    std[k] = denom > 0 ? Math.sqrt(q / denom) : 0;
  }
}

/** Copies `src` into `dst` (same length). */
export function copyInto(src: Float32Array, dst: Float32Array): Float32Array {
  if (src !== dst) dst.set(src);
  return dst;
}

/**
 * A preallocated ring buffer of a worker's own last `capacity` gradients (copies). A real worker process has no
 * view of the other workers, so it runs the omniscient attacks with `honest: history.vectors()`: μ and σ are
 * then estimated from its own batches (as the FA repo's `lie`/`empire` workers do with their own gradients).
 */
export class GradientHistory {
  readonly d: number;
  readonly capacity: number;
  private readonly slots: Float32Array[];
  private readonly ordered: Float32Array[] = [];
  private next = 0;
  private count = 0;

  constructor(d: number, capacity: number) {
    if (!Number.isInteger(d) || d < 0) throw new AttackError(`GradientHistory: d must be an integer ≥ 0`);
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new AttackError(`GradientHistory: capacity must be an integer ≥ 1`);
    }
    this.d = d;
    this.capacity = capacity;
    this.slots = Array.from({ length: capacity }, () => new Float32Array(d));
  }

  /** Number of gradients stored (≤ capacity). */
  get size(): number {
    return this.count;
  }

  /** Stores a copy of `g`, overwriting the oldest once full. */
  push(g: Float32Array): void {
    if (g.length !== this.d) {
      throw new AttackError(`GradientHistory: expected length ${this.d}, got ${g.length}`);
    }
    this.slots[this.next].set(g);
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
  }

  /**
   * The stored gradients, oldest first. The array and its vectors are internal (reused by later calls and
   * overwritten by `push`): read them, don't keep or mutate them.
   */
  vectors(): Float32Array[] {
    this.ordered.length = 0;
    const start = this.count < this.capacity ? 0 : this.next;
    for (let i = 0; i < this.count; i++) this.ordered.push(this.slots[(start + i) % this.capacity]);
    return this.ordered;
  }

  /** The most recently pushed gradient (internal buffer), if any. */
  latest(): Float32Array | undefined {
    if (this.count === 0) return undefined;
    return this.slots[(this.next + this.capacity - 1) % this.capacity];
  }

  clear(): void {
    this.next = 0;
    this.count = 0;
  }
}

export interface OwnEstimate {
  /** μ̂: mean of the stored own gradients. */
  mean: Float32Array;
  /** σ̂: their coordinate-wise standard deviation (ddof as requested; 0 with too few samples). */
  std: Float32Array;
  /** How many gradients the estimate is based on. */
  count: number;
}

/**
 * μ̂ and σ̂ from a worker's own last k gradients. Pass `out` (two length-d buffers) to avoid allocation.
 * Default ddof = 1 (sample std, as ByzFL's ALIE and torch.std).
 */
export function estimateFromOwnHistory(
  history: GradientHistory,
  options: { ddof?: number } = {},
  out?: { mean: Float32Array; std: Float32Array },
): OwnEstimate {
  const ddof = options.ddof ?? 1;
  const vectors = history.vectors();
  if (vectors.length === 0) throw new AttackError('estimateFromOwnHistory: the history is empty');
  const mean = outputBuffer(out?.mean, history.d);
  const std = outputBuffer(out?.std, history.d);
  meanStdInto(vectors, ddof, mean, std);
  return { mean, std, count: vectors.length };
}

/** out[k] = factor · μ[k] with μ the coordinate-wise mean of `vectors` (float64, one rounding). */
export function scaledMeanInto(vectors: Float32Array[], factor: number, out: Float32Array): Float32Array {
  const m = vectors.length;
  const d = out.length;
  const c = factor / m;
  for (let k = 0; k < d; k++) {
    let s = 0;
    for (let i = 0; i < m; i++) s += vectors[i][k];
    out[k] = s * c;
  }
  return out;
}

/** out[k] = factor · v[k]. */
export function scaleInto(v: Float32Array, factor: number, out: Float32Array): Float32Array {
  const d = out.length;
  for (let k = 0; k < d; k++) out[k] = factor * v[k];
  return out;
}

/**
 * The attacker's honest vector for attacks that perturb or delay "what it would have sent": its own gradient
 * when it has one, else the honest mean μ. Written into `out` (length d).
 */
export function honestBaseInto(ctx: AttackContext, attack: string, out: Float32Array): Float32Array {
  if (ctx.own !== undefined) return copyInto(ctx.own, out);
  if (ctx.honest.length === 0) {
    throw new AttackError(`${attack}: needs ctx.own or ctx.honest to build the attacker's honest vector`);
  }
  return meanInto(requireHonest(ctx, attack), out);
}
