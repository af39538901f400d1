import { expect } from 'chai';
import { expectLiveGradients, randomParams } from '../../support/modelLogits.ts';
import { toPyTorch } from '../../../src/checkpoint/pytorchLayout.ts';
import { modelSchema } from '../../../src/config/jobSpec.ts';
import { toNamedTensors } from '../../../src/core/layout/namedTensors.ts';
import { layerView } from '../../../src/core/layout/parameterLayout.ts';
import { Rng } from '../../../src/core/random.ts';
import {
  activeParameterCount,
  denseEquivalent,
  moeExpertGroups,
  moeLabel,
  moeParameterCount,
  moeProblems,
} from '../../../src/models/moeSpec.ts';
import { createOps } from '../../../src/models/ops.ts';
import { parameterCount } from '../../../src/models/parameterCount.ts';
import { createModel, modelLayout } from '../../../src/models/registry.ts';
import { tf } from '../../../src/models/tf.ts';
import { createTrainer } from '../../../src/models/trainer.ts';
import { tensorsPerBlock, transformerForward, transformerWeights } from '../../../src/models/transformer.ts';
import type { Batch, MoeSpec, TransformerSpec } from '../../../src/models/types.ts';
import { selectBackend } from '../../../src/worker/backend.ts';

const moe: MoeSpec = { experts: 4, topK: 2, auxLossWeight: 0.01, router: 'rmoe', routerHidden: 5 };
const spec: TransformerSpec & { moe: MoeSpec } = {
  kind: 'transformer',
  vocab: 'abcdefg',
  dModel: 8,
  layers: 3,
  heads: 2,
  ffn: 6,
  context: 8,
  moe,
};
const ops = createOps({ conv: 'builtin', matMul: 'builtin' });
const n = 2;
const idRng = new Rng(13);
const ids = Float32Array.from({ length: n * spec.context }, () => idRng.int(spec.vocab.length));

function tensorOf(params: Float32Array, name: string): Float32Array {
  const slot = modelLayout(spec).layers.find((s) => s.name === name);
  if (!slot) throw new Error(`no tensor ${name}`);
  return layerView(params, slot);
}

interface RouterPass {
  /** Per block: the MLP sub-layer's input before LN₂ [N·T·d]. */
  mids: Float32Array[];
  /** Per block: the router logits [N·T·E]. */
  logits: Float32Array[];
  /** The model's logits from the blocks chained here, and from model.apply (its own run()). */
  chained: Float32Array;
  applied: Float32Array;
}

