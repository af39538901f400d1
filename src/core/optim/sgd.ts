/**
 * SGD with momentum, PyTorch semantics (torch.optim.SGD, dampening 0), with coupled weight decay:
 *   g   ← u + wd·p
 *   buf ← g                    on the first step
 *   buf ← μ·buf + g            afterwards
 *   d   ← g + μ·buf  (Nesterov)   or   d ← buf   (or d ← g when μ = 0)
 *   p   ← p − lr·d
 * Preconditions: lr ≥ 0, μ ≥ 0, wd ≥ 0, all finite; Nesterov needs μ > 0.
 */
import { allocateFloat32, type Optimizer, type OptimizerSpec, type TensorAllocator } from './types.ts';
import { checkHyper, checkLengths, checkStateTensor, copyState } from './util.ts';

export type SgdSpec = Extract<OptimizerSpec, { kind: 'sgd' }>;

export class Sgd implements Optimizer {
  readonly spec: SgdSpec;
  private readonly size: number;
  /** Momentum buffer; absent when μ = 0. */
  private readonly buf: Float32Array | undefined;
  private steps = 0;

  constructor(spec: SgdSpec, size: number, allocate: TensorAllocator = allocateFloat32) {
    checkHyper('sgd', { lr: spec.lr, momentum: spec.momentum, weightDecay: spec.weightDecay });
    if (spec.nesterov && spec.momentum <= 0) throw new Error('optim: sgd: nesterov needs momentum > 0');
    if (!Number.isInteger(size) || size < 0)
      throw new Error(`optim: sgd: size must be a non-negative integer`);
    this.spec = { ...spec };
    this.size = size;
    this.buf = spec.momentum > 0 ? allocate(size) : undefined;
  }

  step(params: Float32Array, update: Float32Array): void {
    checkLengths('sgd', this.size, params, update);
    const { lr, momentum: mu, weightDecay: wd } = this.spec;
    const n = this.size;
    const buf = this.buf;
    if (!buf) {
      for (let i = 0; i < n; i++) params[i] -= lr * (update[i] + wd * params[i]);
    } else if (this.steps === 0) {
      const nesterov = this.spec.nesterov ? 1 + mu : 1;
      for (let i = 0; i < n; i++) {
        const g = update[i] + wd * params[i];
        buf[i] = g;
        params[i] -= lr * nesterov * g;
      }
    } else if (this.spec.nesterov) {
      for (let i = 0; i < n; i++) {
        const g = update[i] + wd * params[i];
        const b = (buf[i] = mu * buf[i] + g);
        params[i] -= lr * (g + mu * b);
      }
    } else {
      for (let i = 0; i < n; i++) {
        const b = (buf[i] = mu * buf[i] + update[i] + wd * params[i]);
        params[i] -= lr * b;
      }
    }
    this.steps++;
  }

  scalars(): Record<string, number> {
    return { step: this.steps };
  }

  saveState(): { tensors: Record<string, Float32Array>; scalars: Record<string, number> } {
    return { tensors: this.buf ? { momentum: copyState(this.buf) } : {}, scalars: this.scalars() };
  }

  loadState(state: { tensors: Record<string, Float32Array>; scalars: Record<string, number> }): void {
    const step = state.scalars.step;
    if (!Number.isInteger(step) || step < 0) throw new Error(`optim: sgd: loadState: bad step ${step}`);
    if (this.buf && step > 0) this.buf.set(checkStateTensor('sgd', state.tensors, 'momentum', this.size));
    else this.buf?.fill(0);
    this.steps = step;
  }
}
