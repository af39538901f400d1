import { expect } from 'chai';
import { expectLiveGradients } from '../../support/modelLogits.ts';
import { modelSchema } from '../../../src/config/jobSpec.ts';
import { layerView } from '../../../src/core/layout/parameterLayout.ts';
import { Rng } from '../../../src/core/random.ts';
import { capacityMask, loadBalancingLoss, loadImbalance, moeMlp, topKMask } from '../../../src/models/moe.ts';
import { activeParameterCount, denseEquivalent, moeParameterCount } from '../../../src/models/moeSpec.ts';
import { createOps } from '../../../src/models/ops.ts';
import { parameterCount } from '../../../src/models/parameterCount.ts';
import { createModel, modelLayout } from '../../../src/models/registry.ts';
import { tf } from '../../../src/models/tf.ts';
import { createTrainer } from '../../../src/models/trainer.ts';
import type { Batch, MoeSpec, TransformerSpec } from '../../../src/models/types.ts';
import { selectBackend } from '../../../src/worker/backend.ts';

const moe: MoeSpec = { experts: 4, topK: 2, auxLossWeight: 0.01 };
const spec: TransformerSpec & { moe: MoeSpec } = {
  kind: 'transformer',
  vocab: 'abcdefg',
  dModel: 8,
  layers: 2,
  heads: 2,
  ffn: 6,
  context: 8,
  moe,
};
const ops = createOps({ conv: 'builtin', matMul: 'builtin' });

function randomBatch(n: number, t: number, v: number, seed: number): Batch {
  const rng = new Rng(seed);
  const ids = Float32Array.from({ length: n * t + n }, () => rng.int(v));
  const x = new Float32Array(n * t);
  const y = new Uint8Array(n * t);
  for (let s = 0; s < n; s++) {
    for (let i = 0; i < t; i++) {
      x[s * t + i] = ids[s * (t + 1) + i];
      y[s * t + i] = ids[s * (t + 1) + i + 1];
    }
  }
  return { x, y, size: n };
}