/** The forward pass block by block, carrying the router state as run() does, and model.apply beside it. */
function routerPass(params: Float32Array): RouterPass {
  const model = createModel(spec);
  const forward = transformerForward(spec);
  const result: RouterPass = {
    mids: [],
    logits: [],
    chained: new Float32Array(),
    applied: new Float32Array(),
  };
  tf.tidy(() => {
    const p = model.layout.layers.map((slot) => tf.tensor(layerView(params, slot), slot.shape));
    const w = transformerWeights(p, spec.layers, tensorsPerBlock(spec));
    const at = forward.embed(w, model.input(ids, n), ops);
    let hidden = at.hidden;
    let routerState: tf.Tensor2D | undefined;
    w.layers.forEach((block, layer) => {
      const probe = (_: number, sublayer: string, x: tf.Tensor2D) => {
        if (sublayer === 'mlp') result.mids.push(x.dataSync() as Float32Array);
      };
      const out = forward.block(hidden, block, layer, at, ops, { probe, routerState });
      hidden = out.hidden;
      routerState = out.routerState;
      result.logits.push(out.routerLogits!.dataSync() as Float32Array);
    });
    result.chained = forward.head(w, hidden, ops).dataSync() as Float32Array;
    result.applied = model.apply(p, model.input(ids, n), ops).dataSync() as Float32Array;
  });
  return result;
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** row [a] · W [a, b] in float64. */
function vecMat(row: ArrayLike<number>, w: ArrayLike<number>, b: number): Float64Array {
  const out = new Float64Array(b);
  for (let j = 0; j < b; j++) for (let i = 0; i < row.length; i++) out[j] += row[i] * w[i * b + j];
  return out;
}

/**
 * The rmoe router in plain float64, per token: x = LN₂(mid), x' = x·W_in, the GRU step with gates r, z, n from
 * h (0 before the first block), logits = h·W_out. Returns logits per block [N·T·E].
 */
function referenceLogits(params: Float32Array, mids: Float32Array[]): Float64Array[] {
  const { dModel: d, moe: m } = spec;
  const p = m.routerHidden!;
  const e = m.experts;
  const tokens = mids[0].length / d;
  const wIh = tensorOf(params, 'router.gru.ih.weight');
  const bIh = tensorOf(params, 'router.gru.ih.bias');
  const wHh = tensorOf(params, 'router.gru.hh.weight');
  const bHh = tensorOf(params, 'router.gru.hh.bias');
  const states = Array.from({ length: tokens }, () => new Float64Array(p));
  return mids.map((mid, b) => {
    const gain = tensorOf(params, `blocks.${b}.ln2.gain`);
    const bias = tensorOf(params, `blocks.${b}.ln2.bias`);
    const wIn = tensorOf(params, `blocks.${b}.mlp.router.in.weight`);
    const wOut = tensorOf(params, `blocks.${b}.mlp.router.out.weight`);
    const logits = new Float64Array(tokens * e);
    for (let t = 0; t < tokens; t++) {
      const row = mid.subarray(t * d, (t + 1) * d);
      const mean = row.reduce((s, v) => s + v, 0) / d;
      const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / d;
      const x = Array.from(row, (v, i) => ((v - mean) / Math.sqrt(variance + 1e-5)) * gain[i] + bias[i]);
      const xp = vecMat(x, wIn, p);
      const h = states[t];
      const gi = vecMat(xp, wIh, 3 * p).map((v, j) => v + bIh[j]);
      const gh = vecMat(h, wHh, 3 * p).map((v, j) => v + bHh[j]);
      const next = new Float64Array(p);
      for (let j = 0; j < p; j++) {
        const r = sigmoid(gi[j] + gh[j]);
        const z = sigmoid(gi[p + j] + gh[p + j]);
        const nn = Math.tanh(gi[2 * p + j] + r * gh[2 * p + j]);
        next[j] = (1 - z) * nn + z * h[j];
      }
      states[t] = next;
      logits.set(vecMat(next, wOut, e), t * e);
    }
    return logits;
  });
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).to.equal(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

function randomBatch(size: number, t: number, v: number, seed: number): Batch {
  const rng = new Rng(seed);
  const x = Float32Array.from({ length: size * t }, () => rng.int(v));
  const y = Uint8Array.from({ length: size * t }, () => rng.int(v));
  return { x, y, size };
}

describe('models: the rmoe router (a GRU carried across depth)', function () {
  this.timeout(60_000);

  before(async () => {
    await selectBackend('cpu');
  });

  it("every block's router logits equal a float64 GRU reference carried from block to block", () => {
    const params = randomParams(spec, 3, 0.4);
    const pass = routerPass(params);
    const want = referenceLogits(params, pass.mids);
    expect(pass.logits).to.have.length(spec.layers);
    pass.logits.forEach((got, b) => {
      expect(maxDiff(got, want[b]), `block ${b}`).to.be.below(1e-5);
      expect(Math.max(...want[b].map(Math.abs)), 'non-trivial logits').to.be.greaterThan(0.1);
    });
    // model.apply (run()) carries the state the same way
    expect(maxDiff(pass.applied, pass.chained)).to.equal(0);
  });

  it("the state is carried: block 0's router projection changes block 1's logits through h alone", () => {
    // Identical experts in every block: the MLP output does not depend on the gates, so block 0's routing
    // cannot reach block 1 through the residual stream, only through the router state.
    const params = randomParams(spec, 4, 0.4);
    const layout = modelLayout(spec);
    for (let b = 0; b < spec.layers; b++) {
      for (const part of ['fc.weight', 'fc.bias', 'proj.weight', 'proj.bias']) {
        const first = tensorOf(params, `blocks.${b}.mlp.experts.0.${part}`);
        for (let e = 1; e < moe.experts; e++)
          tensorOf(params, `blocks.${b}.mlp.experts.${e}.${part}`).set(first);
      }
    }
    const changed = params.slice();
    const slot = layout.layers.find((s) => s.name === 'blocks.0.mlp.router.in.weight')!;
    const view = layerView(changed, slot);
    for (let i = 0; i < view.length; i++) view[i] += 0.5;
    const before = routerPass(params);
    const after = routerPass(changed);
    expect(maxDiff(before.mids[1], after.mids[1]), "block 1's input").to.be.below(1e-6);
    expect(maxDiff(before.logits[1], after.logits[1]), "block 1's router logits").to.be.greaterThan(1e-3);
    expect(maxDiff(before.logits[2], after.logits[2]), "block 2's router logits").to.be.greaterThan(1e-3);
    expect(maxDiff(before.applied, after.applied), 'the model output').to.be.below(1e-5);
  });

  it('gradients reach every rmoe tensor (finite, non-zero) from the seeded initialisation', async () => {
    const trainer = await createTrainer(spec);
    const params = createModel(spec).initialParameters(5);
    const { grad, loss } = await trainer.gradient(params, randomBatch(4, 8, spec.vocab.length, 3));
    expect(Number.isFinite(loss)).to.equal(true);
    const routerSlots = trainer.layout.layers.filter((s) => /(^|\.)router\./.test(s.name));
    expect(routerSlots.map((s) => s.name)).to.have.length(2 * spec.layers + 4);
    expectLiveGradients(grad, routerSlots);
    trainer.dispose();
  });

  it('on wasm (explicit-transpose matMul): the cpu gradient, and no leaked tensors', async () => {
    const params = randomParams(spec, 6, 0.4);
    const batch = randomBatch(2, 8, spec.vocab.length, 9);
    const cpu = await createTrainer(spec);
    const ref = Float32Array.from((await cpu.gradient(params, batch)).grad);
    cpu.dispose();
    await selectBackend('wasm');
    try {
      const wasm = await createTrainer(spec);
      expect(wasm.kernels.matMul).to.equal('explicit-transpose');
      await wasm.gradient(params, batch); // warm-up allocations
      const before = tf.memory().numTensors;
      const { grad } = await wasm.gradient(params, batch);
      expect(tf.memory().numTensors).to.equal(before);
      const scale = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(maxDiff(grad, ref) / scale).to.be.below(1e-4);
      wasm.dispose();
    } finally {
      await selectBackend('cpu');
    }
  });

  it('layout, tensor counts and parameter counts match (total, active, dense equivalent)', () => {
    const layout = modelLayout(spec);
    const names = layout.layers.map((s) => s.name);
    expect(names.slice(-6)).to.deep.equal([
      'lnf.gain',
      'lnf.bias',
      'router.gru.ih.weight',
      'router.gru.ih.bias',
      'router.gru.hh.weight',
      'router.gru.hh.bias',
    ]);
    expect(layout.layers.find((s) => s.name === 'router.gru.ih.weight')!.shape).to.deep.equal([5, 15]);
    expect(layout.layers.find((s) => s.name === 'blocks.2.mlp.router.in.weight')!.shape).to.deep.equal([
      8, 5,
    ]);
    expect(layout.layers.find((s) => s.name === 'blocks.2.mlp.router.out.weight')!.shape).to.deep.equal([
      5, 4,
    ]);
    expect(names).to.not.include('blocks.0.mlp.router.weight');
    expect(tensorsPerBlock(spec)).to.equal(10 + 4 * moe.experts);
    expect(names.length).to.equal(2 + spec.layers * tensorsPerBlock(spec) + 2 + 4);
    // 136 outside the blocks; per block 320 + router 8·5 + 5·4 + experts 4·110; the GRU 6·25 + 6·5
    expect(moeParameterCount(spec)).to.equal(136 + 3 * (320 + 60 + 440) + 180);
    expect(moeParameterCount(spec)).to.equal(layout.totalSize);
    expect(activeParameterCount(spec)).to.equal(136 + 3 * (320 + 60 + 2 * 110) + 180);
    // 2·8·f' + f' + 8 = 60 + 2·110 + 180/3 → f' = 332/17 = 19.5 → 20
    expect(denseEquivalent(spec).ffn).to.equal(20);
    for (const s of [
      spec,
      { ...spec, moe: { ...moe, routerHidden: 1 } },
      { ...spec, layers: 1, moe: { ...moe, routerHidden: undefined, experts: 3, topK: 1 } },
    ]) {
      expect(parameterCount(s), JSON.stringify(s.moe)).to.equal(modelLayout(s).totalSize);
    }
    // the default width
    const wide = { ...spec, moe: { ...moe, routerHidden: undefined } };
    expect(modelLayout(wide).layers.find((s) => s.name === 'router.gru.hh.weight')!.shape).to.deep.equal([
      32, 96,
    ]);
    expect(moeLabel(spec.moe)).to.equal(' moe top2-of-4 rmoe5');
    // In PyTorch layout the shared cell is an nn.GRUCell's weight_ih [3p, p]: rows r, z, n
    const params = randomParams(spec, 8, 0.4);
    const torch = toPyTorch('transformer', toNamedTensors(params, layout)).get('router.gru.ih.weight')!;
    expect(torch.shape).to.deep.equal([15, 5]);
    const ours = tensorOf(params, 'router.gru.ih.weight');
    expect(torch.data[(5 + 2) * 5 + 3], 'z gate, unit 2, input 3').to.equal(ours[3 * 15 + 5 + 2]);
    // per-expert aggregation groups hold the experts only
    const groups = moeExpertGroups(layout.layers);
    expect(groups).to.have.length(spec.layers * moe.experts);
    const expertSize = 2 * 8 * 6 + 6 + 8;
    expect(groups.every((g) => g.ranges.reduce((s, r) => s + r.size, 0) === expertSize)).to.equal(true);
  });

  it('initialises the router scaled: in and GRU weights ~ N(0, 1/rows), out 0.02, biases 0; seeded', () => {
    const big = { ...spec, dModel: 32, heads: 2, moe: { ...moe, routerHidden: 16 } };
    const model = createModel(big);
    const params = model.initialParameters(7);
    expect(Array.from(params)).to.deep.equal(Array.from(createModel(big).initialParameters(7)));
    const std = (name: string) => {
      const v = layerView(
        params,
        model.layout.layers.find((s) => s.name === name)!,
      );
      return Math.sqrt(v.reduce((s, x) => s + x * x, 0) / v.length);
    };
    expect(std('blocks.0.mlp.router.in.weight')).to.be.closeTo(1 / Math.sqrt(32), 0.02);
    expect(std('router.gru.ih.weight')).to.be.closeTo(1 / Math.sqrt(16), 0.02);
    expect(std('router.gru.hh.weight')).to.be.closeTo(1 / Math.sqrt(16), 0.02);
    expect(std('blocks.1.mlp.router.out.weight')).to.be.closeTo(0.02, 0.005);
    expect(std('router.gru.ih.bias')).to.equal(0);
    expect(std('router.gru.hh.bias')).to.equal(0);
  });

  it('the job spec takes router and routerHidden and names the field of a bad one', () => {
    const base = { kind: 'transformer', vocab: 'abc', dModel: 8, heads: 2, ffn: 8, context: 8 };
    const parsed = modelSchema.parse({ ...base, moe: { experts: 4, router: 'rmoe', routerHidden: 16 } });
    expect(parsed).to.deep.include({
      moe: { experts: 4, topK: 2, auxLossWeight: 0.01, init: 'scratch', router: 'rmoe', routerHidden: 16 },
    });
    // absent router: linear, and nothing added to the spec
    expect(modelSchema.parse({ ...base, moe: { experts: 4 } })).to.deep.include({
      moe: { experts: 4, topK: 2, auxLossWeight: 0.01, init: 'scratch' },
    });
    const issues = (m: object) => {
      const r = modelSchema.safeParse({ ...base, ...m });
      expect(r.success, JSON.stringify(m)).to.equal(false);
      return r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    };
    expect(issues({ moe: { experts: 4, router: 'gru' } })).to.deep.equal([
      "moe.router: must be 'linear' or 'rmoe'",
    ]);
    for (const router of [undefined, 'linear']) {
      expect(issues({ moe: { experts: 4, router, routerHidden: 16 } })).to.deep.equal([
        "moe.routerHidden: is the width of the rmoe router's GRU: set moe.router: 'rmoe' or remove routerHidden",
      ]);
    }
    expect(issues({ moe: { experts: 4, router: 'rmoe', routerHidden: 0 } })[0]).to.match(
      /^moe\.routerHidden: /,
    );
    expect(issues({ moe: { experts: 4, router: 'rmoe', routerHidden: 2.5 } })[0]).to.match(
      /^moe\.routerHidden: /,
    );
    expect(moeProblems({ ...moe, routerHidden: 2.5 })).to.deep.equal([
      'moe.routerHidden must be a positive integer, got 2.5',
    ]);
    expect(moeProblems({ ...moe, router: 'gru' as 'rmoe' })).to.include(
      "moe.router must be 'linear' or 'rmoe', got 'gru'",
    );
    // a recursive student cannot have moe, rmoe included; the message names the fix
    const recursive = issues({ layers: 2, moe: { experts: 4, router: 'rmoe' }, recursion: { blocks: 1 } });
    expect(recursive[0]).to.match(
      /cannot be combined with recursion .*remove model\.moe or model\.recursion$/,
    );
  });

  it('the linear router is unchanged: the numbers of a linear MoE model from before rmoe existed', async () => {
    // Pinned on the commit before the rmoe router (same spec as moe.test.ts, seed 5): layout, init, logits, loss.
    const linear: TransformerSpec = { ...spec, layers: 2, moe: { experts: 4, topK: 2, auxLossWeight: 0.01 } };
    for (const s of [linear, { ...linear, moe: { ...linear.moe!, router: 'linear' as const } }]) {
      const model = createModel(s);
      expect(model.layout.totalSize).to.equal(1720);
      const params = model.initialParameters(5);
      expect(params[100]).to.equal(0.0059525673277676105);
      const x = Float32Array.from({ length: 16 }, (_, i) => (i * 3) % 7);
      const out = tf.tidy(() => {
        const p = model.layout.layers.map((slot) => tf.tensor(layerView(params, slot), slot.shape));
        return model.apply(p, model.input(x, 2), ops).dataSync() as Float32Array;
      });
      expect(Array.from(out.slice(0, 5))).to.deep.equal([
        0.09860721975564957, -0.028265750035643578, -0.015349986962974072, -0.10099616646766663,
        0.015307536348700523,
      ]);
      const trainer = await createTrainer(s);
      const y = Uint8Array.from({ length: 16 }, (_, i) => (i * 5) % 7);
      const { loss, grad } = await trainer.gradient(params, { x, y, size: 2 });
      expect(loss).to.equal(1.9477910995483398);
      expect(grad.reduce((a, b) => a + Math.abs(b), 0)).to.be.closeTo(13.806404609626789, 1e-9);
      trainer.dispose();
    }
  });
});
