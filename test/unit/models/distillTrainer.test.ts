import { expect } from 'chai';
import { layerView } from '../../../src/core/layout/parameterLayout.ts';
import { Rng } from '../../../src/core/random.ts';
import { distillationLoss } from '../../../src/models/distillationLoss.ts';
import { createOps, defaultKernelChoice } from '../../../src/models/ops.ts';
import { createModel } from '../../../src/models/registry.ts';
import { tf } from '../../../src/models/tf.ts';
import { createTrainer } from '../../../src/models/trainer.ts';
import type { Batch, ModelSpec } from '../../../src/models/types.ts';

const STUDENT: ModelSpec = {
  kind: 'transformer',
  vocab: 'abcdef',
  dModel: 8,
  layers: 1,
  heads: 2,
  ffn: 16,
  context: 8,
};
const TEACHER: ModelSpec = { ...STUDENT, dModel: 16, layers: 2, ffn: 32 };

function tokens(n: number, t: number, seed: number): Batch {
  const rng = new Rng(seed);
  const x = new Float32Array(n * t);
  const y = new Uint8Array(n * t);
  for (let i = 0; i < x.length; i++) x[i] = rng.int(6);
  for (let i = 0; i < y.length; i++) y[i] = rng.int(6);
  return { x, y, size: n };
}

function images(n: number, seed: number): Batch {
  const rng = new Rng(seed);
  const x = new Float32Array(n * 784);
  for (let i = 0; i < x.length; i++) x[i] = rng.next();
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) y[i] = rng.int(10);
  return { x, y, size: n };
}

describe('trainer: distillation from a teacher', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  const CASES: {
    name: string;
    student: ModelSpec;
    teacher: ModelSpec;
    batch: () => Batch;
    classes: number;
  }[] = [
    {
      name: 'transformer → smaller transformer',
      student: STUDENT,
      teacher: TEACHER,
      batch: () => tokens(3, 8, 1),
      classes: 6,
    },
    {
      name: 'CNN → MLP (images)',
      student: { kind: 'mlp', hidden: [8] },
      teacher: { kind: 'cnn' },
      batch: () => images(4, 2),
      classes: 10,
    },
  ];
  for (const c of CASES) {
    it(`${c.name}: minimises α·T²·KL + (1−α)·CE against the teacher’s logits (same loss and gradient as the reference)`, async () => {
      const teacherModel = createModel(c.teacher);
      const teacherParams = teacherModel.initialParameters(2);
      const weights = { alpha: 0.6, temperature: 3 };
      const trainer = await createTrainer(c.student, {
        teacher: { spec: c.teacher, params: teacherParams, weights },
      });
      const plain = await createTrainer(c.student);
      const student = createModel(c.student);
      const params = student.initialParameters(5);
      const batch = c.batch();
      const got = await trainer.gradient(params, batch);
      const grad = got.grad.slice();

      const ops = createOps(defaultKernelChoice());
      const upload = (p: Float32Array, layout: typeof student.layout) =>
        layout.layers.map((s) => tf.tensor(layerView(p, s), s.shape, 'float32'));
      const [loss, refGrad] = tf.tidy(() => {
        const x = student.input(batch.x, batch.size);
        const y = tf.oneHot(tf.tensor1d(Int32Array.from(batch.y), 'int32'), c.classes) as tf.Tensor2D;
        const teacherLogits = teacherModel.apply(upload(teacherParams, teacherModel.layout), x, ops);
        const { value, grads } = tf.valueAndGrads((...ps: tf.Tensor[]) =>
          distillationLoss(student.apply(ps, x, ops), teacherLogits, y, weights),
        )(upload(params, student.layout));
        return [value.dataSync()[0], tf.concat(grads.map((g) => tf.reshape(g, [-1]))).dataSync()];
      });
      expect(got.loss).to.be.closeTo(loss, 1e-5);
      let worst = 0;
      for (let i = 0; i < grad.length; i++) worst = Math.max(worst, Math.abs(grad[i] - refGrad[i]));
      expect(worst).to.be.below(1e-6);
      // …and not the plain cross-entropy a trainer without a teacher minimises.
      expect(Math.abs((await plain.gradient(params, batch)).loss - got.loss)).to.be.above(1e-3);
      trainer.dispose();
      plain.dispose();
    });
  }

  it('refuses a teacher over other classes', async () => {
    const cnn = createModel({ kind: 'cnn' });
    let error: Error | undefined;
    try {
      await createTrainer(STUDENT, {
        teacher: {
          spec: { kind: 'cnn' },
          params: cnn.initialParameters(1),
          weights: { alpha: 0.5, temperature: 2 },
        },
      });
    } catch (e) {
      error = e as Error;
    }
    expect(error?.message).to.match(/the teacher predicts 10 image classes, the student 6 sequence classes/);
  });
});
