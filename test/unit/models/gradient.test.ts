import { expect } from 'chai';
import { Rng } from '../../../src/core/random.ts';
import { layerView } from '../../../src/core/layout/parameterLayout.ts';
import { createOps } from '../../../src/models/ops.ts';
import { tf } from '../../../src/models/tf.ts';
import { createTrainer, type TfTrainer } from '../../../src/models/trainer.ts';
import type { Batch, ModelSpec } from '../../../src/models/types.ts';
import { selectBackend } from '../../../src/worker/backend.ts';

function randomBatch(size: number, seed: number): Batch {
  const rng = new Rng(seed);
  const x = new Float32Array(size * 784);
  for (let i = 0; i < x.length; i++) x[i] = rng.next();
  const y = new Uint8Array(size);
  for (let i = 0; i < size; i++) y[i] = rng.int(10);
  return { x, y, size };
}

function randomTensor(shape: number[], rng: Rng): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = rng.normal();
  return tf.tensor(v, shape);
}

/** Largest |a − b| relative to the largest |b|. */
function relMaxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).to.equal(b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

/** Central finite differences of the trainer's loss at chosen coordinates vs its analytic gradient. */
async function checkFiniteDifferences(
  trainer: TfTrainer,
  params: Float32Array,
  batch: Batch,
  eps: number,
  perLayer: { largest: number; random: number },
) {
  const grad = Float32Array.from((await trainer.gradient(params, batch)).grad);
  const split = { images: batch.x, labels: batch.y, count: batch.size };
  const loss = async (p: Float32Array) => (await trainer.evaluate(p, split)).loss; // forward only
  // per layer: the largest |g| and a few random coordinates
  const rng = new Rng(11);
  const coords: number[] = [];
  for (const slot of trainer.layout.layers) {
    const view = layerView(grad, slot);
    const order = Array.from(view.keys()).sort((i, j) => Math.abs(view[j]) - Math.abs(view[i]));
    coords.push(...order.slice(0, perLayer.largest).map((i) => slot.offset + i));
    for (let k = 0; k < perLayer.random; k++) coords.push(slot.offset + rng.int(slot.size));
  }
  const p = Float32Array.from(params);
  let checked = 0;
  for (const i of coords) {
    const orig = p[i];
    p[i] = orig + eps;
    const plus = await loss(p);
    p[i] = orig - eps;
    const minus = await loss(p);
    p[i] = orig;
    const fd = (plus - minus) / (2 * eps);
    expect(grad[i], `coordinate ${i}`).to.be.closeTo(fd, 2e-3 + 2e-2 * Math.abs(fd));
    checked++;
  }
  expect(checked).to.equal(coords.length);
}

describe('models: gradients (cpu backend)', function () {
  this.timeout(30_000);

  before(async () => {
    const sel = await selectBackend('cpu');
    expect(sel.backend).to.equal('cpu');
  });

  it('tiny MLP gradient matches finite differences', async () => {
    const trainer = await createTrainer({ kind: 'mlp', hidden: [4] });
    await checkFiniteDifferences(trainer, trainer.initialParameters(1), randomBatch(3, 2), 5e-3, {
      largest: 3,
      random: 2,
    });
  });

  it('CNN gradient (custom conv and matMul gradients) matches finite differences', async () => {
    const trainer = await createTrainer(
      { kind: 'cnn' },
      { kernels: { conv: 'custom', matMul: 'explicit-transpose' } },
    );
    await checkFiniteDifferences(trainer, trainer.initialParameters(5), randomBatch(2, 6), 2e-3, {
      largest: 2,
      random: 1,
    });
  });

  it('custom conv gradient equals the cpu backend built-in conv2d gradient (input and filter)', () => {
    const rng = new Rng(3);
    const custom = createOps({ conv: 'custom', matMul: 'builtin' });
    const builtin = createOps({ conv: 'builtin', matMul: 'builtin' });
    tf.tidy(() => {
      const x = randomTensor([3, 7, 6, 2], rng) as tf.Tensor4D;
      const w = randomTensor([3, 2, 2, 4], rng) as tf.Tensor4D;
      const r = randomTensor([3, 5, 5, 4], rng);
      const loss = (ops: typeof custom, isData: boolean) => (xx: tf.Tensor, ww: tf.Tensor) =>
        tf.sum(tf.mul(ops.conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, isData), r));
      const [dxC, dwC] = tf.grads(loss(custom, false))([x, w]);
      const [dxB, dwB] = tf.grads(loss(builtin, false))([x, w]);
      expect(relMaxDiff(dxC.dataSync(), dxB.dataSync())).to.be.below(1e-5);
      expect(relMaxDiff(dwC.dataSync(), dwB.dataSync())).to.be.below(1e-5);
      // data-input variant (first layer): same filter gradient
      const [dwData] = tf.grads((ww: tf.Tensor) => loss(custom, true)(x, ww))([w]);
      expect(relMaxDiff(dwData.dataSync(), dwB.dataSync())).to.be.below(1e-5);
      // and forward values agree
      expect(
        relMaxDiff(custom.conv2d(x, w, false).dataSync(), tf.conv2d(x, w, 1, 'valid').dataSync()),
      ).to.equal(0);
    });
  });

  it('explicit-transpose matMul gradient equals the built-in matMul gradient', () => {
    const rng = new Rng(4);
    const custom = createOps({ conv: 'builtin', matMul: 'explicit-transpose' });
    tf.tidy(() => {
      const a = randomTensor([5, 7], rng) as tf.Tensor2D;
      const b = randomTensor([7, 3], rng) as tf.Tensor2D;
      const r = randomTensor([5, 3], rng);
      const [daC, dbC] = tf.grads((aa: tf.Tensor, bb: tf.Tensor) =>
        tf.sum(tf.mul(custom.matMul(aa as tf.Tensor2D, bb as tf.Tensor2D, false), r)),
      )([a, b]);
      const [daB, dbB] = tf.grads((aa: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.mul(tf.matMul(aa, bb), r)))([
        a,
        b,
      ]);
      expect(relMaxDiff(daC.dataSync(), daB.dataSync())).to.be.below(1e-5);
      expect(relMaxDiff(dbC.dataSync(), dbB.dataSync())).to.be.below(1e-5);
      const [dbData] = tf.grads((bb: tf.Tensor) =>
        tf.sum(tf.mul(custom.matMul(a, bb as tf.Tensor2D, true), r)),
      )([b]);
      expect(relMaxDiff(dbData.dataSync(), dbB.dataSync())).to.be.below(1e-5);
    });
  });

  it('whole-model gradients agree between custom and built-in kernels', async () => {
    for (const spec of [{ kind: 'cnn' }, { kind: 'mlp', hidden: [16, 8] }] as ModelSpec[]) {
      const builtin = await createTrainer(spec, { kernels: { conv: 'builtin', matMul: 'builtin' } });
      const custom = await createTrainer(spec, { kernels: { conv: 'custom', matMul: 'explicit-transpose' } });
      const params = builtin.initialParameters(9);
      const batch = randomBatch(3, 10);
      const a = await builtin.gradient(params, batch);
      const b = await custom.gradient(params, batch);
      expect(b.loss).to.be.closeTo(a.loss, 1e-5);
      expect(relMaxDiff(b.grad, a.grad), spec.kind).to.be.below(1e-5);
    }
  });
});

