/**
 * Regression: the sign-aware Flag Aggregator must orient its robust direction by the honest majority even when
 * honest gradients are noisy. A one-worker-one-vote majority of projection signs handed the direction to two
 * colluding sign-flippers whenever two of four honest workers fell on the wrong side of the axis (6-worker demo).
 */
import { expect } from 'chai';
import { createFlagAggregator } from '../../../src/core/aggregation/flag/aggregator.ts';
import { noisyCollusionRound } from './helpers.ts';

describe('flag: orientation of the robust direction with noisy honest workers', () => {
  function attackerRounds(noise: number): number[] {
    const failures: number[] = [];
    for (let seed = 0; seed < 200; seed++) {
      const rule = createFlagAggregator({});
      const vectors = noisyCollusionRound(seed, noise);
      const byzantine = [4, 5];
      const res = rule.aggregate({ vectors, workerIds: vectors.map((_, i) => `w${i}`), f: 2 });
      if (byzantine.some((b) => res.workers[b].included)) failures.push(seed);
    }
    return failures;
  }

  // Majority-of-signs orientation let an attacker in on 7/200 rounds at noise 6 and 45/200 at noise 9.
  it('excludes two colluding sign-flippers in every one of 200 rounds at honest cosine ≈ 0.16', () => {
    const failures = attackerRounds(6);
    expect(failures, `seeds where an attacker was included: ${failures.join(',')}`).to.deep.equal([]);
  });

  it('lets them in on at most 5% of rounds at honest cosine ≈ 0.11', () => {
    expect(attackerRounds(9).length).to.be.at.most(10);
  });
});
