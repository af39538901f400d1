/**
 * Helpers shared by the robust aggregation rules: option parsing, precondition checks, reusable buffers and
 * the per-worker health records (from precomputed sums, a Gram matrix or usage counts).
 */
import type { Dots } from './kernels/types.ts';
import { PreconditionError, type AggregationInput, type WorkerHealth } from './types.ts';

/**
 * Library whose conventions a rule reproduces: 'byzfl' (ByzFL), 'garfield' (Garfield and the Flag Aggregator's
 * reference code); each rule's header says what changes.
 */
export type Compat = 'default' | 'byzfl' | 'garfield';

/**
 * Reads `options.compat` ('default' when absent). Throws when the value is unknown or when the rule has no such
 * variant (`supported` lists the non-default modes the rule implements).
 */
export function readCompat(rule: string, options: Record<string, unknown>, supported: Compat[]): Compat {
  const raw = options.compat;
  if (raw === undefined || raw === null || raw === 'default' || raw === 'none') return 'default';
  if (raw !== 'byzfl' && raw !== 'garfield') {
    throw new Error(`${rule}: unknown compat '${String(raw)}' (valid: default, byzfl, garfield)`);
  }
  if (!supported.includes(raw)) {
    const valid = ['default', ...supported.filter((c) => c !== 'default')].join(', ');
    throw new Error(`${rule}: compat '${raw}' is not available for this rule (valid: ${valid})`);
  }
  return raw;
}

interface NumberConstraint {
  integer?: boolean;
  /** Inclusive lower bound. */
  min?: number;
  /** Exclusive lower bound. */
  gt?: number;
}

/** Reads a numeric option, checking type and bounds; `def` when absent. */
export function readNumber(
  rule: string,
  options: Record<string, unknown>,
  key: string,
  def: number,
  c: NumberConstraint = {},
): number {
  const raw = options[key];
  if (raw === undefined || raw === null) return def;
  const v = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new Error(`${rule}: option '${key}' must be a finite number (got ${JSON.stringify(raw)})`);
  }
  if (c.integer && !Number.isInteger(v))
    throw new Error(`${rule}: option '${key}' must be an integer (got ${v})`);
  if (c.min !== undefined && v < c.min)
    throw new Error(`${rule}: option '${key}' must be >= ${c.min} (got ${v})`);
  if (c.gt !== undefined && v <= c.gt)
    throw new Error(`${rule}: option '${key}' must be > ${c.gt} (got ${v})`);
  return v;
}

/** Reads an optional numeric option (undefined when absent). */
export function readOptionalNumber(
  rule: string,
  options: Record<string, unknown>,
  key: string,
  c: NumberConstraint = {},
): number | undefined {
  if (options[key] === undefined || options[key] === null) return undefined;
  return readNumber(rule, options, key, 0, c);
}

export function readBoolean(
  rule: string,
  options: Record<string, unknown>,
  key: string,
  def: boolean,
): boolean {
  const raw = options[key];
  if (raw === undefined || raw === null) return def;
  if (raw === true || raw === 'true') return true;
  if (raw === false || raw === 'false') return false;
  throw new Error(`${rule}: option '${key}' must be a boolean (got ${JSON.stringify(raw)})`);
}

/** Throws a PreconditionError naming the rule's condition, e.g. "krum needs n > 2f + 2 (n=5, f=2)". */
export function precondition(ok: boolean, rule: string, condition: string, n: number, f: number): void {
  if (!ok) throw new PreconditionError(`${rule} needs ${condition} (n=${n}, f=${f})`);
}

/**
 * Checks what every rule needs: at least one vector, one id per vector, equal lengths ≥ 1, f a non-negative
 * integer. Returns the common length d.
 */
