import { expect } from 'chai';
import { Rng } from '../../../src/core/random.ts';
import { createOptimizer } from '../../../src/core/optim/index.ts';
import { AVERAGE_TENSOR, averageOf } from '../../../src/core/optim/parameterAverage.ts';
import type { OptimizerSpec } from '../../../src/core/optim/types.ts';

const SIZE = 7;
const sgd: OptimizerSpec = { kind: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-3 };

function updates(seed: number, count: number): Float32Array[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => Float32Array.from({ length: SIZE }, () => rng.normal()));
}

describe('optim: iterate average (optimizer.ema)', () => {
  it('θ̄ = β^K·θ₀ + Σₖ (1 − β)·β^(K−k)·θₖ over the live iterates, and the live path is the plain optimizer’s', () => {
    const beta = 0.8;
    const us = updates(1, 12);
    const plain = createOptimizer(sgd, SIZE);
    const averaged = createOptimizer({ ...sgd, ema: beta }, SIZE);
    const p = Float32Array.from({ length: SIZE }, (_, i) => i - 3);
    const q = p.slice();
    const iterates: number[][] = [Array.from(p)];
    expect(averaged.averaged?.()).to.equal(undefined);
    for (const u of us) {
      plain.step(p, u);
      averaged.step(q, u);
      expect(Array.from(q)).to.deep.equal(Array.from(p));
      iterates.push(Array.from(p));
    }
    const K = us.length;
    const expected = iterates[0].map((_, i) => {
      let s = beta ** K * iterates[0][i];
      for (let k = 1; k <= K; k++) s += (1 - beta) * beta ** (K - k) * iterates[k][i];
      return s;
    });
    const got = averaged.averaged!()!;
    got.forEach((g, i) => expect(g).to.be.closeTo(expected[i], 1e-5 * Math.max(1, Math.abs(expected[i]))));
    // Not the live parameters: the average lags behind them.
    expect(Math.max(...Array.from(got, (g, i) => Math.abs(g - q[i])))).to.be.greaterThan(1e-3);
  });

  for (const spec of [
    sgd,
    { kind: 'adam', lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 },
  ] as const) {
    it(`${spec.kind}: save, load into a fresh optimizer and go on = never stopped (average included)`, () => {
      const us = updates(2, 10);
      const a = createOptimizer({ ...spec, ema: 0.9 }, SIZE);
      const pa = new Float32Array(SIZE).fill(0.5);
      for (const u of us.slice(0, 4)) a.step(pa, u);
      const saved = a.saveState();
      expect(saved.tensors[AVERAGE_TENSOR]).to.be.instanceOf(Float32Array);
      const b = createOptimizer({ ...spec, ema: 0.9 }, SIZE);
      b.loadState(structuredClone(saved));
      const pb = pa.slice();
      for (const u of us.slice(4)) {
        a.step(pa, u);
        b.step(pb, u);
      }
      expect(Array.from(pb)).to.deep.equal(Array.from(pa));
      expect(Array.from(b.averaged!()!)).to.deep.equal(Array.from(a.averaged!()!));
      // The saved state is a copy: training on did not change it.
      expect(Array.from(saved.tensors[AVERAGE_TENSOR])).to.not.deep.equal(Array.from(a.averaged!()!));
    });
  }

  it('a state saved without averaging loads, and the average starts from the parameters at the next step', () => {
    const plain = createOptimizer(sgd, SIZE);
    const p = new Float32Array(SIZE).fill(1);
    for (const u of updates(3, 3)) plain.step(p, u);
    const averaged = createOptimizer({ ...sgd, ema: 0.5 }, SIZE);
    averaged.loadState(plain.saveState());
    expect(averaged.averaged?.()).to.equal(undefined);
    const before = p.slice();
    const [u] = updates(4, 1);
    const q = p.slice();
    plain.step(p, u);
    averaged.step(q, u);
    expect(Array.from(q)).to.deep.equal(Array.from(p)); // the inner momentum was restored
    averaged.averaged!()!.forEach((g, i) => expect(g).to.be.closeTo(0.5 * before[i] + 0.5 * p[i], 1e-6));
  });

  it('averageOf reads the average of a saved state only after a step; ema 0 keeps no average', () => {
    const opt = createOptimizer({ ...sgd, ema: 0.9 }, SIZE);
    expect(averageOf(opt.saveState())).to.equal(undefined);
    opt.step(new Float32Array(SIZE), updates(5, 1)[0]);
    expect(averageOf(opt.saveState())).to.be.instanceOf(Float32Array);
    const off = createOptimizer({ ...sgd, ema: 0 }, SIZE);
    expect(off.averaged).to.equal(undefined);
    expect(Object.keys(off.saveState().tensors)).to.deep.equal(['momentum']);
  });

  it('rejects a decay outside (0, 1) and a saved average of the wrong length', () => {
    expect(() => createOptimizer({ ...sgd, ema: 1 }, SIZE)).to.throw(/decay must be in \(0, 1\)/);
    const opt = createOptimizer({ ...sgd, ema: 0.9 }, SIZE);
    opt.step(new Float32Array(SIZE), updates(6, 1)[0]);
    const state = opt.saveState();
    state.tensors[AVERAGE_TENSOR] = new Float32Array(SIZE + 1);
    expect(() => createOptimizer({ ...sgd, ema: 0.9 }, SIZE).loadState(state)).to.throw(
      /'average' has length 8/,
    );
  });
});
