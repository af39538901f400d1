/**
 * Each worker's own state entering the job's checkpoint rounds (worker momentum, error-feedback memories), kept
 * by worker name — the identity that keeps its rank across a restart — so that a restarted worker process
 * continues from it instead of from zero. A worker sends the state entering a checkpoint round R before its push
 * of round R − 1, so the checkpoint of R (written once R − 1 closes) holds the state of every worker that pushed
 * R − 1. Nothing here is read by aggregation: a state only ever goes back to the name that sent it.
 */
import { LruMap } from './boundedMap.ts';

export interface WorkerState {
  /** Worker momentum m (absent: the job has no worker momentum). */
  momentum?: Float32Array;
  /** Error-feedback memories e, layer after layer in layout order (absent: the job does not compress). */
  error?: Float32Array;
}

/** Which parts a state of this job must have: each exactly `size` fp32 values. */
export interface WorkerStateShape {
  size: number;
  momentum: boolean;
  error: boolean;
}

/** The checkpoint tensor names of a worker's parts: `worker.<name>.momentum`, `worker.<name>.error`. */
const PREFIX = 'worker.';
const PARTS = ['momentum', 'error'] as const;

export class WorkerStates {
  /** Per name: round → state; the newest two rounds (an upload for R + 1 can arrive before R is checkpointed). */
  private readonly byName: LruMap<string, Map<number, WorkerState>>;

  constructor(
    readonly shape: WorkerStateShape,
    /** Names kept (each worker is one name; the cap bounds what departed names can hold). */
    capacity: number,
  ) {
    this.byName = new LruMap(capacity);
  }

  /** Whether this job's workers have any state to keep. */
  get wanted(): boolean {
    return this.shape.momentum || this.shape.error;
  }

  /** Values a state of this job holds: the parts it must have, each the layout's size. */
  get elements(): number {
    return this.shape.size * (Number(this.shape.momentum) + Number(this.shape.error));
  }

  /** Keep `name`'s state entering `round` (already checked: `elements` finite values). */
  put(name: string, round: number, values: Float32Array): void {
    const rounds = this.byName.get(name) ?? new Map<number, WorkerState>();
    rounds.set(round, this.split(values));
    for (const old of [...rounds.keys()].sort((a, b) => b - a).slice(2)) rounds.delete(old);
    this.byName.set(name, rounds);
  }

  /** `name`'s state entering `round`, its parts concatenated (momentum, then error); undefined: none kept. */
  get(name: string, round: number): Float32Array | undefined {
    const state = this.byName.get(name)?.get(round);
    if (!state) return undefined;
    const out = new Float32Array(this.elements);
    let at = 0;
    for (const part of PARTS) {
      const v = state[part];
      if (!v) continue;
      out.set(v, at);
      at += v.length;
    }
    return out;
  }

  /** The states entering `round`, as checkpoint tensors. */
  tensorsAt(round: number): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const [name, rounds] of this.byName.all()) {
      const state = rounds.get(round);
      if (!state) continue;
      for (const part of PARTS) if (state[part]) out.set(`${PREFIX}${name}.${part}`, state[part]);
    }
    return out;
  }

  /**
   * Take back the states of a checkpoint of `round` (its `worker.*` tensors). A tensor that does not fit this
   * job's shape is skipped: that worker starts from zero, as without a state.
   */
  load(round: number, tensors: Map<string, Float32Array>): number {
    const parts = new Map<string, WorkerState>();
    for (const [key, data] of tensors) {
      if (!key.startsWith(PREFIX)) continue;
      const dot = key.lastIndexOf('.');
      const name = key.slice(PREFIX.length, dot);
      const part = key.slice(dot + 1) as (typeof PARTS)[number];
      if (!name || !PARTS.includes(part) || !this.shape[part] || data.length !== this.shape.size) continue;
      parts.set(name, { ...parts.get(name), [part]: data });
    }
    let loaded = 0;
    for (const [name, state] of parts) {
      if ((this.shape.momentum && !state.momentum) || (this.shape.error && !state.error)) continue;
      this.byName.set(name, new Map([[round, state]]));
      loaded++;
    }
    return loaded;
  }

  private split(values: Float32Array): WorkerState {
    const { size } = this.shape;
    let at = 0;
    const take = () => values.slice(at, (at += size));
    return {
      ...(this.shape.momentum ? { momentum: take() } : {}),
      ...(this.shape.error ? { error: take() } : {}),
    };
  }
}
