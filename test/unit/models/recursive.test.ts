import { expect } from 'chai';
import { logits, maxDiff } from '../../support/modelLogits.ts';
import { fromPyTorch, toPyTorch } from '../../../src/checkpoint/pytorchLayout.ts';
import { modelSchema } from '../../../src/config/jobSpec.ts';
import { fromNamedTensors, toNamedTensors } from '../../../src/core/layout/namedTensors.ts';
import { layerView } from '../../../src/core/layout/parameterLayout.ts';
import { Adam } from '../../../src/core/optim/adam.ts';
import { Rng } from '../../../src/core/random.ts';
import { parameterCount } from '../../../src/models/parameterCount.ts';
import { recursiveFromTeacher, recursionProblems, tyingPlan } from '../../../src/models/recursion.ts';
import {
  createRecursiveTransformer,
  recursiveParametersFromTeacher,
  type RecursiveSpec,
} from '../../../src/models/recursiveTransformer.ts';
import { modelLayout } from '../../../src/models/registry.ts';
import { createTrainer } from '../../../src/models/trainer.ts';
import { createTransformer } from '../../../src/models/transformer.ts';
import type { RecursionSpec, TransformerSpec } from '../../../src/models/types.ts';
import { selectBackend } from '../../../src/worker/backend.ts';

const teacherSpec: TransformerSpec = {
  kind: 'transformer',
  vocab: 'abcdefg',
  dModel: 8,
  layers: 4,
  heads: 2,
  ffn: 12,
  context: 8,
};

function student(recursion: Partial<RecursionSpec>, base: TransformerSpec = teacherSpec): RecursiveSpec {
  return {
    ...base,
    recursion: { blocks: 2, schedule: 'cycle', init: 'stepwise', loraRank: 0, ...recursion },
  };
}

/** Random teacher parameters with O(1) entries so every layer matters, and LayerNorm gains around 1. */
function randomTeacher(spec: TransformerSpec, seed: number): Float32Array {
  const model = createTransformer(spec);
  const rng = new Rng(seed);
  const params = new Float32Array(model.layout.totalSize);
  for (const slot of model.layout.layers) {
    const view = layerView(params, slot);
    const gain = slot.name.endsWith('.gain');
    for (let i = 0; i < view.length; i++) view[i] = (gain ? 1 : 0) + 0.3 * rng.normal();
  }
  return params;
}

function randomIds(n: number, t: number, v: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n * t }, () => rng.int(v));
}

