/**
 * Adam, PyTorch semantics (torch.optim.Adam, amsgrad off), with coupled (L2) weight decay. At step t ≥ 1:
 *   g ← u + wd·p
 *   m ← β1·m + (1 − β1)·g
 *   v ← β2·v + (1 − β2)·g²
 *   p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
 * Preconditions: lr, ε, wd ≥ 0 and finite; 0 ≤ β1, β2 < 1.
 */
import { allocateFloat32, type Optimizer, type OptimizerSpec, type TensorAllocator } from './types.ts';
import { checkHyper, checkLengths, checkStateTensor, copyState } from './util.ts';

export type AdamSpec = Extract<OptimizerSpec, { kind: 'adam' }>;

export class Adam implements Optimizer {
  readonly spec: AdamSpec;
  private readonly size: number;
  private readonly m: Float32Array;
  private readonly v: Float32Array;
  private steps = 0;

  constructor(spec: AdamSpec, size: number, allocate: TensorAllocator = allocateFloat32) {
    checkHyper('adam', {
      lr: spec.lr,
      eps: spec.eps,
      weightDecay: spec.weightDecay,
      beta1: spec.beta1,
      beta2: spec.beta2,
    });
    for (const [name, beta] of [
      ['beta1', spec.beta1],
      ['beta2', spec.beta2],
    ] as const) {
      if (beta >= 1) throw new Error(`optim: adam: ${name} must be in [0, 1), got ${beta}`);
    }
    if (!Number.isInteger(size) || size < 0)
      throw new Error(`optim: adam: size must be a non-negative integer`);
    this.spec = { ...spec };
    this.size = size;
    this.m = allocate(size);
    this.v = allocate(size);
  }

  step(params: Float32Array, update: Float32Array): void {
    checkLengths('adam', this.size, params, update);
    const { lr, beta1: b1, beta2: b2, eps, weightDecay: wd } = this.spec;
    const t = ++this.steps;
    const stepSize = lr / (1 - b1 ** t);
    const bc2Sqrt = Math.sqrt(1 - b2 ** t);
    const { m, v } = this;
    for (let i = 0, n = this.size; i < n; i++) {
      const g = update[i] + wd * params[i];
      const mi = (m[i] = b1 * m[i] + (1 - b1) * g);
      const vi = (v[i] = b2 * v[i] + (1 - b2) * g * g);
      params[i] -= (stepSize * mi) / (Math.sqrt(vi) / bc2Sqrt + eps);
    }
  }

  scalars(): Record<string, number> {
    return { step: this.steps };
  }

  saveState(): { tensors: Record<string, Float32Array>; scalars: Record<string, number> } {
    return { tensors: { m: copyState(this.m), v: copyState(this.v) }, scalars: this.scalars() };
  }

  loadState(state: { tensors: Record<string, Float32Array>; scalars: Record<string, number> }): void {
    const step = state.scalars.step;
    if (!Number.isInteger(step) || step < 0) throw new Error(`optim: adam: loadState: bad step ${step}`);
    this.m.set(checkStateTensor('adam', state.tensors, 'm', this.size));
    this.v.set(checkStateTensor('adam', state.tensors, 'v', this.size));
    this.steps = step;
  }
}
