import { expect } from 'chai';
import { maxDiff, randomParams } from '../../support/modelLogits.ts';
import { modelSchema } from '../../../src/config/jobSpec.ts';
import { layerView } from '../../../src/core/layout/parameterLayout.ts';
import { Rng } from '../../../src/core/random.ts';
import {
  morParameterCountOrZero,
  morProblems,
  morRouterTensors,
  recursionsOf,
  routedRecursions,
  selectedTokens,
  targetDepth,
} from '../../../src/models/morSpec.ts';
import type { ModelOutput } from '../../../src/models/model.ts';
import { createOps } from '../../../src/models/ops.ts';
import { parameterCount } from '../../../src/models/parameterCount.ts';
import { recursiveLayerSpecs } from '../../../src/models/recursion.ts';
import {
  recursiveParametersFromTeacher,
  type RecursiveSpec,
} from '../../../src/models/recursiveTransformer.ts';
import { createModel } from '../../../src/models/registry.ts';
import { tf } from '../../../src/models/tf.ts';
import { createTrainer } from '../../../src/models/trainer.ts';
import type { MorSpec, RecursionSpec, TransformerSpec } from '../../../src/models/types.ts';
import { selectBackend } from '../../../src/worker/backend.ts';

const base: TransformerSpec = {
  kind: 'transformer',
  vocab: 'abcdefg',
  dModel: 8,
  layers: 4,
  heads: 2,
  ffn: 12,
  context: 8,
};

function student(recursion: Partial<RecursionSpec>, spec: TransformerSpec = base): TransformerSpec {
  return { ...spec, recursion: { blocks: 2, schedule: 'cycle', init: 'lower', loraRank: 0, ...recursion } };
}

const mor = (capacities: number[], auxLossWeight = 0.01): MorSpec => ({ capacities, auxLossWeight });

function randomIds(n: number, t: number, v: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n * t }, () => rng.int(v));
}

function run(spec: TransformerSpec, params: Float32Array, ids: Float32Array, n: number) {
  const model = createModel(spec);
  const ops = createOps({ conv: 'builtin', matMul: 'builtin' });
  return tf.tidy(() => {
    const p = model.layout.layers.map((slot) => tf.tensor(layerView(params, slot), slot.shape));
    const x = model.input(ids, n);
    const out: ModelOutput = model.forward ? model.forward(p, x, ops) : { logits: model.apply(p, x, ops) };
    return {
      logits: out.logits.dataSync() as Float32Array,
      meanDepth: out.meanDepth?.dataSync()[0],
      auxLoss: out.auxLoss?.dataSync()[0],
    };
  });
}

/** The MoR parameters with every router bias set to `bias` (and the weights kept). */
function withRouterBias(spec: TransformerSpec, params: Float32Array, bias: number): Float32Array {
  const out = params.slice();
  for (const slot of createModel(spec).layout.layers) {
    if (slot.name.startsWith('mor.router.') && slot.name.endsWith('.bias')) layerView(out, slot).fill(bias);
  }
  return out;
}

