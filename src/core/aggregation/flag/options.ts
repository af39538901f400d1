/**
 * Options of the Flag Aggregator (`flag`), validated once at construction. See aggregator.ts for what each one
 * does and docs/aggregation.md for why the defaults are what they are.
 */

export type FlagMode = 'phalanx' | 'reference';
export type FlagRank = 'auto' | 'n-2f';
export type FlagRescale = 'none' | 'median-norm' | 'agreement';
export type FlagSignDirection = 'principal-axis' | 'clipped-mean' | 'combined';
export type FlagStep = 'subspace' | 'trusted-mean' | 'projected-mean';
export type FlagVote = 'unit' | 'norm';

export interface FlagOptions {
  mode: FlagMode;
  /**
   * Subspace dimension: a number, 'auto' (eigenvalues of the cosine Gram above the noise edge, Phalanx mode only)
   * or 'n-2f' (max(1, n − 2f), at most p − 1: the most workers the output can average while f attackers stay a
   * minority of what it is fitted to; Phalanx mode only).
   */
  r: number | FlagRank;
  /** Upper bound for r = 'auto'; null = max(1, n − 2f). */
  rMax: number | null;
  /** Weight of the pairwise-difference columns (reference: λ/(p(p−1)) per column). */
  lambda: number;
  /** IRLS ε in (sᵢ + ε)^(−1/4). */
  epsilon: number;
  /** IRLS reweighting steps at most (Phalanx mode; the reference does exactly 1). */
  maxIterations: number;
  /** Stop when the relative objective change is below this. */
  tolerance: number;
  /** Exclude workers pointing against the robust direction. */
  signAware: boolean;
  /** Cosine to the robust direction below which a worker is excluded (signAware). */
  signThreshold: number;
  /**
   * Agreement-relative sign test (null = off): with k set, the threshold is
   * min(signThreshold, median(scores) − k·1.4826·MAD(scores)) over the workers' cosines to the robust direction,
   * so a spread of honest cosines (non-IID shards) lowers it, and a tight one keeps signThreshold.
   */
  signSpread: number | null;
  /**
   * The direction the sign test scores against: 'principal-axis' = the principal axis of the workers' projections
   * on the flag subspace, oriented by their agreement; 'clipped-mean' = the sum of all gradients clipped to the
   * median norm, c = Σⱼ min(1, m/‖gⱼ‖)·gⱼ (f attackers move it by at most f median norms, whatever they send,
   * and on non-IID shards every honest gradient tends to agree with it, while one principal axis can follow a
   * few shards); 'combined' = two tests, and failing either excludes: the cosine to the mean clipped to the
   * (f+1)-th longest norm, c = Σⱼ min(1, m_f/‖gⱼ‖)·gⱼ, below signThreshold, or the score on the oriented principal
   * axis below signAxisThreshold. The clip at m_f leaves every honest vector whole unless more than f are longer,
   * so on non-IID shards, where honest norms differ several-fold, copies of −μ cannot outweigh the long honest
   * gradients that carry μ (at the median norm they can); the strict axis test still catches colluders who send
   * one long direction against noise-dominated honest gradients (their axis scores sit near −0.9), where any mean
   * follows them.
   */
  signDirection: FlagSignDirection;
  /** signDirection 'combined': the principal-axis score below which a worker is excluded. */
  signAxisThreshold: number;
  /**
   * signDirection 'combined', k (null = off, the default): the axis cutoff follows the workers' agreement on the
   * axis, max(signAxisThreshold, min(signThreshold, median − k·1.4826·MAD)) of their axis scores. Where the
   * workers agree it rises to signThreshold and catches flippers near −0.5; where they spread it stays at
   * signAxisThreshold. A tight majority then also raises it against an honest minority shard.
   */
  signAxisSpread: number | null;
  /** Exclude workers whose reconstruction ratio is below this (0 = off). */
  minTrust: number;
  /**
   * Output scaling: 'none' = the step's own length (for 'subspace' the reference's (1/r)·YYᵀΣĝᵢ, a sum of unit
   * vectors, norm ≤ p/r whatever the inputs), 'median-norm' = rescaled to the median norm of the included workers,
   * or 'agreement' = that median norm times their agreement ‖(1/s)·Σᵢ ĝᵢ‖ ∈ [0, 1] (the length a mean of s
   * equally long vectors has).
   */
  rescale: FlagRescale;
  /**
   * What the update is: 'trusted-mean' (default) = the mean of the workers the sign and trust tests kept, each
   * clipped to their median norm m, (1/s)·Σᵢ min(1, m/‖gᵢ‖)·gᵢ (the flag only selects); 'subspace' = the flag
   * median's output (1/r)·YYᵀΣĝᵢ, which on non-IID shards is about a sum of r workers' gradients; 'projected-mean'
   * = that clipped mean projected onto the flag subspace, YYᵀ·(…). `rescale` then sets its length ('none': the
   * step's own).
   */
  step: FlagStep;
  /**
   * Each worker's say: 'unit' = every unit vector ĝᵢ counts once (the flag median as published); 'norm' = worker i
   * counts ωᵢ = min(1, ‖gᵢ‖/m), m = the median norm of the valid workers, in the flag median's objective
   * Σᵢ ωᵢ·√(1 − ‖Yᵀĝᵢ‖²), in the sign test's axis and in the output (1/r)·YYᵀΣᵢ ωᵢĝᵢ. A vector much shorter
   * than the others (a tiny −ε·μ) no longer gets a full vote by being normalised; a longer one is capped at 1, as
   * unit normalisation caps it, so no worker gains by its length.
   */
  vote: FlagVote;
  /**
   * Test the excluded workers again against the kept ones alone (the sign tests' references rebuilt from the kept
   * set, the same cutoffs) and take back those that pass, then refit. Copies of one vector pull the first fit's
   * references toward them; an honest worker excluded only because of that pull comes back. Off by default: on
   * non-IID shards it also takes back copies of −μ and −0.1·μ in a third of the rounds or more
   * (docs/robustness/readmit.md).
   */
  readmit: boolean;
  /** Start IRLS from last round's subspace (stateful; costs two extra O(r·n·d) passes). */
  warmStart: boolean;
  /** Reference mode only: the start Y₀ as r float32 columns of length d (null = uniform weights). */
  y0: Float32Array[] | null;
}

