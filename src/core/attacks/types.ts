/**
 * The contract every Byzantine attack implements; each attack's module states its formula, defaults and
 * source paper.
 *
 * An attack is a pure function of what the attacker can see, deterministic given `ctx.rng`. Two deployments:
 * - Simulation ("omniscient"): `honest` holds every honest gradient of the round; all f Byzantine workers
 *   usually send the same crafted vector.
 * - A real worker process: it only sees its own gradients, so `honest` holds its own last k batch gradients
 *   (see `GradientHistory` / `estimateFromOwnHistory` in stats.ts) and μ, σ are estimated from them.
 *
 * Attacks never mutate `honest`, `own` or `flippedHonest`. They never return one of those arrays either: the
 * result is a fresh array, or `out` when the caller passes a buffer of the right length (preallocated output).
 */
import type { Rng } from '../random.ts';

export interface AttackContext {
  /**
   * The honest gradients of this round the attacker can see: all of them in simulation ("omniscient"), or the
   * attacker's own recent gradients (a real worker estimates μ, σ from its own batches). Equal lengths.
   */
  honest: Float32Array[];
  /** The attacker's own honest gradient this round (if it has one). */
  own?: Float32Array;
  /**
   * Label flipping in simulation (ByzFL `LabelFlipping`): the honest workers' gradients computed on flipped
   * labels (y → C − 1 − y). When present, `labelflip` returns their mean.
   */
  flippedHonest?: Float32Array[];
  /** Total number of workers (honest + Byzantine). */
  n: number;
  /** Number of Byzantine workers. */
  f: number;
  /** Seeded randomness; the only source of randomness an attack may use. */
  rng: Rng;
  /** Round (step) number, for logging and stateful attacks. */
  round: number;
  /**
   * Optional: the aggregation the attacker targets (pre-aggregators composed with the rule), used by the
   * "optimal" line-search variants. Must not mutate its input. Default: coordinate-wise mean.
   */
  aggregate?: (vectors: Float32Array[]) => Float32Array;
  /** Vector length, only needed when neither `own` nor `honest` is given (gaussian, uniform, inf, nan). */
  d?: number;
}

/** Runtime behaviours that are not a vector: the worker stops (crash) or sends late (straggle). */
export type AttackBehaviour = 'crash' | 'straggle';

export interface Attack {
  readonly name: string;
  /**
   * Data-side attack (label flipping): the worker trains on poisoned data (`transformLabels`) and `craft`
   * returns the gradient it computed on them.
   */
  readonly dataSide?: boolean;
  /** For data-side attacks: the pure label transform the worker applies to each batch. */
  transformLabels?(labels: Uint8Array): Uint8Array;
  /**
   * Runtime behaviour from round `fromRound` on. `crash`: the worker sends nothing (the runtime must not call
   * `craft`). `straggle`: the worker sends `craft(ctx)` (its honest gradient) `delayMs` late.
   */
  readonly behaviour?: AttackBehaviour;
  readonly delayMs?: number;
  readonly fromRound?: number;
  /**
   * The Byzantine vector for this round. `out`, if given and of the output's length, receives the result and
   * is returned; otherwise a new array is allocated.
   */
  craft(ctx: AttackContext, out?: Float32Array): Float32Array;
  /** Stateful attacks (replay): forget everything stored. */
  reset?(): void;
}

export type AttackFactory = (options: Record<string, unknown>) => Attack;

/** Thrown for invalid attack names, options, or a context the attack cannot work with. */
export class AttackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AttackError';
  }
}