describe('models: recursive transformer (Relaxed Recursive Transformer)', function () {
  this.timeout(120_000);

  before(async () => {
    await selectBackend('cpu');
  });

  it('ties layers to blocks as documented: cycle ℓ mod K, middle-cycle first/last unique', () => {
    expect(tyingPlan(4, 2, 'cycle').blockOf).to.deep.equal([0, 1, 0, 1]);
    expect(tyingPlan(5, 2, 'cycle').blockOf).to.deep.equal([0, 1, 0, 1, 0]);
    expect(tyingPlan(4, 4, 'cycle').tied).to.deep.equal([false, false, false, false]);
    const mid = tyingPlan(6, 4, 'middle-cycle');
    expect(mid.blockOf).to.deep.equal([0, 1, 2, 1, 2, 3]);
    expect(mid.tied).to.deep.equal([false, true, true, true, true, false]);
    expect(tyingPlan(5, 3, 'middle-cycle').blockOf).to.deep.equal([0, 1, 1, 1, 2]);
    expect(
      recursionProblems(4, { blocks: 2, schedule: 'middle-cycle', init: 'lower', loraRank: 0 })[0],
    ).to.match(/recursion\.blocks must be at least 3 for schedule middle-cycle/);
    expect(recursionProblems(4, { blocks: 5, schedule: 'cycle', init: 'lower', loraRank: 0 })[0]).to.match(
      /recursion\.blocks must be an integer from 1 to layers \(4\), got 5/,
    );
    expect(recursionProblems(4, { blocks: 2, schedule: 'cycle', init: 'lower', loraRank: -1 })[0]).to.match(
      /recursion\.loraRank/,
    );
  });

  it('initialises each shared block as its definition says (stepwise, average, lower; cycle and middle-cycle)', () => {
    const deep: TransformerSpec = { ...teacherSpec, layers: 6 };
    const teacher = toNamedTensors(randomTeacher(deep, 1), createTransformer(deep).layout);
    const layer = (l: number, name: string) => teacher.get(`blocks.${l}.${name}`)!.data;
    // block → the teacher layers it must equal the mean of, worked out by hand from the definitions
    const cases: [Partial<RecursionSpec>, number[][]][] = [
      [{ blocks: 2, init: 'stepwise' }, [[0], [3]]], // ⌊k·6/2⌋
      [{ blocks: 3, init: 'stepwise' }, [[0], [2], [4]]], // ⌊k·6/3⌋
      // ⌊k·6/4⌋ = 0, 1 for the tied blocks 0, 1; blocks 2 and 3 run only at depths 2 and 3, so start as them
      [{ blocks: 4, init: 'stepwise' }, [[0], [1], [2], [3]]],
      [{ blocks: 2, init: 'lower' }, [[0], [1]]],
      [
        { blocks: 2, init: 'average' },
        [
          [0, 2, 4],
          [1, 3, 5],
        ],
      ],
      [{ blocks: 4, schedule: 'middle-cycle', init: 'stepwise' }, [[0], [1], [3], [5]]], // 1 + ⌊(k−1)·4/2⌋
      [{ blocks: 4, schedule: 'middle-cycle', init: 'lower' }, [[0], [1], [2], [5]]],
      [{ blocks: 4, schedule: 'middle-cycle', init: 'average' }, [[0], [1, 3], [2, 4], [5]]],
    ];
    for (const [recursion, sources] of cases) {
      const named = recursiveFromTeacher(student(recursion, deep), teacher);
      sources.forEach((src, k) => {
        for (const name of ['attn.qkv.weight', 'mlp.proj.bias', 'ln2.gain']) {
          const got = named.get(`blocks.${k}.${name}`)!.data;
          const want = Float32Array.from(
            got,
            (_, i) => src.reduce((s, l) => s + layer(l, name)[i], 0) / src.length,
          );
          expect(maxDiff(got, want), `${JSON.stringify(recursion)} block ${k} ${name}`).to.be.below(1e-6);
        }
      });
      expect(named.get('embed.weight')!.data).to.deep.equal(teacher.get('embed.weight')!.data);
      expect(named.get('lnf.gain')!.data).to.deep.equal(teacher.get('lnf.gain')!.data);
    }
  });

  it("E1: a full-rank SVD-LoRA student reproduces the teacher's logits within 1e-4 (every init, both schedules)", () => {
    const deep: TransformerSpec = { ...teacherSpec, layers: 5 };
    const teacherParams = randomTeacher(deep, 2);
    const n = 2;
    const t = 8;
    const ids = randomIds(n, t, deep.vocab.length, 3);
    const reference = logits(deep, teacherParams, ids, n);
    for (const recursion of [
      { blocks: 2, init: 'stepwise' },
      { blocks: 2, init: 'average' },
      { blocks: 1, init: 'lower' },
      { blocks: 3, schedule: 'middle-cycle', init: 'average' },
    ] as Partial<RecursionSpec>[]) {
      const spec = student({ ...recursion, loraRank: deep.dModel }, deep); // d ≤ ffn: full rank everywhere
      const params = recursiveParametersFromTeacher(spec, teacherParams);
      const diff = maxDiff(logits(spec, params, ids, n), reference);
      expect(diff, JSON.stringify(recursion)).to.be.below(1e-4);
      // and the tying is real: without the relaxations the student is a different function
      const pure = student({ ...recursion, loraRank: 0 }, deep);
      const pureDiff = maxDiff(
        logits(pure, recursiveParametersFromTeacher(pure, teacherParams), ids, n),
        reference,
      );
      expect(pureDiff, `rank 0 ${JSON.stringify(recursion)}`).to.be.above(1e-2);
    }
  });

  it('rank 0 is the purely recursive model: the teacher-shaped transformer with layer ℓ := block(ℓ)', () => {
    const spec = student(
      { blocks: 3, schedule: 'middle-cycle', init: 'average' },
      { ...teacherSpec, layers: 5 },
    );
    const model = createRecursiveTransformer(spec);
    expect(
      model.layout.layers.some((s) => s.name.startsWith('lora.') || s.name.startsWith('relax.')),
    ).to.equal(false);
    const params = randomTeacher({ ...teacherSpec, layers: 3 }, 4); // same layout as 3 blocks
    expect(params.length).to.equal(model.layout.totalSize);
    const plan = tyingPlan(5, 3, 'middle-cycle');
    const named = toNamedTensors(params, model.layout);
    const unrolled: TransformerSpec = { ...teacherSpec, layers: 5 };
    const expanded = new Map();
    for (const [name, tensor] of named) {
      const m = /^blocks\.(\d+)\.(.*)$/.exec(name);
      if (m === null) {
        expanded.set(name, tensor);
        continue;
      }
      plan.blockOf.forEach((k, l) => {
        if (k === Number(m[1])) expanded.set(`blocks.${l}.${m[2]}`, tensor);
      });
    }
    const unrolledParams = fromNamedTensors(expanded, createTransformer(unrolled).layout);
    const ids = randomIds(2, 6, 7, 5);
    expect(maxDiff(logits(spec, params, ids, 2), logits(unrolled, unrolledParams, ids, 2))).to.be.below(1e-6);
  });

  it("counts parameters exactly (layout = formula), and K = 2 of 4 has about half the teacher's", () => {
    const big: TransformerSpec = {
      ...teacherSpec,
      dModel: 64,
      heads: 4,
      ffn: 256,
      context: 64,
      vocab: 'abcdefghijklmnopqrstuvwxyz',
    };
    for (const recursion of [
      { blocks: 2 },
      { blocks: 2, loraRank: 4 },
      { blocks: 1, loraRank: 100 },
      { blocks: 3, schedule: 'middle-cycle', loraRank: 8 },
    ] as Partial<RecursionSpec>[]) {
      for (const base of [teacherSpec, big, { ...big, layers: 6 }]) {
        if (recursion.schedule === 'middle-cycle' && base.layers < 3) continue;
        const spec = student(recursion, base);
        expect(modelLayout(spec).totalSize, JSON.stringify(spec)).to.equal(parameterCount(spec));
      }
    }
    const ratio = parameterCount(student({ blocks: 2 }, big)) / parameterCount(big);
    expect(ratio).to.be.within(0.45, 0.55);
    const withLora = parameterCount(student({ blocks: 2, loraRank: 4 }, big)) / parameterCount(big);
    expect(withLora).to.be.within(ratio, 0.65);
  });

  it('trains through the ordinary trainer: gradients match finite differences and the loss falls', async () => {
    const spec = student({ blocks: 2, loraRank: 2, init: 'average' });
    const trainer = await createTrainer(spec);
    const params = recursiveParametersFromTeacher(spec, randomTeacher(teacherSpec, 6));
    const n = 3;
    const t = 6;
    const ids = randomIds(n, t, 7, 7);
    const next = Uint8Array.from(randomIds(n, t, 7, 8));
    const batch = { x: ids, y: next, size: n };
    const grad = Float32Array.from((await trainer.gradient(params, batch)).grad);
    const split = { images: ids, labels: next, count: n };
    const eps = 1e-2;
    for (const name of [
      'blocks.1.attn.qkv.weight',
      'lora.2.mlp.fc.a',
      'lora.3.attn.proj.b',
      'relax.0.ln1.gain',
    ]) {
      const slot = trainer.layout.layers.find((s) => s.name === name)!;
      const view = layerView(grad, slot);
      const k = Array.from(view.keys()).sort((i, j) => Math.abs(view[j]) - Math.abs(view[i]))[0];
      const i = slot.offset + k;
      const p = Float32Array.from(params);
      p[i] = params[i] + eps;
      const up = (await trainer.evaluate(p, split)).loss;
      p[i] = params[i] - eps;
      const down = (await trainer.evaluate(p, split)).loss;
      const fd = (up - down) / (2 * eps);
      expect(Math.abs(fd), `${name} gradient is not zero`).to.be.above(1e-4);
      expect(Math.abs(fd - grad[i]), `${name}[${k}] fd ${fd} vs ${grad[i]}`).to.be.below(
        2e-3 + 0.03 * Math.abs(fd),
      );
    }
    const adam = new Adam(
      { kind: 'adam', lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 },
      params.length,
    );
    const first = (await trainer.gradient(params, batch)).loss;
    let last = first;
    for (let step = 0; step < 15; step++) {
      const r = await trainer.gradient(params, batch);
      last = r.loss;
      adam.step(params, r.grad);
    }
    expect(last, `loss ${first} → ${last}`).to.be.below(0.8 * first);
    trainer.dispose();
  });

  it('scratch initialisation: every tied layer starts as its block (LoRA b = 0, relaxations 0)', () => {
    const spec = student({ blocks: 2, loraRank: 3 });
    const model = createRecursiveTransformer(spec);
    const params = model.initialParameters(9);
    const named = toNamedTensors(params, model.layout);
    expect(Math.max(...named.get('lora.1.mlp.fc.a')!.data.map(Math.abs))).to.be.above(0);
    expect(Math.max(...named.get('lora.1.mlp.fc.b')!.data.map(Math.abs))).to.equal(0);
    const pure = student({ blocks: 2, loraRank: 0 });
    const pureParams = fromNamedTensors(named, createRecursiveTransformer(pure).layout);
    const ids = randomIds(1, 5, 7, 10);
    expect(maxDiff(logits(spec, params, ids, 1), logits(pure, pureParams, ids, 1))).to.equal(0);
    expect(params).to.deep.equal(model.initialParameters(9));
  });

  it('PyTorch layout: LoRA a [in, r], b [r, out] export as lora_A [r, in], lora_B [out, r] and import back', () => {
    const spec = student({ blocks: 2, loraRank: 3 });
    const model = createRecursiveTransformer(spec);
    const named = toNamedTensors(model.initialParameters(11), model.layout);
    const torch = toPyTorch('transformer', named);
    expect(torch.get('lora.2.mlp.fc.lora_A')!.shape).to.deep.equal([3, 8]);
    expect(torch.get('lora.2.mlp.fc.lora_B')!.shape).to.deep.equal([12, 3]);
    const a = named.get('lora.2.mlp.fc.a')!.data; // [8, 3]
    expect(torch.get('lora.2.mlp.fc.lora_A')!.data[1 * 8 + 5]).to.equal(a[5 * 3 + 1]);
    const back = fromPyTorch('transformer', model.layout, torch);
    expect(fromNamedTensors(back, model.layout)).to.deep.equal(fromNamedTensors(named, model.layout));
  });

  it('job specs: recursion is validated at the edge with the field named', () => {
    const ok = modelSchema.parse({ kind: 'transformer', layers: 4, recursion: { blocks: 2, loraRank: 8 } });
    expect(ok).to.deep.include({
      recursion: { blocks: 2, schedule: 'cycle', init: 'stepwise', loraRank: 8 },
    });
    const bad = modelSchema.safeParse({
      kind: 'transformer',
      layers: 4,
      recursion: { blocks: 2, schedule: 'middle-cycle' },
    });
    expect(bad.success).to.equal(false);
    expect(bad.error!.issues[0].path).to.deep.equal(['recursion', 'blocks']);
    expect(bad.error!.issues[0].message).to.match(/at least 3 for schedule middle-cycle/);
    const unknown = modelSchema.safeParse({ kind: 'transformer', recursion: { blocks: 1, rank: 8 } });
    expect(unknown.success).to.equal(false);
  });
});