/** Defaults of Phalanx mode (the reasons: docs/aggregation.md). */
export const FLAG_DEFAULTS: Readonly<Omit<FlagOptions, 'y0'>> = Object.freeze({
  mode: 'phalanx',
  r: 'n-2f',
  rMax: null,
  lambda: 0,
  epsilon: 1e-7,
  maxIterations: 100,
  tolerance: 1e-6,
  signAware: true,
  signThreshold: -0.3,
  signSpread: null,
  signDirection: 'combined',
  signAxisThreshold: -0.8,
  signAxisSpread: null,
  minTrust: 0,
  rescale: 'median-norm',
  step: 'trusted-mean',
  vote: 'unit',
  readmit: false,
  warmStart: false,
});

const COMMON_KEYS = ['mode', 'compat', 'seed', 'r', 'lambda', 'epsilon'];
const PHALANX_KEYS = [
  'rMax',
  'maxIterations',
  'tolerance',
  'signAware',
  'signThreshold',
  'signSpread',
  'signDirection',
  'signAxisThreshold',
  'signAxisSpread',
  'minTrust',
  'rescale',
  'step',
  'vote',
  'readmit',
  'warmStart',
];
const REFERENCE_KEYS = ['y0'];

function fail(message: string): never {
  throw new Error(`flag: ${message}`);
}

function describe(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  try {
    return String(JSON.stringify(v));
  } catch {
    return String(v);
  }
}

function positiveInteger(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    fail(`option '${name}' must be a positive integer, got ${describe(v)}`);
  }
  return v;
}

function nonNegativeInteger(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    fail(`option '${name}' must be a non-negative integer, got ${describe(v)}`);
  }
  return v;
}

function finiteNumber(name: string, v: unknown, min: number, max: number, strictMin = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (strictMin && v === min) || v > max) {
    const lo = strictMin ? `> ${min}` : `≥ ${min}`;
    fail(`option '${name}' must be a finite number ${lo} and ≤ ${max}, got ${describe(v)}`);
  }
  return v;
}

function bool(name: string, v: unknown): boolean {
  if (typeof v !== 'boolean') fail(`option '${name}' must be true or false, got ${describe(v)}`);
  return v;
}

