/**
 * An exponential moving average of the iterates (Polyak averaging), kept beside any optimizer:
 *   θ̄ ← θ₀                         before the first step
 *   θ̄ ← β·θ̄ + (1 − β)·θ            after every step
 * Training goes on from θ (the live parameters workers pull); θ̄ is the model the job delivers: its evaluations,
 * its result and its exported weights. A robust rule that admits a different subset of workers every round makes θ
 * jitter around its path; θ̄ averages that jitter out over the last ≈ 1/(1 − β) rounds without changing the path.
 *
 * The average is one more state tensor ('average'), so checkpoints, rollbacks and a respawned compute thread carry
 * it like the optimizer's own. A state without it (written with averaging off) restarts θ̄ from θ at the next step.
 */
import { allocateFloat32, type Optimizer, type OptimizerSpec, type TensorAllocator } from './types.ts';
import { checkStateTensor, copyState } from './util.ts';

/** The state tensor and scalar that hold the average, beside the inner optimizer's. */
export const AVERAGE_TENSOR = 'average';
const AVERAGED_STEPS = 'averagedSteps';

export class AveragedOptimizer implements Optimizer {
  private readonly average: Float32Array;
  /** Steps averaged so far; 0 = θ̄ not started (it starts from θ at the next step). */
  private averagedSteps = 0;

  constructor(
    private readonly inner: Optimizer,
    private readonly decay: number,
    private readonly size: number,
    allocate: TensorAllocator = allocateFloat32,
  ) {
    if (!(decay > 0 && decay < 1)) throw new Error(`optim: ema: decay must be in (0, 1), got ${decay}`);
    this.average = allocate(size);
  }

  get spec(): OptimizerSpec {
    return this.inner.spec;
  }

  step(params: Float32Array, update: Float32Array): void {
    if (this.averagedSteps === 0) this.average.set(params);
    this.inner.step(params, update);
    const a = this.average;
    const b = this.decay;
    const c = 1 - b;
    for (let i = 0; i < this.size; i++) a[i] = b * a[i] + c * params[i];
    this.averagedSteps++;
  }

  /** θ̄, or undefined before the first step (the live parameters are the model then). Not a copy. */
  averaged(): Float32Array | undefined {
    return this.averagedSteps > 0 ? this.average : undefined;
  }

  scalars(): Record<string, number> {
    return { ...this.inner.scalars(), [AVERAGED_STEPS]: this.averagedSteps };
  }

  saveState(): { tensors: Record<string, Float32Array>; scalars: Record<string, number> } {
    const inner = this.inner.saveState();
    return {
      tensors: { ...inner.tensors, [AVERAGE_TENSOR]: copyState(this.average) },
      scalars: { ...inner.scalars, [AVERAGED_STEPS]: this.averagedSteps },
    };
  }

  loadState(state: { tensors: Record<string, Float32Array>; scalars: Record<string, number> }): void {
    const { [AVERAGE_TENSOR]: saved, ...tensors } = state.tensors;
    const { [AVERAGED_STEPS]: steps, ...scalars } = state.scalars;
    this.inner.loadState({ tensors, scalars });
    if (steps !== undefined && (!Number.isInteger(steps) || steps < 0)) {
      throw new Error(`optim: ema: loadState: bad ${AVERAGED_STEPS} ${steps}`);
    }
    if (saved !== undefined && steps !== undefined && steps > 0) {
      this.average.set(checkStateTensor('ema', state.tensors, AVERAGE_TENSOR, this.size));
      this.averagedSteps = steps;
    } else {
      this.average.fill(0);
      this.averagedSteps = 0;
    }
  }
}

/** The iterate average held in a saved optimizer state (a checkpoint's), or undefined if it has none yet. */
export function averageOf(state: {
  tensors: Record<string, Float32Array>;
  scalars: Record<string, number>;
}): Float32Array | undefined {
  const steps = state.scalars[AVERAGED_STEPS];
  const t = state.tensors[AVERAGE_TENSOR];
  return t instanceof Float32Array && steps !== undefined && steps > 0 ? t : undefined;
}
