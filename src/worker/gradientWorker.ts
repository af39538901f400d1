/**
 * What one worker contributes each round, independent of transport: the gradient on its shard's batch for that
 * round (batch = f(seed, rank, round), so distributed runs and simulation see the same data), optional worker
 * momentum (m ← β·m + (1 − β)·g, as in ByzFL), and — for evaluation runs only — a Byzantine behaviour.
 * Used by the worker process and by `phalanx simulate`.
 */
import type { JobSpec } from '../config/jobSpec.ts';
import { deriveSeed, Rng } from '../core/random.ts';
import { createAttack } from '../core/attacks/registry.ts';
import type { Attack } from '../core/attacks/types.ts';
import { GradientHistory } from '../core/attacks/stats.ts';
import { Batcher, createBatch } from '../data/batcher.ts';
import type { DatasetSplit } from '../data/fashionMnist.ts';
import { rankShardOf } from '../data/partition.ts';
import type { Batch, Trainer } from '../models/types.ts';

export interface ByzantineConfig {
  attack: string;
  options: Record<string, unknown>;
}

export interface Contribution {
  /** The vector to push (internal buffer, valid until the next call). */
  vector: Float32Array;
  /** Loss on the honest batch. */
  loss: number;
  /** MoE models: max/mean routing assignments per expert on the honest batch, worst block. */
  expertLoad?: number;
  samples: number;
  /** For crash/straggle behaviours: send nothing, or send after a delay. */
  behaviour?: 'crash' | 'straggle';
  delayMs?: number;
}

export class GradientWorker {
  /** Sorted indices into the training split of the examples this worker trains on. */
  readonly shard: Uint32Array;
  private readonly batcher: Batcher;
  private readonly batch: Batch;
  private readonly momentum: Float32Array | undefined;
  private readonly out: Float32Array;
  private readonly attack: Attack | undefined;
  private readonly history: GradientHistory | undefined;
  private readonly rng: Rng;
  private hasMomentum = false;

  constructor(
    readonly trainer: Trainer,
    train: DatasetSplit,
    readonly spec: JobSpec,
    readonly rank: number,
    readonly worldSize: number,
    readonly byzantine?: ByzantineConfig,
  ) {
    // The rank's shard of the training set minus the validation split (IID or Dirichlet, per spec.data).
    this.shard = rankShardOf(train, spec.data, spec.seed, worldSize, rank);
    this.batcher = new Batcher(train, this.shard, {
      batchSize: spec.data.batchSize,
      seed: deriveSeed(spec.seed, 0xba7c, rank),
      flip: spec.data.flip,
    });
    this.batch = createBatch(spec.data.batchSize, train.exampleSize);
    const d = trainer.layout.totalSize;
    this.momentum = spec.workers.momentum > 0 ? new Float32Array(d) : undefined;
    this.out = new Float32Array(d);
    this.rng = new Rng(deriveSeed(spec.seed, 0xa77a, rank));
    if (byzantine) {
      this.attack = createAttack(byzantine.attack, byzantine.options);
      this.history = new GradientHistory(d, 8);
    }
  }

  /** Honest gradient (with worker momentum) for `round` at `params`, written into a reused buffer. */
  async honest(
    params: Float32Array,
    round: number,
  ): Promise<{ vector: Float32Array; loss: number; expertLoad?: number }> {
    const batch = this.batcher.batchAt(round, this.batch);
    if (this.attack?.dataSide && this.attack.transformLabels)
      batch.y.set(this.attack.transformLabels(batch.y));
    const { grad, loss, expertLoad } = await this.trainer.gradient(params, batch);
    const load = expertLoad === undefined ? {} : { expertLoad };
    if (this.momentum) {
      const beta = this.spec.workers.momentum;
      const m = this.momentum;
      if (!this.hasMomentum) {
        m.set(grad);
        this.hasMomentum = true;
      } else {
        for (let i = 0; i < m.length; i++) m[i] = beta * m[i] + (1 - beta) * grad[i];
      }
      return { vector: m, loss, ...load };
    }
    return { vector: grad, loss, ...load };
  }

  /** A copy of the worker-momentum state (undefined: no momentum configured, or none accumulated yet). */
  momentumState(): Float32Array | undefined {
    return this.momentum && this.hasMomentum ? this.momentum.slice() : undefined;
  }

  /** Continue from a state `momentumState` returned (undefined: start over, as in round 0). */
  restoreMomentum(state: Float32Array | undefined): void {
    if (!this.momentum) return;
    if (state) {
      if (state.length !== this.momentum.length) {
        throw new RangeError(
          `momentum state has ${state.length} elements, the model ${this.momentum.length}`,
        );
      }
      this.momentum.set(state);
    }
    this.hasMomentum = state !== undefined;
  }

  /** What this worker sends for `round`. */
  async contribute(params: Float32Array, round: number): Promise<Contribution> {
    const { vector, loss, expertLoad } = await this.honest(params, round);
    const samples = this.spec.data.batchSize;
    if (!this.attack || this.attack.dataSide) {
      this.out.set(vector);
      return { vector: this.out, loss, samples, ...(expertLoad === undefined ? {} : { expertLoad }) };
    }
    if (this.attack.behaviour && round >= (this.attack.fromRound ?? 0)) {
      this.out.set(vector);
      return {
        vector: this.out,
        loss,
        samples,
        behaviour: this.attack.behaviour,
        delayMs: this.attack.delayMs,
      };
    }
    // A real worker sees only its own gradients: omniscient attacks estimate μ, σ from its recent batches.
    this.history!.push(vector);
    const crafted = this.attack.craft(
      {
        honest: this.history!.vectors(),
        own: vector,
        n: this.worldSize,
        f: this.spec.aggregation.f,
        rng: this.rng,
        round,
      },
      this.out.length === vector.length ? this.out : undefined,
    );
    return { vector: crafted, loss, samples };
  }
}