/** Parses the start Y₀ (d rows × r columns, as the shared vectors store it) into r float32 columns. */
function parseY0(v: unknown): Float32Array[] {
  if (!Array.isArray(v) || v.length === 0)
    fail(`option 'y0' must be a non-empty d×r array of rows, got ${describe(v)}`);
  const rows = v as unknown[];
  const first = rows[0];
  if (!Array.isArray(first) && !ArrayBuffer.isView(first)) {
    fail("option 'y0' must be an array of rows (number[][], d × r)");
  }
  const r = (first as ArrayLike<number>).length;
  if (r < 1) fail("option 'y0' rows must have at least one column");
  const d = rows.length;
  const columns = Array.from({ length: r }, () => new Float32Array(d));
  for (let i = 0; i < d; i++) {
    const row = rows[i] as ArrayLike<number>;
    if ((!Array.isArray(row) && !ArrayBuffer.isView(row)) || row.length !== r) {
      fail(`option 'y0' row ${i} must have ${r} entries`);
    }
    for (let k = 0; k < r; k++) {
      const x = row[k];
      if (typeof x !== 'number' || !Number.isFinite(x))
        fail(`option 'y0'[${i}][${k}] is not a finite number`);
      columns[k][i] = x;
    }
  }
  return columns;
}

/** Validates `options` (unknown keys and wrong types throw an Error naming the option) and fills in defaults. */
export function parseFlagOptions(options: Record<string, unknown>): FlagOptions {
  if (options === null || typeof options !== 'object') fail('options must be an object');
  let mode: FlagMode = 'phalanx';
  if (options.mode !== undefined) {
    if (options.mode !== 'phalanx' && options.mode !== 'reference') {
      fail(`option 'mode' must be 'phalanx' or 'reference', got ${describe(options.mode)}`);
    }
    mode = options.mode;
  }
  if (options.compat !== undefined) {
    if (options.compat === 'garfield' || options.compat === 'reference') {
      if (options.mode === 'phalanx') fail("option compat 'garfield' conflicts with mode 'phalanx'");
      mode = 'reference';
    } else if (options.compat === 'byzfl') {
      fail("option compat 'byzfl' is not available: ByzFL has no Flag Aggregator (use compat 'garfield')");
    } else {
      fail(`option 'compat' must be 'garfield', got ${describe(options.compat)}`);
    }
  }
  const allowed = new Set([...COMMON_KEYS, ...(mode === 'phalanx' ? PHALANX_KEYS : REFERENCE_KEYS)]);
  for (const key of Object.keys(options)) {
    if (options[key] === undefined || allowed.has(key)) continue;
    if (mode === 'reference' && PHALANX_KEYS.includes(key)) {
      fail(
        `option '${key}' is not available in mode 'reference' (it reproduces the FA code: one IRLS step, ` +
          'no sign test, no rescaling)',
      );
    }
    if (mode === 'phalanx' && REFERENCE_KEYS.includes(key)) {
      fail(`option '${key}' requires mode 'reference'`);
    }
    fail(`unknown option '${key}' (known: ${[...allowed].sort().join(', ')})`);
  }
  if (options.seed !== undefined && (typeof options.seed !== 'number' || !Number.isFinite(options.seed))) {
    fail(`option 'seed' must be a number, got ${describe(options.seed)}`);
  }

  const lambda = options.lambda === undefined ? 0 : finiteNumber('lambda', options.lambda, 0, 1e12);
  const epsilon =
    options.epsilon === undefined
      ? FLAG_DEFAULTS.epsilon
      : finiteNumber('epsilon', options.epsilon, 0, 1, true);

  if (mode === 'reference') {
    const y0 = options.y0 === undefined ? null : parseY0(options.y0);
    let r: number;
    if (options.r === undefined) r = y0 ? y0.length : 1;
    else {
      if (options.r === 'auto' || options.r === 'n-2f')
        fail(`option r = '${options.r}' is not available in mode 'reference'`);
      r = positiveInteger('r', options.r);
    }
    if (y0 && y0.length !== r) fail(`option 'y0' has ${y0.length} columns but r = ${r}`);
    return {
      mode,
      r,
      rMax: null,
      lambda,
      epsilon,
      maxIterations: 1,
      tolerance: 0,
      signAware: false,
      signThreshold: 0,
      signSpread: null,
      signDirection: 'principal-axis',
      signAxisThreshold: FLAG_DEFAULTS.signAxisThreshold,
      signAxisSpread: null,
      minTrust: 0,
      rescale: 'none',
      step: 'subspace',
      vote: 'unit',
      readmit: false,
      warmStart: false,
      y0,
    };
  }

  let r: number | FlagRank = FLAG_DEFAULTS.r;
  if (options.r !== undefined)
    r = options.r === 'auto' || options.r === 'n-2f' ? options.r : positiveInteger('r', options.r);
  const rMax =
    options.rMax === undefined || options.rMax === null ? null : positiveInteger('rMax', options.rMax);
  if (rMax !== null && r !== 'auto') fail("option 'rMax' only applies to r = 'auto'");
  const maxIterations =
    options.maxIterations === undefined
      ? FLAG_DEFAULTS.maxIterations
      : nonNegativeInteger('maxIterations', options.maxIterations);
  const tolerance =
    options.tolerance === undefined
      ? FLAG_DEFAULTS.tolerance
      : finiteNumber('tolerance', options.tolerance, 0, 1);
  const signAware =
    options.signAware === undefined ? FLAG_DEFAULTS.signAware : bool('signAware', options.signAware);
  const signThreshold =
    options.signThreshold === undefined
      ? FLAG_DEFAULTS.signThreshold
      : finiteNumber('signThreshold', options.signThreshold, -1, 1);
  const signSpread =
    options.signSpread === undefined || options.signSpread === null
      ? FLAG_DEFAULTS.signSpread
      : finiteNumber('signSpread', options.signSpread, 0, 100);
  let signDirection: FlagSignDirection = FLAG_DEFAULTS.signDirection;
  if (options.signDirection !== undefined) {
    if (
      options.signDirection !== 'principal-axis' &&
      options.signDirection !== 'clipped-mean' &&
      options.signDirection !== 'combined'
    ) {
      fail(
        `option 'signDirection' must be 'principal-axis', 'clipped-mean' or 'combined', got ${describe(options.signDirection)}`,
      );
    }
    signDirection = options.signDirection;
  }
  const signAxisThreshold =
    options.signAxisThreshold === undefined
      ? FLAG_DEFAULTS.signAxisThreshold
      : finiteNumber('signAxisThreshold', options.signAxisThreshold, -1, 1);
  // null turns it off; only a missing option takes the default
  const signAxisSpread =
    options.signAxisSpread === undefined
      ? FLAG_DEFAULTS.signAxisSpread
      : options.signAxisSpread === null
        ? null
        : finiteNumber('signAxisSpread', options.signAxisSpread, 0, 100);
  const minTrust =
    options.minTrust === undefined
      ? FLAG_DEFAULTS.minTrust
      : finiteNumber('minTrust', options.minTrust, 0, 1);
  let rescale: FlagRescale = FLAG_DEFAULTS.rescale;
  if (options.rescale !== undefined) {
    if (options.rescale !== 'none' && options.rescale !== 'median-norm' && options.rescale !== 'agreement') {
      fail(`option 'rescale' must be 'none', 'median-norm' or 'agreement', got ${describe(options.rescale)}`);
    }
    rescale = options.rescale;
  }
  let step: FlagStep = FLAG_DEFAULTS.step;
  if (options.step !== undefined) {
    if (options.step !== 'subspace' && options.step !== 'trusted-mean' && options.step !== 'projected-mean') {
      fail(
        `option 'step' must be 'subspace', 'trusted-mean' or 'projected-mean', got ${describe(options.step)}`,
      );
    }
    step = options.step;
  }
  let vote: FlagVote = FLAG_DEFAULTS.vote;
  if (options.vote !== undefined) {
    if (options.vote !== 'unit' && options.vote !== 'norm') {
      fail(`option 'vote' must be 'unit' or 'norm', got ${describe(options.vote)}`);
    }
    vote = options.vote;
  }
  const readmit = options.readmit === undefined ? FLAG_DEFAULTS.readmit : bool('readmit', options.readmit);
  if (readmit && !signAware) fail("option 'readmit' needs signAware: true (it re-runs the sign tests)");
  const warmStart =
    options.warmStart === undefined ? FLAG_DEFAULTS.warmStart : bool('warmStart', options.warmStart);
  return {
    mode,
    r,
    rMax,
    lambda,
    epsilon,
    maxIterations,
    tolerance,
    signAware,
    signThreshold,
    signSpread,
    signDirection,
    signAxisThreshold,
    signAxisSpread,
    minTrust,
    rescale,
    step,
    vote,
    readmit,
    warmStart,
    y0: null,
  };
}