export function checkInput(rule: string, input: AggregationInput): number {
  const { vectors, workerIds, f } = input;
  const n = vectors.length;
  if (!Number.isInteger(f) || f < 0)
    throw new PreconditionError(`${rule} needs f to be a non-negative integer (f=${f})`);
  if (n < 1) throw new PreconditionError(`${rule} needs n >= 1 (n=0, f=${f})`);
  if (workerIds.length !== n) {
    throw new Error(`${rule}: got ${n} vectors but ${workerIds.length} worker ids`);
  }
  const d = vectors[0].length;
  if (d < 1) throw new PreconditionError(`${rule} needs vectors of length >= 1 (n=${n}, f=${f})`);
  for (let i = 1; i < n; i++) {
    if (vectors[i].length !== d) {
      throw new PreconditionError(
        `${rule} needs vectors of equal length (vector ${i} has ${vectors[i].length}, vector 0 has ${d})`,
      );
    }
  }
  return d;
}

/**
 * Typed-array buffers kept by a rule between rounds: a buffer is reused while its requested size is unchanged
 * (same n and d), so steady-state rounds allocate nothing but the returned update.
 */
export class Workspace {
  private readonly f64s = new Map<string, Float64Array>();
  private readonly i32s = new Map<string, Int32Array>();
  private readonly f32s = new Map<string, Float32Array>();

  f64(key: string, size: number): Float64Array {
    let b = this.f64s.get(key);
    if (b === undefined || b.length !== size) {
      b = new Float64Array(size);
      this.f64s.set(key, b);
    }
    return b;
  }

  i32(key: string, size: number): Int32Array {
    let b = this.i32s.get(key);
    if (b === undefined || b.length !== size) {
      b = new Int32Array(size);
      this.i32s.set(key, b);
    }
    return b;
  }

  f32(key: string, size: number): Float32Array {
    let b = this.f32s.get(key);
    if (b === undefined || b.length !== size) {
      b = new Float32Array(size);
      this.f32s.set(key, b);
    }
    return b;
  }
}

/**
 * The update buffer: fresh per round by default (callers may keep it); with `reuseOutput: true` the same
 * Float32Array is returned every round while d is unchanged (the caller must copy it before the next round).
 */
export function outputBuffer(ws: Workspace, reuse: boolean, d: number): Float32Array {
  return reuse ? ws.f32('output', d) : new Float32Array(d);
}

/** Fresh health records (included, trust 1, weight 0); rules then fill trust/weight/reason. */
export function initHealth(workerIds: string[]): WorkerHealth[] {
  return workerIds.map((workerId, index) => ({
    index,
    workerId,
    included: true,
    trust: 1,
    weight: 0,
    norm: 0,
    cosine: 0,
  }));
}

/**
 * Fills norm and cosine-to-update for every record (one fused pass per vector). `normSq`, when given (e.g. the
 * Gram diagonal), saves the norm reduction.
 */
export function fillNormsAndCosines(
  workers: WorkerHealth[],
  vectors: Float32Array[],
  update: Float32Array,
  normSq?: ArrayLike<number>,
): void {
  const d = update.length;
  let uu = 0;
  for (let k = 0; k < d; k++) uu += update[k] * update[k];
  const un = Math.sqrt(uu);
  for (let i = 0; i < vectors.length; i++) {
    const x = vectors[i];
    let xu = 0;
    let xx = 0;
    if (normSq !== undefined) {
      for (let k = 0; k < d; k++) xu += x[k] * update[k];
      xx = normSq[i];
    } else {
      for (let k = 0; k < d; k++) {
        const v = x[k];
        xu += v * update[k];
        xx += v * v;
      }
    }
    const xn = Math.sqrt(xx);
    workers[i].norm = xn;
    workers[i].cosine = xn > 0 && un > 0 ? clamp(xu / (xn * un), -1, 1) : 0;
  }
}

/** Zeroed health sums (⟨xᵢ, u⟩, ‖xᵢ‖², ‖u‖²) for n rows, in buffers of `ws`. */
export function dotsBuffers(ws: Workspace, n: number): Dots {
  const xu = ws.f64('dots.xu', n);
  const xx = ws.f64('dots.xx', n);
  xu.fill(0);
  xx.fill(0);
  return { xu, xx, uu: 0 };
}