describe('models: mixture-of-experts transformer', function () {
  this.timeout(60_000);

  before(async () => {
    await selectBackend('cpu');
  });

  it('counts parameters as documented: total, active, and the dense MLP width with equal active parameters', () => {
    const d = 8;
    const f = 6;
    // V·d + C·d + 2d + L·(4d² + 8d + d·E + E·(2df + f + d)), worked out: 56 + 64 + 16 + 2·(256 + 64 + 32 + 4·110)
    expect(moeParameterCount(spec)).to.equal(56 + 64 + 16 + 2 * (256 + 64 + 32 + 4 * (2 * d * f + f + d)));
    expect(moeParameterCount(spec)).to.equal(1720);
    for (const s of [
      spec,
      { ...spec, moe: { ...moe, experts: 3, topK: 1 } },
      { ...spec, layers: 1, ffn: 17, moe: { ...moe, experts: 8 } },
    ]) {
      expect(parameterCount(s), JSON.stringify(s.moe)).to.equal(modelLayout(s).totalSize);
    }
    // active: the router and k of the E experts
    expect(activeParameterCount(spec)).to.equal(136 + 2 * (256 + 64 + 32 + 2 * 110));
    const dense = denseEquivalent(spec);
    expect(dense).to.not.have.property('moe');
    // 2·8·f' + f' + 8 = 32 + 2·110 → f' = 244/17 = 14.35 → 14
    expect(dense.ffn).to.equal(14);
    expect(activeParameterCount(dense)).to.equal(parameterCount(dense));
    expect(Math.abs(activeParameterCount(dense) - activeParameterCount(spec))).to.be.at.most(
      spec.layers * (2 * d + 1) * 0.5,
    );
  });

  it('routes each token to its k most probable experts; capacity keeps the first tokens per expert', () => {
    const probs = tf.tensor2d(
      [
        [0.1, 0.5, 0.3, 0.1],
        [0.4, 0.05, 0.05, 0.5],
        [0.2, 0.25, 0.3, 0.25 - 1e-3],
        [0.7, 0.1, 0.15, 0.05],
      ],
      [4, 4],
    );
    expect(topKMask(probs, 2).arraySync()).to.deep.equal([
      [0, 1, 1, 0],
      [1, 0, 0, 1],
      [0, 1, 1, 0],
      [1, 0, 1, 0],
    ]);
    expect(topKMask(probs, 1).arraySync()).to.deep.equal([
      [0, 1, 0, 0],
      [0, 0, 0, 1],
      [0, 0, 1, 0],
      [1, 0, 0, 0],
    ]);
    // ties go to the lower expert index
    const ties = tf.tensor2d([
      [0.25, 0.25, 0.25, 0.25],
      [0.1, 0.3, 0.3, 0.3],
    ]);
    expect(topKMask(ties, 2).arraySync()).to.deep.equal([
      [1, 1, 0, 0],
      [0, 1, 1, 0],
    ]);
    // expert 2 is chosen by tokens 0, 2, 3: with capacity 2 the third (token 3) is dropped
    expect(capacityMask(topKMask(probs, 2), 2).arraySync()).to.deep.equal([
      [0, 1, 1, 0],
      [1, 0, 0, 1],
      [0, 1, 1, 0],
      [1, 0, 0, 0],
    ]);
  });

  it('the load-balancing loss is 1 at uniform routing, E·Σ f·P otherwise', () => {
    const value = (p: number[][], m: number[][], k: number) =>
      loadBalancingLoss(tf.tensor2d(p), tf.tensor2d(m), k).arraySync() as number;
    const uniform = [0.25, 0.25, 0.25, 0.25];
    // uniform router probabilities: 1 whichever experts are chosen
    expect(
      value(
        [uniform, uniform],
        [
          [1, 1, 0, 0],
          [1, 1, 0, 0],
        ],
        2,
      ),
    ).to.be.closeTo(1, 1e-6);
    // peaked probabilities but the assignments spread evenly (f_e = 1/4): 1 as well
    const peaked = [
      [0.7, 0.2, 0.05, 0.05],
      [0.05, 0.05, 0.2, 0.7],
    ];
    expect(
      value(
        peaked,
        [
          [1, 1, 0, 0],
          [0, 0, 1, 1],
        ],
        2,
      ),
    ).to.be.closeTo(1, 1e-6);
    // everything on experts 0 and 1: f = (1/2, 1/2, 0, 0), P = (0.7, 0.2, 0.05, 0.05) → 4·(0.35 + 0.1) = 1.8
    expect(
      value(
        [peaked[0], peaked[0]],
        [
          [1, 1, 0, 0],
          [1, 1, 0, 0],
        ],
        2,
      ),
    ).to.be.closeTo(1.8, 1e-6);
    expect(loadImbalance([0.25, 0.25, 0.25, 0.25])).to.equal(1);
    expect(loadImbalance([0.5, 0.5, 0, 0])).to.equal(2);
  });

  it('the MoE MLP equals Σ_e g_e · expert_e(x) with gates renormalised over the chosen experts (float64 reference)', () => {
    const n = 5;
    const d = 3;
    const f = 2;
    const e = 3;
    const k = 2;
    const rng = new Rng(7);
    const rand = (len: number) => Float64Array.from({ length: len }, () => rng.normal());
    const x = rand(n * d);
    const router = rand(d * e);
    const experts = Array.from({ length: e }, () => ({
      fcW: rand(d * f),
      fcB: rand(f),
      projW: rand(f * d),
      projB: rand(d),
    }));
    const tensors = [
      tf.tensor2d(Float32Array.from(router), [d, e]),
      ...experts.flatMap((ex) => [
        tf.tensor2d(Float32Array.from(ex.fcW), [d, f]),
        tf.tensor1d(Float32Array.from(ex.fcB)),
        tf.tensor2d(Float32Array.from(ex.projW), [f, d]),
        tf.tensor1d(Float32Array.from(ex.projB)),
      ]),
    ];
    const spec3: MoeSpec = { experts: e, topK: k, auxLossWeight: 0 };
    const got = moeMlp(tf.tensor2d(Float32Array.from(x), [n, d]), tensors, spec3, ops);
    const out = got.out.arraySync();
    const erf = (z: number) => {
      // Abramowitz–Stegun 7.1.26 is too coarse here; integrate exp(−t²) by Simpson's rule instead
      const steps = 2000;
      const h = z / steps;
      let s = 1 + Math.exp(-z * z);
      for (let i = 1; i < steps; i++) s += (i % 2 ? 4 : 2) * Math.exp(-((i * h) ** 2));
      return ((2 / Math.sqrt(Math.PI)) * s * h) / 3;
    };
    const counts = new Array<number>(e).fill(0);
    const meanProb = new Array<number>(e).fill(0);
    for (let t = 0; t < n; t++) {
      const row = x.subarray(t * d, (t + 1) * d);
      const logits = Array.from({ length: e }, (_, j) =>
        row.reduce((s, v, i) => s + v * router[i * e + j], 0),
      );
      const z = logits.map((l) => Math.exp(l - Math.max(...logits)));
      const p = z.map((v) => v / z.reduce((a, b) => a + b, 0));
      p.forEach((v, j) => (meanProb[j] += v / n));
      const chosen = [...p.keys()].sort((a, b) => p[b] - p[a]).slice(0, k);
      chosen.forEach((j) => counts[j]++);
      const norm = chosen.reduce((s, j) => s + p[j], 0);
      const want = new Array<number>(d).fill(0);
      for (const j of chosen) {
        const ex = experts[j];
        const hidden = Array.from({ length: f }, (_, c) => {
          const a = row.reduce((s, v, i) => s + v * ex.fcW[i * f + c], ex.fcB[c]);
          return 0.5 * a * (1 + erf(a / Math.SQRT2));
        });
        for (let o = 0; o < d; o++) {
          const y = hidden.reduce((s, hv, c) => s + hv * ex.projW[c * d + o], ex.projB[o]);
          want[o] += (p[j] / norm) * y;
        }
      }
      for (let o = 0; o < d; o++) expect(out[t][o], `token ${t} dim ${o}`).to.be.closeTo(want[o], 1e-4);
    }
    expect(got.load.shape).to.deep.equal([e]);
    const f64 = counts.map((c) => c / (k * n));
    (got.load.arraySync() as number[]).forEach((v, j) => expect(v).to.be.closeTo(f64[j], 1e-6));
    const aux = e * f64.reduce((s, fj, j) => s + fj * meanProb[j], 0);
    expect(got.aux.arraySync()).to.be.closeTo(aux, 1e-5);
  });

  it('gradients reach the router and every expert (finite, non-zero), and the weighted aux loss is added', async () => {
    const batch = randomBatch(4, 8, spec.vocab.length, 3);
    const model = createModel(spec);
    const params = model.initialParameters(5);
    expect(Array.from(params)).to.deep.equal(Array.from(createModel(spec).initialParameters(5)));
    expect(Array.from(params)).to.not.deep.equal(Array.from(model.initialParameters(6)));

    const withAux = await createTrainer({ ...spec, moe: { ...moe, auxLossWeight: 1 } });
    const noAux = await createTrainer({ ...spec, moe: { ...moe, auxLossWeight: 0 } });
    const { grad, loss, expertLoad } = await withAux.gradient(params, batch);
    expectLiveGradients(
      grad,
      withAux.layout.layers.filter((slot) => /mlp\.(router|experts)/.test(slot.name)),
    );
    // without the aux loss the router still learns, through the gates
    const plain = await noAux.gradient(params, batch);
    const router = withAux.layout.layers.find((s) => s.name === 'blocks.0.mlp.router.weight')!;
    expect(layerView(plain.grad, router).some((v) => v !== 0)).to.equal(true);
    // the loss difference is the mean aux over blocks, which lies in [1, E]
    expect(loss - plain.loss).to.be.within(1, moe.experts);
    expect(expertLoad).to.be.within(1, moe.experts);
    const evaluated = await noAux.evaluate(params, { images: batch.x, labels: batch.y, count: 4 });
    expect(evaluated.loss).to.be.closeTo(plain.loss, 1e-5);
    expect(evaluated.expertLoad).to.be.within(1, moe.experts);

    // distillation adds it too
    const dense: TransformerSpec = { ...spec, moe: undefined };
    const teacher = {
      spec: dense,
      params: createModel(dense).initialParameters(9),
      weights: { alpha: 0.5, temperature: 2 },
    };
    const kdAux = await createTrainer({ ...spec, moe: { ...moe, auxLossWeight: 1 } }, { teacher });
    const kdPlain = await createTrainer({ ...spec, moe: { ...moe, auxLossWeight: 0 } }, { teacher });
    const kd = (await kdAux.gradient(params, batch)).loss - (await kdPlain.gradient(params, batch)).loss;
    expect(kd).to.be.closeTo(loss - plain.loss, 1e-5);
    // a capacity limit drops (token, expert) pairs but gradients still flow
    const capped = await createTrainer({ ...spec, moe: { ...moe, capacity: 0.5 } });
    const cappedGrad = await capped.gradient(params, batch);
    expect(cappedGrad.grad.every((v) => Number.isFinite(v))).to.equal(true);
    expect(layerView(cappedGrad.grad, router).some((v) => v !== 0)).to.equal(true);
    for (const t of [withAux, noAux, kdAux, kdPlain, capped]) t.dispose();
  });

  it('the job spec accepts a moe section and names the field of a bad one', () => {
    const base = { kind: 'transformer', vocab: 'abc', dModel: 8, heads: 2, ffn: 8, context: 8 };
    const ok = modelSchema.parse({ ...base, moe: { experts: 4 } });
    expect(ok).to.deep.include({ moe: { experts: 4, topK: 2, auxLossWeight: 0.01, init: 'scratch' } });
    const bad = modelSchema.safeParse({ ...base, moe: { experts: 4, topK: 5 } });
    expect(bad.success).to.equal(false);
    expect(bad.error!.issues[0].path).to.deep.equal(['moe', 'topK']);
    const both = modelSchema.safeParse({
      ...base,
      layers: 2,
      moe: { experts: 4 },
      recursion: { blocks: 1 },
    });
    expect(both.success).to.equal(false);
    expect(both.error!.issues[0].message).to.match(/cannot be combined with recursion/);
  });
});