describe('models: trainer on wasm', function () {
  this.timeout(30_000);

  before(async () => {
    const sel = await selectBackend('wasm');
    expect(sel.backend).to.equal('wasm');
  });
  after(async () => {
    await selectBackend('cpu');
  });

  it('picks the custom conv (no Conv2DBackpropFilter on wasm) and explicit-transpose matMul', async () => {
    const trainer = await createTrainer({ kind: 'cnn' });
    expect(trainer.backend).to.equal('wasm');
    expect(trainer.kernels).to.deep.equal({ conv: 'custom', matMul: 'explicit-transpose' });
  });

  it('CNN gradient on wasm matches the cpu backend built-in gradient', async () => {
    const params = (await createTrainer({ kind: 'cnn' })).initialParameters(21);
    const batch = randomBatch(4, 22);
    const onWasm = Float32Array.from(
      (await (await createTrainer({ kind: 'cnn' })).gradient(params, batch)).grad,
    );
    await selectBackend('cpu');
    try {
      const cpu = await createTrainer({ kind: 'cnn' });
      expect(cpu.kernels.conv).to.equal('builtin');
      const ref = await cpu.gradient(params, batch);
      expect(relMaxDiff(onWasm, ref.grad)).to.be.below(1e-4);
    } finally {
      await selectBackend('wasm');
    }
  });

  it('leaks no tensors across gradient and evaluate calls, and reuses the gradient buffer', async () => {
    for (const spec of [{ kind: 'cnn' }, { kind: 'mlp', hidden: [32] }] as ModelSpec[]) {
      const trainer = await createTrainer(spec, { evalBatchSize: 5 });
      const params = trainer.initialParameters(1);
      const batch = randomBatch(8, 2);
      const split = { images: randomBatch(12, 3).x, labels: randomBatch(12, 3).y, count: 12 };
      const first = await trainer.gradient(params, batch);
      await trainer.evaluate(params, split);
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) {
        const r = await trainer.gradient(params, batch);
        expect(r.grad).to.equal(first.grad);
        await trainer.evaluate(params, split, 7);
      }
      // failing calls release what they made too
      const bad = { ...batch, y: Uint8Array.from(batch.y).fill(10, 0, 1) };
      await expectReject(trainer.gradient(params, bad), /label 10/);
      await expectReject(trainer.gradient(new Float32Array(3), batch), /expected \d+ parameters/);
      expect(tf.memory().numTensors, spec.kind).to.equal(before);
      trainer.dispose();
      await expectReject(trainer.gradient(params, batch), /after dispose/);
    }
  });

  it('evaluate: batch size does not change the result; limit is honoured; loss matches gradient()', async () => {
    const trainer = await createTrainer({ kind: 'mlp', hidden: [16] }, { evalBatchSize: 4 });
    const whole = await createTrainer({ kind: 'mlp', hidden: [16] }, { evalBatchSize: 1000 });
    const params = trainer.initialParameters(2);
    const data = randomBatch(10, 4);
    const split = { images: data.x, labels: data.y, count: 10 };
    const a = await trainer.evaluate(params, split);
    const b = await whole.evaluate(params, split);
    expect(a.accuracy).to.equal(b.accuracy);
    expect(a.loss).to.be.closeTo(b.loss, 1e-5);
    expect((await trainer.gradient(params, data)).loss).to.be.closeTo(a.loss, 1e-5);
    const first6 = await trainer.evaluate(params, split, 6);
    const ref6 = await whole.gradient(params, {
      x: data.x.subarray(0, 6 * 784),
      y: data.y.subarray(0, 6),
      size: 6,
    });
    expect(first6.loss).to.be.closeTo(ref6.loss, 1e-5);
    expect(a.accuracy * 10).to.equal(Math.round(a.accuracy * 10));
  });
});

async function expectReject(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    expect((err as Error).message).to.match(pattern);
    return;
  }
  expect.fail(`expected a rejection matching ${pattern}`);
}
