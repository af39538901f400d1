import { expect } from 'chai';
import { layerView } from '../../../src/core/layout/parameterLayout.ts';
import { Adam } from '../../../src/core/optim/adam.ts';
import { Rng } from '../../../src/core/random.ts';
import { createOps } from '../../../src/models/ops.ts';
import { parameterCount } from '../../../src/models/parameterCount.ts';
import { modelLayout } from '../../../src/models/registry.ts';
import { tf } from '../../../src/models/tf.ts';
import { createTrainer } from '../../../src/models/trainer.ts';
import { createTransformer, gelu } from '../../../src/models/transformer.ts';
import type { Batch, TransformerSpec } from '../../../src/models/types.ts';
import { selectBackend } from '../../../src/worker/backend.ts';

const tiny: TransformerSpec = {
  kind: 'transformer',
  vocab: 'abcde',
  dModel: 8,
  layers: 2,
  heads: 2,
  ffn: 16,
  context: 8,
};

function randomIds(n: number, t: number, v: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n * t }, () => rng.int(v));
}

/** A batch whose targets are the inputs shifted by one (the next token), as the text batcher builds them. */
function sequenceBatch(ids: Float32Array, next: Uint8Array, size: number): Batch {
  return { x: ids, y: next, size };
}

/** Random parameters with O(1) entries so every path of the network carries signal. */
function randomParams(size: number, seed: number, scale: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: size }, () => scale * rng.normal());
}

function logitsOf(spec: TransformerSpec, params: Float32Array, ids: Float32Array, n: number): Float32Array {
  const model = createTransformer(spec);
  const ops = createOps({ conv: 'builtin', matMul: 'builtin' });
  return tf.tidy(() => {
    const p = model.layout.layers.map((slot) => tf.tensor(layerView(params, slot), slot.shape));
    return model.apply(p, model.input(ids, n), ops).dataSync() as Float32Array;
  });
}