describe('models: Mixture-of-Recursions spec (pure)', () => {
  it('R = L / K under cycle only; routers only for recursions with capacity < 1', () => {
    expect(recursionsOf(6, { blocks: 2, schedule: 'cycle' })).to.equal(3);
    expect(recursionsOf(5, { blocks: 2, schedule: 'cycle' })).to.equal(undefined);
    expect(recursionsOf(6, { blocks: 3, schedule: 'middle-cycle' })).to.equal(undefined);
    expect(routedRecursions(mor([1, 1, 0.5, 0.25]))).to.deep.equal([2, 3]);
    expect(morRouterTensors(8, mor([1, 0.5]))).to.deep.equal([
      { name: 'mor.router.1.weight', shape: [8, 1] },
      { name: 'mor.router.1.bias', shape: [1] },
    ]);
    expect(targetDepth(mor([1, 0.5, 0.25]))).to.equal(1.75);
    expect(selectedTokens(256, 0.5)).to.equal(128);
    expect(selectedTokens(10, 0.25)).to.equal(3);
  });

  it('counts the recursive student plus d + 1 per routed recursion, the layout size, routers last', () => {
    for (const [layers, blocks, capacities, loraRank] of [
      [4, 2, [1, 0.5], 0],
      [6, 2, [1, 0.6, 0.3], 2],
      [3, 1, [1, 1, 1], 0],
      [3, 1, [1, 0.67, 0.33], 0],
    ] as const) {
      const plain = student({ blocks, loraRank }, { ...base, layers });
      const spec = student({ blocks, loraRank, mor: mor([...capacities]) }, { ...base, layers });
      const routed = capacities.filter((c) => c < 1).length;
      expect(parameterCount(spec)).to.equal(parameterCount(plain) + routed * (base.dModel + 1));
      expect(morParameterCountOrZero(base.dModel, spec.recursion!.mor)).to.equal(routed * (base.dModel + 1));
      expect(createModel(spec).layout.totalSize).to.equal(parameterCount(spec));
      const names = recursiveLayerSpecs({ ...spec, recursion: spec.recursion! }).map((l) => l.name);
      expect(names.slice(names.length - 2 * routed)).to.deep.equal(
        morRouterTensors(base.dModel, mor([...capacities])).map((l) => l.name),
      );
    }
  });

  it('refuses bad sections naming the field and the fix', () => {
    const problems = (layers: number, r: Partial<RecursionSpec>, m: MorSpec) =>
      morProblems(layers, { blocks: 2, schedule: 'cycle', init: 'lower', loraRank: 0, ...r, mor: m });
    expect(problems(4, {}, mor([1, 0.5]))).to.deep.equal([]);
    expect(problems(5, {}, mor([1, 0.5]))[0]).to.match(/^recursion\.mor needs layers \(5\) to be a multiple/);
    expect(problems(6, { blocks: 3, schedule: 'middle-cycle' }, mor([1, 0.5]))[0]).to.match(
      /^recursion\.mor needs schedule 'cycle'.*set recursion\.schedule to cycle/,
    );
    expect(problems(6, {}, mor([1, 0.5]))).to.deep.equal([
      'recursion.mor.capacities must have one entry per recursion (layers / blocks = 3), got 2',
    ]);
    expect(problems(4, {}, mor([0.9, 0.5]))[0]).to.match(/must start with 1/);
    expect(problems(6, {}, mor([1, 0.3, 0.5]))[0]).to.match(/must be non-increasing/);
    expect(problems(4, {}, mor([1, 0]))[0]).to.match(/must each be in \(0, 1\]/);
    expect(problems(4, {}, mor([1, 0.5], -1))[0]).to.match(/^recursion\.mor\.auxLossWeight must be/);
    const parsed = modelSchema.safeParse({
      ...base,
      layers: 6,
      recursion: { blocks: 2, mor: { capacities: [1, 0.5] } },
    });
    expect(parsed.success).to.equal(false);
    const issue = parsed.error!.issues[0];
    expect(issue.path).to.deep.equal(['recursion', 'mor', 'capacities']);
    expect(issue.message).to.match(/one entry per recursion \(layers \/ blocks = 3\)/);
    const ok = modelSchema.parse({ ...base, recursion: { blocks: 2, mor: { capacities: [1, 0.5] } } });
    expect(ok.kind === 'transformer' && ok.recursion?.mor).to.deep.equal(mor([1, 0.5]));
  });
});

