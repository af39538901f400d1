import { expect } from 'chai';
import { createAttack } from '../../../src/core/attacks/registry.ts';
import { GradientHistory, estimateFromOwnHistory } from '../../../src/core/attacks/stats.ts';
import { AttackError } from '../../../src/core/attacks/types.ts';
import { Rng } from '../../../src/core/random.ts';
import { expectClose } from './helpers.ts';

describe('attacks: own-history estimation for real workers', () => {
  it('keeps the last k gradients (copies), oldest first', () => {
    const h = new GradientHistory(2, 3);
    expect(h.size).to.equal(0);
    expect(h.latest()).to.equal(undefined);
    const g = Float32Array.from([0, 0]);
    for (let r = 1; r <= 5; r++) {
      g[0] = r;
      g[1] = -r;
      h.push(g);
    }
    g[0] = 99; // the history holds copies
    expect(h.size).to.equal(3);
    expect(h.vectors().map((v) => v[0])).to.deep.equal([3, 4, 5]);
    expect(Array.from(h.latest()!)).to.deep.equal([5, -5]);
    h.clear();
    expect(h.vectors()).to.deep.equal([]);
    expect(() => h.push(Float32Array.from([1]))).to.throw(AttackError, /length/);
    expect(() => new GradientHistory(2, 0)).to.throw(AttackError);
  });

  it('estimates μ̂ and σ̂ (ddof 1 by default) into preallocated buffers', () => {
    const h = new GradientHistory(3, 4);
    for (const row of [
      [1, 2, 3],
      [3, 2, 1],
      [5, 2, -1],
    ]) {
      h.push(Float32Array.from(row));
    }
    const out = { mean: new Float32Array(3), std: new Float32Array(3) };
    const e = estimateFromOwnHistory(h, {}, out);
    expect(e.mean).to.equal(out.mean);
    expect(e.count).to.equal(3);
    expectClose(e.mean, [3, 2, 1]);
    expectClose(e.std, [2, 0, 2]);
    expectClose(estimateFromOwnHistory(h, { ddof: 0 }).std, [Math.sqrt(8 / 3), 0, Math.sqrt(8 / 3)]);
    expect(() => estimateFromOwnHistory(new GradientHistory(3, 2))).to.throw(AttackError, /empty/);
  });

  it('runs an omniscient attack (ALIE) from the own history: μ̂ − zσ̂', () => {
    const rng = new Rng(11);
    const d = 64;
    const h = new GradientHistory(d, 8);
    for (let b = 0; b < 10; b++) h.push(Float32Array.from({ length: d }, () => 1 + rng.normal()));
    const e = estimateFromOwnHistory(h);
    const z = 0.21042839424792484; // (n, f) = (12, 2)
    const x = createAttack('alie', {}).craft({
      honest: h.vectors(),
      own: h.latest(),
      n: 12,
      f: 2,
      rng,
      round: 9,
    });
    expectClose(
      x,
      Array.from(e.mean, (m, k) => m - z * e.std[k]),
    );
  });
});
