/** Per-group aggregation (src/core/aggregation/perGroup.ts): sparse groups aggregated over their senders. */
import { expect } from 'chai';
import { createAggregationPipeline } from '../../../src/core/aggregation/pipeline.ts';
import { createPerGroupPipeline, type ParameterGroup } from '../../../src/core/aggregation/perGroup.ts';
import type { AggregationSpec } from '../../../src/core/aggregation/types.ts';
import { moeExpertGroups } from '../../../src/models/moeSpec.ts';
import { buildLayout } from '../../../src/core/layout/parameterLayout.ts';
import { expectClose, f32, ids } from './helpers.ts';

const median: AggregationSpec = { rule: 'median', f: 1, pre: [], options: {} };
/** Coordinates 0–1: a dense part every worker sends; 2–3: an "expert" only some workers were routed to. */
const expert: ParameterGroup = { name: 'expert', ranges: [{ offset: 2, size: 2 }] };

describe('per-group aggregation', () => {
  // Three of seven workers routed tokens to the expert (with f = 1, 3 > 2f senders).
  const vectors = f32([
    [1, 1, 2, 4],
    [1, 2, 3, 5],
    [2, 1, 4, 6],
    [1, 1, 0, 0],
    [2, 2, 0, 0],
    [1, 2, 0, 0],
    [2, 1, 0, 0],
  ]);

  it('the plain median zeroes an expert only a minority of workers sent (the starvation it fixes)', () => {
    const plain = createAggregationPipeline(median).aggregate(vectors, ids(7));
    expectClose(plain.update.subarray(2), [0, 0]);
  });

  it('a vector the validation refuses (NaN outside the group) is not one of the group’s senders', () => {
    const withNaN = [...vectors, f32([[NaN, 1, 100, 100]])[0]];
    const r = createPerGroupPipeline(median, [expert]).aggregate(withNaN, ids(8));
    expectClose(r.update.subarray(2), [3, 5]);
  });

  it('aggregates a group over the workers that sent it, and the rest over everyone', () => {
    const r = createPerGroupPipeline(median, [expert]).aggregate(vectors, ids(7));
    // Dense part: the median of all seven; the expert: the median of the three senders.
    expectClose(r.update, [1, 1, 3, 5]);
    expect(r.diagnostics?.perGroup).to.deep.equal({ aggregated: ['expert'], fallbacks: [] });
    expect(r.workers.map((w) => w.included)).to.deep.equal(
      createAggregationPipeline(median)
        .aggregate(vectors, ids(7))
        .workers.map((w) => w.included),
    );
  });

  it('respects f: a group with too few senders for the rule keeps the all-worker value and says why', () => {
    // Two senders: median with f = 1 needs more than 2f = 2 inputs.
    const two = vectors.map((v, i) => (i === 2 ? Float32Array.from([v[0], v[1], 0, 0]) : v));
    const r = createPerGroupPipeline(median, [expert]).aggregate(two, ids(7));
    expectClose(r.update.subarray(2), [0, 0]);
    const { fallbacks } = r.diagnostics?.perGroup as {
      fallbacks: { group: string; senders: number; reason: string }[];
    };
    expect(fallbacks).to.have.length(1);
    expect(fallbacks[0].group).to.equal('expert');
    expect(fallbacks[0].senders).to.equal(2);
    expect(fallbacks[0].reason).to.match(/median/);
  });

  it('a Byzantine sender among enough senders is outvoted within the group', () => {
    const attacked = vectors.map((v, i) => (i === 6 ? Float32Array.from([2, 1, -1e6, -1e6]) : v));
    const r = createPerGroupPipeline(median, [expert]).aggregate(attacked, ids(7));
    // Senders' expert values: (2, 4), (3, 5), (4, 6), (−1e6, −1e6): the coordinate-wise median is bounded by honest ones.
    expectClose(r.update.subarray(2), [2.5, 4.5]);
  });

  it('refuses overlapping or out-of-range groups with the group names', () => {
    const a: ParameterGroup = { name: 'a', ranges: [{ offset: 0, size: 3 }] };
    const b: ParameterGroup = { name: 'b', ranges: [{ offset: 2, size: 2 }] };
    expect(() => createPerGroupPipeline(median, [a, b])).to.throw(/'a' and 'b' overlap at 2/);
    expect(() => createPerGroupPipeline({ ...median, expectedLength: 3 }, [b])).to.throw(
      /'b' range \[2, 4\) exceeds the vector length 3/,
    );
  });

  it('moeExpertGroups: one group per expert of each block, its four tensors', () => {
    const layout = buildLayout([
      { name: 'blocks.0.mlp.router.weight', shape: [2, 2] },
      { name: 'blocks.0.mlp.experts.0.fc.weight', shape: [2, 3] },
      { name: 'blocks.0.mlp.experts.0.fc.bias', shape: [3] },
      { name: 'blocks.0.mlp.experts.1.fc.weight', shape: [2, 3] },
      { name: 'head.weight', shape: [2] },
    ]);
    expect(moeExpertGroups(layout.layers)).to.deep.equal([
      {
        name: 'blocks.0.mlp.experts.0',
        ranges: [
          { offset: 4, size: 6 },
          { offset: 10, size: 3 },
        ],
      },
      { name: 'blocks.0.mlp.experts.1', ranges: [{ offset: 13, size: 6 }] },
    ]);
  });
});