describe('models: Mixture-of-Recursions student', function () {
  this.timeout(120_000);

  before(async () => {
    await selectBackend('cpu');
  });

  it('with every capacity 1 computes the plain recursive student on the same parameters (within 1e-5)', () => {
    for (const [layers, blocks, loraRank] of [
      [4, 2, 0],
      [4, 2, 3],
      [3, 1, 0],
    ] as const) {
      const plain = student({ blocks, loraRank }, { ...base, layers });
      const routed = student(
        { blocks, loraRank, mor: mor(Array(layers / blocks).fill(1)) },
        { ...base, layers },
      );
      const params = randomParams(plain, 7 + layers + loraRank);
      const ids = randomIds(3, 8, base.vocab.length, 5);
      const a = run(plain, params, ids, 3);
      const b = run(routed, params, ids, 3);
      expect(maxDiff(a.logits, b.logits)).to.be.below(1e-5);
      expect(b.meanDepth).to.equal(layers / blocks);
      expect(b.auxLoss).to.equal(undefined);
    }
  });

  it('routes: a router that passes every token gives full depth, one that stops every token depth 1', () => {
    const spec = student({ blocks: 2, mor: mor([1, 0.5]) });
    const full = student({ blocks: 2 }); // L = 4: both recursions
    const shallow = student({ blocks: 2 }, { ...base, layers: 2 }); // L = 2: the first recursion only
    const params = randomParams(spec, 3);
    const plain = params.subarray(0, createModel(full).layout.totalSize);
    const ids = randomIds(2, 8, base.vocab.length, 9);
    // σ(60) is 1 in float32: the gate is exactly 1
    const pass = run(spec, withRouterBias(spec, params, 60), ids, 2);
    expect(pass.meanDepth).to.equal(2);
    expect(maxDiff(pass.logits, run(full, plain, ids, 2).logits)).to.be.below(1e-5);
    const stop = run(spec, withRouterBias(spec, params, -60), ids, 2);
    expect(stop.meanDepth).to.equal(1);
    expect(maxDiff(stop.logits, run(shallow, plain, ids, 2).logits)).to.be.below(1e-5);
  });

  it('is causal: a token’s depth and logits do not depend on later tokens', () => {
    const spec = student({ blocks: 1, mor: mor([1, 0.5, 0.25]) }, { ...base, layers: 3 });
    const params = randomParams(spec, 21);
    const t = 8;
    const ids = randomIds(1, t, base.vocab.length, 4);
    const changed = ids.slice();
    changed[t - 1] = (ids[t - 1] + 1) % base.vocab.length;
    changed[t - 2] = (ids[t - 2] + 3) % base.vocab.length;
    const a = run(spec, params, ids, 1);
    const b = run(spec, params, changed, 1);
    expect(a.meanDepth).to.be.above(1).and.below(3); // some tokens stop: the routing is exercised
    const v = base.vocab.length;
    expect(maxDiff(a.logits.subarray(0, (t - 2) * v), b.logits.subarray(0, (t - 2) * v))).to.equal(0);
    expect(maxDiff(a.logits, b.logits)).to.be.above(0);
  });

  it('has a finite gradient that reaches the routers (task loss and auxiliary loss)', async () => {
    const spec = student({ blocks: 1, loraRank: 2, mor: mor([1, 0.5, 0.25], 0.1) }, { ...base, layers: 3 });
    const trainer = await createTrainer(spec);
    try {
      const params = trainer.initialParameters(5);
      const n = 4;
      const t = 8;
      const x = randomIds(n, t, base.vocab.length, 8);
      const y = Uint8Array.from(randomIds(n, t, base.vocab.length, 9));
      const { grad, loss } = await trainer.gradient(params, { x, y, size: n });
      expect(Number.isFinite(loss)).to.equal(true);
      expect(grad.every(Number.isFinite)).to.equal(true);
      for (const slot of trainer.layout.layers.filter((s) => s.name.startsWith('mor.router.'))) {
        const g = layerView(grad, slot);
        expect(Math.max(...Array.from(g, Math.abs)), slot.name).to.be.above(0);
      }
    } finally {
      trainer.dispose();
    }
  });

  it('evaluation reports the token-weighted mean depth, whatever the evaluation batch', async () => {
    const spec = student({ blocks: 1, mor: mor([1, 0.5, 0.25]) }, { ...base, layers: 3 });
    const params = randomParams(spec, 21);
    const n = 5;
    const t = 8;
    const x = randomIds(n, t, base.vocab.length, 12);
    const y = Uint8Array.from(randomIds(n, t, base.vocab.length, 13));
    // one pass over all n sequences, then one evaluation batch per sequence
    const whole = run(spec, params, x, n).meanDepth!;
    expect(whole).to.be.above(1).and.below(3);
    for (const evalBatchSize of [n * t, t]) {
      const trainer = await createTrainer(spec, { evalBatchSize });
      try {
        const ev = await trainer.evaluate(params, { images: x, labels: y, count: n });
        expect(ev.meanDepth).to.be.closeTo(whole, 1e-6);
      } finally {
        trainer.dispose();
      }
    }
  });

  it('built from a teacher: the blocks come from the teacher, the routers start at zero (every token continues)', () => {
    const spec = student({ blocks: 2, mor: mor([1, 0.5]) });
    const teacher = randomParams(base, 11);
    const params = recursiveParametersFromTeacher(spec as RecursiveSpec, teacher);
    const layout = createModel(spec).layout;
    expect(params.length).to.equal(layout.totalSize);
    const routers = layout.layers.filter((slot) => slot.name.startsWith('mor.router.'));
    expect(routers.length).to.equal(2);
    for (const slot of routers) expect([...layerView(params, slot)].every((x) => x === 0)).to.equal(true);
    const out = run(spec, params, randomIds(2, 8, base.vocab.length, 12), 2);
    expect(out.meanDepth).to.equal(2);
    expect(out.logits.every(Number.isFinite)).to.equal(true);
  });
});
