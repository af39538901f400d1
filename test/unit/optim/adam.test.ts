import { expect } from 'chai';
import { Rng } from '../../../src/core/random.ts';
import { createOptimizer } from '../../../src/core/optim/index.ts';
import { Adam } from '../../../src/core/optim/adam.ts';

/** torch.optim.Adam's algorithm (amsgrad off), written as in its documentation, in double precision. */
function torchAdamReference(
  p: number[],
  grads: number[][],
  o: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number },
): number[] {
  let m = p.map(() => 0);
  let v = p.map(() => 0);
  grads.forEach((grad, k) => {
    const t = k + 1;
    const g = grad.map((gi, i) => gi + o.weightDecay * p[i]);
    m = m.map((mi, i) => o.beta1 * mi + (1 - o.beta1) * g[i]);
    v = v.map((vi, i) => o.beta2 * vi + (1 - o.beta2) * g[i] * g[i]);
    const mHat = m.map((mi) => mi / (1 - o.beta1 ** t));
    const vHat = v.map((vi) => vi / (1 - o.beta2 ** t));
    // PyTorch's form: p -= (lr / bc1) · m / (√v / √bc2 + ε), i.e. ε is added to √v̂.
    p = p.map((pi, i) => pi - (o.lr * mHat[i]) / (Math.sqrt(vHat[i]) + o.eps));
  });
  return p;
}

function expectClose(actual: Float32Array, expected: number[], tol = 1e-6): void {
  expect(actual.length).to.equal(expected.length);
  actual.forEach((a, i) => expect(a).to.be.closeTo(expected[i], tol * Math.max(1, Math.abs(expected[i]))));
}

describe('optim: adam', () => {
  const spec = { kind: 'adam' as const, lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };

  it('moves each coordinate by lr against the sign of a constant gradient (bias correction)', () => {
    // With a constant g, m̂ = g and v̂ = g² at every step, so each step is lr·g/(|g| + ε).
    const opt = createOptimizer(spec, 3);
    const p = Float32Array.of(1, -2, 0.5);
    const u = Float32Array.of(0.5, -0.25, 4);
    opt.step(p, u);
    expectClose(p, [0.99, -1.99, 0.49]);
    opt.step(p, u);
    opt.step(p, u);
    expectClose(p, [0.97, -1.97, 0.47]);
    expect(Array.from(u)).to.deep.equal([0.5, -0.25, 4]);
  });

  it('takes a hand-computed step with weight decay and a changing gradient', () => {
    const o = { ...spec, lr: 0.1, beta1: 0.5, beta2: 0.75, eps: 0.1, weightDecay: 0.5 };
    const opt = createOptimizer(o, 1);
    const p = Float32Array.of(2);
    opt.step(p, Float32Array.of(1));
    // g = 1 + 0.5·2 = 2; m = 1, v = 1; m̂ = 2, v̂ = 4; p = 2 − 0.1·2/(2 + 0.1)
    expectClose(p, [2 - 0.2 / 2.1]);
    const p1 = p[0];
    opt.step(p, Float32Array.of(-3));
    // g = −3 + 0.5·p1; m = 0.5·1 + 0.5·g; v = 0.75·1 + 0.25·g²; bc1 = 0.75, bc2 = 0.4375
    const g = -3 + 0.5 * p1;
    const m = 0.5 + 0.5 * g;
    const v = 0.75 + 0.25 * g * g;
    expectClose(p, [p1 - ((0.1 / 0.75) * m) / (Math.sqrt(v) / Math.sqrt(0.4375) + 0.1)]);
  });

  it('matches the PyTorch algorithm over 25 random steps', () => {
    const rng = new Rng(11);
    const n = 23;
    const p0 = Array.from({ length: n }, () => rng.nextUint32() / 2 ** 32 - 0.5);
    const grads = Array.from({ length: 25 }, () =>
      Array.from(Float32Array.from({ length: n }, () => rng.nextUint32() / 2 ** 31 - 1)),
    );
    const o = { ...spec, lr: 1e-3, weightDecay: 1e-2 };
    const opt = createOptimizer(o, n);
    const p = Float32Array.from(p0);
    for (const g of grads) opt.step(p, Float32Array.from(g));
    expectClose(p, torchAdamReference(p0, grads, o), 1e-5);
  });

  it('continues identically after saveState/loadState', () => {
    const rng = new Rng(5);
    const n = 8;
    const grads = Array.from({ length: 6 }, () =>
      Float32Array.from({ length: n }, () => rng.nextUint32() / 2 ** 32),
    );
    const a = createOptimizer({ ...spec, weightDecay: 1e-3 }, n);
    const pa = new Float32Array(n).fill(0.5);
    for (const g of grads.slice(0, 3)) a.step(pa, g);
    const saved = a.saveState();
    expect(saved.scalars).to.deep.equal({ step: 3 });
    const b = createOptimizer({ ...spec, weightDecay: 1e-3 }, n);
    b.loadState(saved);
    const pb = Float32Array.from(pa);
    for (const g of grads.slice(3)) {
      a.step(pa, g);
      b.step(pb, g);
    }
    expect(Array.from(pb)).to.deep.equal(Array.from(pa));
    expect(Array.from(saved.tensors.m)).to.not.deep.equal(Array.from(a.saveState().tensors.m));
  });

  it('checks its inputs', () => {
    expect(() => new Adam({ ...spec, beta2: 1 }, 2)).to.throw(/beta2 must be in \[0, 1\)/);
    expect(() => new Adam({ ...spec, eps: Number.NaN }, 2)).to.throw(/eps must be/);
    const opt = new Adam(spec, 2);
    expect(() => opt.step(new Float32Array(2), new Float32Array(1))).to.throw(/length 2/);
    expect(() => opt.loadState({ tensors: { m: new Float32Array(2) }, scalars: { step: 1 } })).to.throw(
      /missing state tensor 'v'/,
    );
  });
});
