import { expect } from 'chai';
import { layerView } from '../../../src/core/layout/parameterLayout.ts';
import { toNamedTensors } from '../../../src/core/layout/namedTensors.ts';
import { Rng } from '../../../src/core/random.ts';
import { createOps } from '../../../src/models/ops.ts';
import { tyingEnergy } from '../../../src/models/recursion.ts';
import { layerImportance, reportPlans, tyingEnergies } from '../../../src/models/teacherReport.ts';
import { createTransformer } from '../../../src/models/transformer.ts';
import type { TransformerSpec } from '../../../src/models/types.ts';
import { selectBackend } from '../../../src/worker/backend.ts';

const spec: TransformerSpec = {
  kind: 'transformer',
  vocab: 'abcdef',
  dModel: 8,
  layers: 4,
  heads: 2,
  ffn: 12,
  context: 8,
};

function randomTeacher(seed: number): Float32Array {
  const model = createTransformer(spec);
  const rng = new Rng(seed);
  const params = new Float32Array(model.layout.totalSize);
  for (const slot of model.layout.layers) {
    const view = layerView(params, slot);
    for (let i = 0; i < view.length; i++)
      view[i] = (slot.name.endsWith('.gain') ? 1 : 0) + 0.3 * rng.normal();
  }
  return params;
}

function zeroTensor(params: Float32Array, name: string): void {
  const slot = createTransformer(spec).layout.layers.find((s) => s.name === name)!;
  layerView(params, slot).fill(0);
}

describe('models: teacher report', function () {
  this.timeout(60_000);
  before(async () => {
    await selectBackend('cpu');
  });

  it('layer importance is 1 − cos(X, X + f(LN X)): 0 for a sub-layer whose output is zero, else positive', () => {
    const params = randomTeacher(1);
    // layer 1's attention writes nothing (projection and its bias zero); layer 2's MLP likewise
    zeroTensor(params, 'blocks.1.attn.proj.weight');
    zeroTensor(params, 'blocks.1.attn.proj.bias');
    zeroTensor(params, 'blocks.2.mlp.proj.weight');
    zeroTensor(params, 'blocks.2.mlp.proj.bias');
    const rng = new Rng(2);
    const ids = Float32Array.from({ length: 3 * 8 }, () => rng.int(6));
    const scores = layerImportance(spec, params, ids, 3, createOps({ conv: 'builtin', matMul: 'builtin' }));
    expect(scores.map((s) => s.layer)).to.deep.equal([0, 1, 2, 3]);
    expect(scores[1].attn).to.be.closeTo(0, 1e-6);
    expect(scores[2].mlp).to.be.closeTo(0, 1e-6);
    for (const s of [
      scores[0].attn,
      scores[0].mlp,
      scores[1].mlp,
      scores[2].attn,
      scores[3].attn,
      scores[3].mlp,
    ]) {
      expect(s).to.be.within(1e-4, 2);
    }
    // a sub-layer writing ε·f: the stream turns by O(ε), so the score falls like ε²
    const scaled = Float32Array.from(params);
    const slot = (name: string) => createTransformer(spec).layout.layers.find((s) => s.name === name)!;
    for (const name of ['blocks.3.mlp.proj.weight', 'blocks.3.mlp.proj.bias']) {
      const view = layerView(scaled, slot(name));
      for (let i = 0; i < view.length; i++) view[i] *= 1e-2;
    }
    const small = layerImportance(spec, scaled, ids, 3, createOps({ conv: 'builtin', matMul: 'builtin' }));
    expect(small[3].mlp).to.be.below(1e-3 * scores[3].mlp);
    expect(small[3].attn).to.equal(scores[3].attn);
  });

  it('SVD energy: 0 at rank 0, all of it at full rank, non-decreasing in rank; no residual for identical layers', () => {
    const params = randomTeacher(3);
    const teacher = toNamedTensors(params, createTransformer(spec).layout);
    const e = tyingEnergy(
      spec,
      teacher,
      { blocks: 2, schedule: 'cycle', init: 'average' },
      [0, 1, 2, 4, 8, 12],
    );
    const f = e.captured.map((c) => c.fraction);
    expect(f[0]).to.equal(0);
    expect(f[f.length - 1]).to.be.closeTo(1, 1e-12);
    for (let i = 1; i < f.length; i++) expect(f[i]).to.be.at.least(f[i - 1]);
    expect(f[2]).to.be.below(1); // a random residual is not rank 2
    expect(e.residualFraction).to.be.above(0.1);
    // lower init, K = 2 of 4: blocks are layers 0 and 1, so the residuals are W₂ − W₀ and W₃ − W₁ (and 0 at 0, 1)
    const lower = tyingEnergy(spec, teacher, { blocks: 2, schedule: 'cycle', init: 'lower' }, [0]);
    let r2 = 0;
    let w2 = 0;
    for (const m of ['attn.qkv', 'attn.proj', 'mlp.fc', 'mlp.proj']) {
      for (let l = 0; l < 4; l++) {
        const w = teacher.get(`blocks.${l}.${m}.weight`)!.data;
        const base = teacher.get(`blocks.${l % 2}.${m}.weight`)!.data;
        w.forEach((x, i) => {
          r2 += (x - base[i]) ** 2;
          w2 += x * x;
        });
      }
    }
    expect(lower.residualFraction).to.be.closeTo(r2 / w2, 1e-9);
    // every layer the same: tying loses nothing
    const same = new Map(teacher);
    for (const [name, t] of teacher) {
      const m = /^blocks\.\d+\.(.*)$/.exec(name);
      if (m !== null) same.set(name, teacher.get(`blocks.0.${m[1]}`)!);
      else same.set(name, t);
    }
    const none = tyingEnergy(spec, same, { blocks: 1, schedule: 'cycle', init: 'stepwise' }, [0, 4]);
    expect(none.residualFraction).to.equal(0);
    expect(none.captured.map((c) => c.fraction)).to.deep.equal([1, 1]);
  });

  it('plans K ∈ {1, 2, 3, ⌊L/2⌋} below L for each valid schedule and every init', () => {
    const plans = reportPlans(8).map((p) => `${p.blocks}/${p.schedule}/${p.init}`);
    expect(plans.filter((p) => p.endsWith('/stepwise'))).to.deep.equal([
      '1/cycle/stepwise',
      '2/cycle/stepwise',
      '3/cycle/stepwise',
      '4/cycle/stepwise',
      '3/middle-cycle/stepwise',
      '4/middle-cycle/stepwise',
    ]);
    expect(plans).to.have.length(18);
    expect(reportPlans(1)).to.deep.equal([]);
    expect(tyingEnergies(spec, randomTeacher(4), reportPlans(4, [2]), [0, 8])).to.have.length(3);
  });
});
