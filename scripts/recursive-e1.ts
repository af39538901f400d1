/**
 * E1 on a briefly trained teacher, and the step-0 loss of recursive students built from it.
 *
 *   node --import tsx scripts/recursive-e1.ts [--steps 150] [--out DIR]
 *
 * Trains a char-level transformer (d64 L4 H4 ffn256) on the bundled KJV excerpt for --steps Adam steps (seed 1),
 * saves it as a checkpoint in --out (for `phalanx teacher report`), then for K = 2 of 4 and each schedule/init
 * prints the largest logit difference of the full-rank SVD-LoRA student to the teacher (E1), and the held-out
 * loss at step 0 for ranks 0, 4, 8, 16 and full.
 */
import { parseArgs } from 'node:util';
import { saveCheckpoint } from '../src/checkpoint/modelCheckpoint.ts';
import { toNamedTensors } from '../src/core/layout/namedTensors.ts';
import { layerView } from '../src/core/layout/parameterLayout.ts';
import { Adam } from '../src/core/optim/adam.ts';
import { Rng } from '../src/core/random.ts';
import { BUNDLED_EXCERPT, KJV_VOCABULARY, loadText, textDataset } from '../src/data/text.ts';
import { createOps, defaultKernelChoice } from '../src/models/ops.ts';
import { recursiveParametersFromTeacher, type RecursiveSpec } from '../src/models/recursiveTransformer.ts';
import { createModel } from '../src/models/registry.ts';
import { tf } from '../src/models/tf.ts';
import { createTrainer } from '../src/models/trainer.ts';
import type { TransformerSpec } from '../src/models/types.ts';
import { selectBackend } from '../src/worker/backend.ts';

const { values } = parseArgs({
  options: { steps: { type: 'string', default: '150' }, out: { type: 'string' } },
});
const steps = Number(values.steps);
await selectBackend('auto');
const teacher: TransformerSpec = {
  kind: 'transformer',
  vocab: KJV_VOCABULARY,
  dModel: 64,
  layers: 4,
  heads: 4,
  ffn: 256,
  context: 64,
};
const data = textDataset(loadText({ source: BUNDLED_EXCERPT }), teacher.vocab, 64, { maxTest: 64 });
const trainer = await createTrainer(teacher);
const params = trainer.initialParameters(1);
const adam = new Adam(
  { kind: 'adam', lr: 3e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 },
  params.length,
);
const rng = new Rng(2);
const n = 16;
for (let step = 0; step < steps; step++) {
  const x = new Float32Array(n * 64);
  const y = new Uint8Array(n * 64);
  for (let s = 0; s < n; s++) {
    const i = rng.int(data.train.count);
    x.set(data.train.images.subarray(i * 64, (i + 1) * 64), s * 64);
    y.set(data.train.labels.subarray(i * 64, (i + 1) * 64), s * 64);
  }
  adam.step(params, (await trainer.gradient(params, { x, y, size: n })).grad);
}
const test = { images: data.test.images, labels: data.test.labels, count: data.test.count };
console.log(
  `teacher after ${steps} steps: held-out ${(await trainer.evaluate(params, test)).loss.toFixed(4)} nats/char`,
);
if (values.out !== undefined) {
  await saveCheckpoint(values.out, {
    config: { model: teacher },
    tensors: toNamedTensors(params, trainer.layout),
  });
  console.log(`saved ${values.out}`);
}

const ops = createOps(defaultKernelChoice(tf.getBackend()));
function logits(spec: TransformerSpec, p: Float32Array, ids: Float32Array, count: number): Float32Array {
  const model = createModel(spec);
  return tf.tidy(() => {
    const tensors = model.layout.layers.map((slot) => tf.tensor(layerView(p, slot), slot.shape));
    return model.apply(tensors, model.input(ids, count), ops).dataSync() as Float32Array;
  });
}
const ids = data.test.images.subarray(0, 8 * 64);
const reference = logits(teacher, params, ids, 8);
for (const schedule of ['cycle', 'middle-cycle'] as const) {
  for (const init of ['stepwise', 'average', 'lower'] as const) {
    const blocks = schedule === 'cycle' ? 2 : 3;
    const row: string[] = [];
    for (const rank of [0, 4, 8, 16, 64]) {
      const spec: RecursiveSpec = { ...teacher, recursion: { blocks, schedule, init, loraRank: rank } };
      const student = recursiveParametersFromTeacher(spec, params);
      const t = await createTrainer(spec);
      row.push(`r${rank} ${(await t.evaluate(student, test)).loss.toFixed(4)}`);
      t.dispose();
      if (rank === 64) {
        const l = logits(spec, student, ids, 8);
        let d = 0;
        for (let i = 0; i < l.length; i++) d = Math.max(d, Math.abs(l[i] - reference[i]));
        row.push(`E1 max|Δlogit| ${d.toExponential(2)}`);
      }
    }
    console.log(`K${blocks} ${schedule} ${init}: ${row.join('  ')}`);
  }
}
