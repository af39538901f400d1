import { expect } from 'chai';
import { Rng } from '../../../src/core/random.ts';
import { createOptimizer } from '../../../src/core/optim/index.ts';
import { Sgd } from '../../../src/core/optim/sgd.ts';

/** torch.optim.SGD's algorithm, written as in its documentation, in double precision. */
function torchSgdReference(
  p: number[],
  grads: number[][],
  o: { lr: number; momentum: number; weightDecay: number; nesterov: boolean },
): number[] {
  let buf: number[] | undefined;
  for (const grad of grads) {
    let g = grad.map((gi, i) => gi + o.weightDecay * p[i]);
    if (o.momentum !== 0) {
      buf = buf === undefined ? [...g] : buf.map((b, i) => o.momentum * b + g[i]);
      const b = buf;
      g = o.nesterov ? g.map((gi, i) => gi + o.momentum * b[i]) : b;
    }
    p = p.map((pi, i) => pi - o.lr * g[i]);
  }
  return p;
}

function expectClose(actual: Float32Array, expected: number[], tol = 1e-6): void {
  expect(actual.length).to.equal(expected.length);
  actual.forEach((a, i) => expect(a).to.be.closeTo(expected[i], tol * Math.max(1, Math.abs(expected[i]))));
}

describe('optim: sgd', () => {
  const spec = { kind: 'sgd' as const, lr: 0.1, momentum: 0.9, weightDecay: 0.01 };

  it('takes hand-computed momentum steps (first step: buf = g)', () => {
    const opt = createOptimizer(spec, 2);
    const p = Float32Array.of(1, -2);
    const u = Float32Array.of(0.5, 0.25);
    opt.step(p, u);
    // g = u + 0.01·p = [0.51, 0.23]; buf = g; p -= 0.1·buf
    expectClose(p, [0.949, -2.023]);
    opt.step(p, u);
    // g = [0.50949, 0.22977]; buf = 0.9·[0.51, 0.23] + g = [0.96849, 0.43677]
    expectClose(p, [0.852151, -2.066677]);
    expect(Array.from(u)).to.deep.equal([0.5, 0.25]);
  });

  it('takes hand-computed Nesterov steps', () => {
    const opt = createOptimizer({ ...spec, nesterov: true }, 2);
    const p = Float32Array.of(1, -2);
    const u = Float32Array.of(0.5, 0.25);
    opt.step(p, u);
    // d = g + 0.9·buf = 1.9·[0.51, 0.23]
    expectClose(p, [0.9031, -2.0437]);
    opt.step(p, u);
    // g = [0.509031, 0.229563]; buf = [0.968031, 0.436563]; d = g + 0.9·buf
    expectClose(p, [0.76507411, -2.10594697]);
  });

  it('is plain SGD without momentum', () => {
    const opt = createOptimizer({ kind: 'sgd', lr: 0.5, momentum: 0, weightDecay: 0 }, 3);
    const p = Float32Array.of(1, 2, 3);
    opt.step(p, Float32Array.of(1, -1, 0.5));
    expect(Array.from(p)).to.deep.equal([0.5, 2.5, 2.75]);
    expect(opt.saveState()).to.deep.equal({ tensors: {}, scalars: { step: 1 } });
  });

  for (const nesterov of [false, true]) {
    it(`matches the PyTorch algorithm over 20 random steps (nesterov: ${nesterov})`, () => {
      const rng = new Rng(7);
      const n = 17;
      const p0 = Array.from({ length: n }, () => rng.nextUint32() / 2 ** 32 - 0.5);
      const grads = Array.from({ length: 20 }, () =>
        Array.from({ length: n }, () => rng.nextUint32() / 2 ** 31 - 1),
      );
      const o = { lr: 0.05, momentum: 0.9, weightDecay: 1e-3, nesterov };
      const opt = createOptimizer({ kind: 'sgd', ...o }, n);
      const p = Float32Array.from(p0);
      for (const g of grads) opt.step(p, Float32Array.from(g));
      expectClose(
        p,
        torchSgdReference(
          p0,
          grads.map((g) => Array.from(Float32Array.from(g))),
          o,
        ),
        1e-5,
      );
    });
  }

  it('continues identically after saveState/loadState', () => {
    const rng = new Rng(3);
    const n = 9;
    const grads = Array.from({ length: 6 }, () =>
      Float32Array.from({ length: n }, () => rng.nextUint32() / 2 ** 32),
    );
    const a = createOptimizer({ ...spec, nesterov: true }, n);
    const pa = new Float32Array(n).fill(1);
    for (const g of grads.slice(0, 3)) a.step(pa, g);
    const saved = a.saveState();
    const b = createOptimizer({ ...spec, nesterov: true }, n);
    b.loadState(saved);
    const pb = Float32Array.from(pa);
    for (const g of grads.slice(3)) {
      a.step(pa, g);
      b.step(pb, g);
    }
    expect(Array.from(pb)).to.deep.equal(Array.from(pa));
    // The saved state is a snapshot, not a view of the live buffer.
    expect(Array.from(saved.tensors.momentum)).to.not.deep.equal(Array.from(a.saveState().tensors.momentum));
    expect(saved.scalars.step).to.equal(3);
  });

  it('checks its inputs', () => {
    expect(() => new Sgd({ ...spec, momentum: 0, nesterov: true }, 2)).to.throw(/nesterov needs momentum/);
    expect(() => new Sgd({ ...spec, lr: -1 }, 2)).to.throw(/lr must be/);
    const opt = new Sgd(spec, 2);
    expect(() => opt.step(new Float32Array(3), new Float32Array(2))).to.throw(/length 2/);
    expect(() => opt.loadState({ tensors: {}, scalars: { step: 2 } })).to.throw(
      /missing state tensor 'momentum'/,
    );
    expect(() =>
      opt.loadState({ tensors: { momentum: new Float32Array(5) }, scalars: { step: 2 } }),
    ).to.throw(/length 5, expected 2/);
  });
});