/**
 * Norm and cosine-to-update of every record from precomputed sums (row r of `dots` is worker map[r], or r):
 * norm = √xxᵣ (or √normSq[worker] when given), cosine = xuᵣ / (norm·√uu), clamped, 0 if either norm is 0.
 */
export function fillHealthFromDots(
  workers: WorkerHealth[],
  dots: Dots,
  map?: ArrayLike<number>,
  normSq?: ArrayLike<number>,
): void {
  const un = Math.sqrt(dots.uu);
  for (let r = 0; r < workers.length; r++) {
    const i = map ? map[r] : r;
    const xn = Math.sqrt(normSq ? normSq[i] : dots.xx[r]);
    workers[i].norm = xn;
    workers[i].cosine = xn > 0 && un > 0 ? clamp(dots.xu[r] / (xn * un), -1, 1) : 0;
  }
}

export function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

/**
 * Health for coordinate-wise rules from per-worker usage counts: trust = fraction of coordinates in which the
 * worker's value entered the output, weight = its average coefficient (count·coef/d). Unused workers are marked
 * excluded with `reason`.
 */
export function coordinateHealth(
  workers: WorkerHealth[],
  counts: Float64Array,
  coef: number,
  d: number,
  reason: string,
): void {
  for (let i = 0; i < workers.length; i++) {
    const w = workers[i];
    w.trust = counts[i] / d;
    w.weight = (counts[i] * coef) / d;
    w.included = counts[i] > 0;
    if (!w.included) {
      w.reason = reason;
      w.reasonCode = 'coordinates-unused';
    }
  }
}

/** Binomial coefficient C(n, k) as a float (exact for the small values used here). */
export function binomial(n: number, k: number): number {
  if (k < 0 || k > n) return 0;
  const kk = Math.min(k, n - k);
  let r = 1;
  for (let i = 1; i <= kk; i++) r = (r * (n - kk + i)) / i;
  return Math.round(r);
}

/** What every pre-aggregator needs: n ≥ 1 vectors of one length ≥ 1 and f a non-negative integer. Returns d. */
export function checkPreInput(name: string, vectors: Float32Array[], f: number): number {
  return checkInput(name, { vectors, workerIds: vectors.map((_, i) => String(i)), f });
}

/**
 * Norm and cosine-to-update for rules whose update is a combination u = Σⱼ cⱼ xⱼ of their inputs, from the Gram
 * matrix R (no pass over the data): ‖xᵢ‖² = Rᵢᵢ, ⟨xᵢ, u⟩ = (Rc)ᵢ, ‖u‖² = cᵀRc.
 */
export function fillNormsAndCosinesFromGram(
  workers: WorkerHealth[],
  gram: Float64Array,
  n: number,
  coef: ArrayLike<number>,
): void {
  const rc = new Float64Array(n);
  let uu = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += gram[i * n + j] * coef[j];
    rc[i] = s;
    uu += coef[i] * s;
  }
  const un = Math.sqrt(Math.max(0, uu));
  for (let i = 0; i < n; i++) {
    const xn = Math.sqrt(gram[i * n + i]);
    workers[i].norm = xn;
    workers[i].cosine = xn > 0 && un > 0 ? clamp(rc[i] / (xn * un), -1, 1) : 0;
  }
}

/**
 * Health of a rule that averages a selected subset of k workers uniformly (MDA, MoNNA): members get trust 1 and
 * weight 1/k, the rest are excluded with `reason`; norms and cosines come from the Gram matrix.
 */
export function subsetHealth(
  workerIds: string[],
  members: readonly number[],
  k: number,
  reason: string,
  gram: Float64Array,
  n: number,
): WorkerHealth[] {
  const workers = initHealth(workerIds);
  const inS = new Set(members);
  for (const w of workers) {
    const sel = inS.has(w.index);
    w.included = sel;
    w.trust = sel ? 1 : 0;
    w.weight = sel ? 1 / k : 0;
    if (!sel) {
      w.reason = reason;
      w.reasonCode = 'not-selected';
    }
  }
  fillNormsAndCosinesFromGram(
    workers,
    gram,
    n,
    workers.map((w) => w.weight),
  );
  return workers;
}