describe('models: transformer', function () {
  this.timeout(60_000);

  before(async () => {
    await selectBackend('cpu');
  });

  it('has V·d + C·d + L·(4d² + 2d·f + 9d + f) + 2d parameters, the layout size, for several shapes', () => {
    const shapes: TransformerSpec[] = [
      tiny,
      { ...tiny, layers: 1, heads: 1 },
      { kind: 'transformer', vocab: 'xyz', dModel: 12, layers: 3, heads: 4, ffn: 5, context: 3 },
    ];
    for (const spec of shapes) {
      const { dModel: d, ffn: f, layers: l, context: c } = spec;
      const expected = spec.vocab.length * d + c * d + l * (4 * d * d + 2 * d * f + 9 * d + f) + 2 * d;
      expect(parameterCount(spec), JSON.stringify(spec)).to.equal(expected);
      expect(modelLayout(spec).totalSize, JSON.stringify(spec)).to.equal(expected);
    }
  });

  it('ties input and output embeddings: one [V, d] tensor, whose gradient also comes from the output side', async () => {
    const layout = modelLayout(tiny);
    const v = tiny.vocab.length;
    const withVocabAxis = layout.layers.filter((s) => s.shape.includes(v));
    expect(withVocabAxis.map((s) => s.name)).to.deep.equal(['embed.weight']);
    // Inputs use tokens 0..2 only, targets 3 and 4: rows 3 and 4 of E get a gradient only through the output.
    const trainer = await createTrainer(tiny);
    const params = trainer.initialParameters(3);
    const n = 2;
    const t = 4;
    const ids = Float32Array.from({ length: n * t }, (_, i) => i % 3);
    const next = Uint8Array.from({ length: n * t }, (_, i) => 3 + (i % 2));
    const { grad } = await trainer.gradient(params, sequenceBatch(ids, next, n));
    const embedGrad = layerView(grad, layout.layers[0]);
    const d = tiny.dModel;
    const row = (r: number) => Math.max(...Array.from(embedGrad.subarray(r * d, (r + 1) * d), Math.abs));
    expect(row(3)).to.be.above(1e-4);
    expect(row(4)).to.be.above(1e-4);
  });

  it('is causal: changing a later token changes no earlier logit, and does change its own position', () => {
    const spec: TransformerSpec = { ...tiny, vocab: 'abcdefg', dModel: 16, heads: 4, context: 8 };
    const params = randomParams(modelLayout(spec).totalSize, 5, 0.5);
    const t = 8;
    const v = spec.vocab.length;
    const a = randomIds(1, t, v, 6);
    for (const j of [1, 4, 7]) {
      const b = Float32Array.from(a);
      b[j] = (a[j] + 1) % v;
      const la = logitsOf(spec, params, a, 1);
      const lb = logitsOf(spec, params, b, 1);
      let before = 0;
      for (let i = 0; i < j * v; i++) before = Math.max(before, Math.abs(la[i] - lb[i]));
      let at = 0;
      for (let i = j * v; i < (j + 1) * v; i++) at = Math.max(at, Math.abs(la[i] - lb[i]));
      expect(before, `positions before ${j}`).to.equal(0);
      expect(at, `position ${j}`).to.be.above(1e-3);
    }
  });

  for (const matMul of ['builtin', 'explicit-transpose'] as const) {
    it(`gradient matches central finite differences on a tiny model (${matMul} matMul)`, async () => {
      const trainer = await createTrainer(tiny, { kernels: { matMul } });
      const params = randomParams(trainer.layout.totalSize, 7, 0.4);
      const n = 3;
      const t = 5;
      const ids = randomIds(n, t, 5, 8);
      const next = Uint8Array.from(randomIds(n, t, 5, 9));
      const grad = Float32Array.from((await trainer.gradient(params, sequenceBatch(ids, next, n))).grad);
      const split = { images: ids, labels: next, count: n };
      const loss = async (p: Float32Array) => (await trainer.evaluate(p, split)).loss;
      const rng = new Rng(10);
      const eps = 1e-2;
      let checked = 0;
      for (const slot of trainer.layout.layers) {
        const view = layerView(grad, slot);
        const largest = Array.from(view.keys()).sort((i, j) => Math.abs(view[j]) - Math.abs(view[i]))[0];
        for (const k of [largest, rng.int(slot.size)]) {
          const i = slot.offset + k;
          const p = Float32Array.from(params);
          p[i] = params[i] + eps;
          const up = await loss(p);
          p[i] = params[i] - eps;
          const down = await loss(p);
          const fd = (up - down) / (2 * eps);
          expect(Math.abs(fd - grad[i]), `${slot.name}[${k}]: fd ${fd} vs ${grad[i]}`).to.be.below(
            2e-3 + 0.03 * Math.abs(fd),
          );
          checked++;
        }
      }
      expect(checked).to.equal(2 * trainer.layout.layers.length);
    });
  }

  it('starts near the uniform loss ln V and overfits a tiny text within a few dozen steps', async () => {
    const text = 'the cat sat on the mat. the dog sat on the log. ';
    const vocab = [...new Set(text)].sort().join('');
    const spec: TransformerSpec = {
      kind: 'transformer',
      vocab,
      dModel: 32,
      layers: 1,
      heads: 2,
      ffn: 64,
      context: 16,
    };
    const trainer = await createTrainer(spec);
    const ids = [...text].map((c) => vocab.indexOf(c));
    const t = 16;
    const n = 4;
    const x = new Float32Array(n * t);
    const y = new Uint8Array(n * t);
    for (let s = 0; s < n; s++) {
      for (let i = 0; i < t; i++) {
        x[s * t + i] = ids[(s * 11 + i) % ids.length];
        y[s * t + i] = ids[(s * 11 + i + 1) % ids.length];
      }
    }
    const batch = sequenceBatch(x, y, n);
    const params = trainer.initialParameters(1);
    const lnV = Math.log(vocab.length);
    const first = (await trainer.gradient(params, batch)).loss;
    expect(Math.abs(first - lnV), `init loss ${first} vs ln V ${lnV}`).to.be.below(0.05 * lnV);
    const adam = new Adam(
      { kind: 'adam', lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 },
      params.length,
    );
    let last = first;
    for (let step = 0; step < 40; step++) {
      const { grad, loss } = await trainer.gradient(params, batch);
      last = loss;
      adam.step(params, grad);
    }
    const evaluated = await trainer.evaluate(params, { images: x, labels: y, count: n });
    expect(last, `loss after 40 steps (ln V = ${lnV})`).to.be.below(0.25 * lnV);
    expect(evaluated.accuracy).to.be.above(0.8);
  });

  it('on wasm: same gradient and evaluation as the cpu backend, and no leaked tensors', async () => {
    const n = 2;
    const t = 6;
    const ids = randomIds(n, t, 5, 12);
    const next = Uint8Array.from(randomIds(n, t, 5, 13));
    const cpu = await createTrainer(tiny);
    const params = randomParams(cpu.layout.totalSize, 14, 0.3);
    const ref = Float32Array.from((await cpu.gradient(params, sequenceBatch(ids, next, n))).grad);
    const refEval = await cpu.evaluate(params, { images: ids, labels: next, count: n });
    await selectBackend('wasm');
    try {
      const wasm = await createTrainer(tiny);
      expect(wasm.kernels.matMul).to.equal('explicit-transpose');
      await wasm.gradient(params, sequenceBatch(ids, next, n)); // warm-up allocations
      const before = tf.memory().numTensors;
      const { grad } = await wasm.gradient(params, sequenceBatch(ids, next, n));
      const ev = await wasm.evaluate(params, { images: ids, labels: next, count: n });
      expect(tf.memory().numTensors).to.equal(before);
      let diff = 0;
      let scale = 0;
      for (let i = 0; i < grad.length; i++) {
        diff = Math.max(diff, Math.abs(grad[i] - ref[i]));
        scale = Math.max(scale, Math.abs(ref[i]));
      }
      expect(diff / scale).to.be.below(1e-4);
      expect(ev.loss).to.be.closeTo(refEval.loss, 1e-5);
      expect(ev.accuracy).to.equal(refEval.accuracy);
    } finally {
      await selectBackend('cpu');
    }
  });

  it('uses the exact GELU x·Φ(x)', () => {
    const out = tf.tidy(() => gelu(tf.tensor1d([-2, -0.5, 0, 1, 3])).dataSync());
    // x·Φ(x) with Φ the standard normal CDF
    const expected = [-0.0455002639, -0.1542687715, 0, 0.8413447461, 2.9959507737];
    out.forEach((v, i) => expect(v).to.be.closeTo(expected[i], 1e-6));
  });

  it('refuses specs it cannot build, naming the field', () => {
    expect(() => createTransformer({ ...tiny, heads: 3 })).to.throw(
      /dModel \(8\) must be a multiple of heads \(3\)/,
    );
    expect(() => createTransformer({ ...tiny, vocab: 'ba' })).to.throw(/vocab must be sorted distinct/);
    const model = createTransformer(tiny);
    expect(() => model.input(new Float32Array(2 * 9), 2)).to.throw(/exceed the context 8/);
    expect(() => model.input(Float32Array.from([0, 7]), 1)).to.throw(/outside the vocabulary/);
  });
});
