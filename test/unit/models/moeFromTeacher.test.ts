import { expect } from 'chai';
import { logits, maxDiff, randomParams } from '../../support/modelLogits.ts';
import { JobSpecError, validateJobSpec } from '../../../src/config/jobSpec.ts';
import { toNamedTensors, type NamedTensors } from '../../../src/core/layout/namedTensors.ts';
import { Rng } from '../../../src/core/random.ts';
import {
  moeParametersFromTeacher,
  moeTeacherMismatch,
  type MoeStudentSpec,
} from '../../../src/models/moeFromTeacher.ts';
import { createModel, modelLayout } from '../../../src/models/registry.ts';
import {
  initialParametersLine,
  jobInitialParameters,
  startsFromTeacher,
} from '../../../src/models/studentInit.ts';
import { teacherProblems } from '../../../src/models/teacherCompatibility.ts';
import type { MoeSpec, TransformerSpec } from '../../../src/models/types.ts';
import { selectBackend } from '../../../src/worker/backend.ts';

const TEACHER: TransformerSpec = {
  kind: 'transformer',
  vocab: 'abcdefg',
  dModel: 8,
  layers: 2,
  heads: 2,
  ffn: 12,
  context: 8,
};

function moeStudent(moe: Partial<MoeSpec>, ffn = TEACHER.ffn): MoeStudentSpec {
  return {
    ...TEACHER,
    ffn,
    moe: { experts: 4, topK: 2, auxLossWeight: 0.01, init: 'upcycle', ...moe },
  } as MoeStudentSpec;
}

/** A dense MLP on x [d] in plain JS: act(x·W1 + b1)·W2 + b2 (any per-unit activation keeps the split identity). */
function mlp(t: NamedTensors, prefix: string, x: Float32Array): Float64Array {
  const w1 = t.get(`${prefix}.fc.weight`)!;
  const b1 = t.get(`${prefix}.fc.bias`)!.data;
  const w2 = t.get(`${prefix}.proj.weight`)!.data;
  const b2 = t.get(`${prefix}.proj.bias`)!.data;
  const [d, f] = w1.shape;
  const out = Float64Array.from(b2);
  for (let j = 0; j < f; j++) {
    let h = b1[j];
    for (let i = 0; i < d; i++) h += x[i] * w1.data[i * f + j];
    const a = 0.5 * h * (1 + Math.tanh(0.7978845608 * (h + 0.044715 * h ** 3)));
    for (let o = 0; o < d; o++) out[o] += a * w2[j * d + o];
  }
  return out;
}

describe('models: MoE students from a dense teacher (moeFromTeacher)', function () {
  this.timeout(60_000);
  before(async () => {
    await selectBackend('cpu');
  });

  const teacherParams = randomParams(TEACHER, 7);
  const rng = new Rng(11);
  const n = 3;
  const ids = Float32Array.from({ length: n * TEACHER.context }, () => rng.int(TEACHER.vocab.length));

  it("upcycle: every expert is the teacher's MLP, so the student's logits are the teacher's (top-1 and top-2)", () => {
    const reference = logits(TEACHER, teacherParams, ids, n);
    for (const topK of [1, 2]) {
      const spec = moeStudent({ topK });
      const trainer = createModel(spec);
      const start = jobInitialParameters(spec, 3, trainer, { spec: TEACHER, params: teacherParams });
      expect(start.from).to.equal('teacher');
      expect(maxDiff(logits(spec, start.params, ids, n), reference), `top${topK}`).to.be.below(1e-5);
      // The router is the seed's; the seeded student itself computes something else.
      const seeded = trainer.initialParameters(3);
      const s = toNamedTensors(start.params, trainer.layout);
      const z = toNamedTensors(seeded, trainer.layout);
      expect(
        maxDiff(s.get('blocks.1.mlp.router.weight')!.data, z.get('blocks.1.mlp.router.weight')!.data),
      ).to.equal(0);
      expect(maxDiff(logits(spec, seeded, ids, n), reference)).to.be.greaterThan(1e-2);
      expect(initialParametersLine(spec, start.from, TEACHER)).to.equal(
        'student starts from its teacher: 4 experts upcycled from its FFN',
      );
    }
  });

  it('split: expert e holds hidden units [e·f, (e+1)·f) and proj bias / E, so the experts sum to the FFN', () => {
    const spec = moeStudent({ init: 'split' }, 3);
    const wide = { ...TEACHER, ffn: 12 };
    expect(moeTeacherMismatch(spec, wide)).to.equal(undefined);
    const layout = modelLayout(spec);
    const seeded = createModel(spec).initialParameters(5);
    const params = moeParametersFromTeacher(spec, layout, seeded, modelLayout(wide), teacherParams);
    const s = toNamedTensors(params, layout);
    const t = toNamedTensors(teacherParams, modelLayout(wide));
    for (const [name, tensor] of s) {
      if (name.includes('.mlp.')) continue;
      expect(maxDiff(tensor.data, t.get(name)!.data), name).to.equal(0);
    }
    const xr = new Rng(2);
    for (let sample = 0; sample < 4; sample++) {
      const x = Float32Array.from({ length: TEACHER.dModel }, () => xr.normal());
      for (const b of [0, 1]) {
        const dense = mlp(t, `blocks.${b}.mlp`, x);
        const sum = new Float64Array(TEACHER.dModel);
        for (let e = 0; e < 4; e++)
          mlp(s, `blocks.${b}.mlp.experts.${e}`, x).forEach((v, o) => (sum[o] += v));
        const diff = Math.max(...dense.map((v, o) => Math.abs(v - sum[o])));
        expect(diff, `block ${b}`).to.be.below(1e-5);
        expect(Math.max(...dense.map(Math.abs)), 'a non-trivial FFN output').to.be.greaterThan(0.1);
      }
    }
    expect(initialParametersLine(spec, 'teacher', wide)).to.equal(
      'student starts from its teacher: 4 experts split from its FFN',
    );
  });

  it("upcycle with the rmoe router: the teacher's function exactly at step 0, the router tensors the seed's", () => {
    const reference = logits(TEACHER, teacherParams, ids, n);
    for (const topK of [1, 2]) {
      const spec = moeStudent({ topK, router: 'rmoe', routerHidden: 4 });
      const model = createModel(spec);
      const start = jobInitialParameters(spec, 3, model, { spec: TEACHER, params: teacherParams });
      expect(start.from).to.equal('teacher');
      expect(maxDiff(logits(spec, start.params, ids, n), reference), `top${topK}`).to.be.below(1e-5);
      const s = toNamedTensors(start.params, model.layout);
      const z = toNamedTensors(model.initialParameters(3), model.layout);
      const router = [...s.keys()].filter((name) => /(^|\.)router\./.test(name));
      expect(router).to.have.length(2 * TEACHER.layers + 4);
      for (const name of router) expect(maxDiff(s.get(name)!.data, z.get(name)!.data), name).to.equal(0);
    }
    // split starts too (its experts differ, so only the layout is checked here)
    const split = moeStudent({ init: 'split', router: 'rmoe' }, 3);
    const start = jobInitialParameters(split, 3, createModel(split), {
      spec: TEACHER,
      params: teacherParams,
    });
    expect(start.from).to.equal('teacher');
    expect(start.params.length).to.equal(modelLayout(split).totalSize);
  });

  it('a teacher of another shape, or scratch, starts from the seed and says why; admission refuses the misfit', () => {
    const upcycle = moeStudent({});
    const split = moeStudent({ init: 'split' }, 3);
    expect(moeTeacherMismatch(split, TEACHER)).to.equal(undefined);
    expect(moeTeacherMismatch(split, { ...TEACHER, ffn: 16 })).to.equal(
      "moe.init split needs a teacher ffn of 4 × 3 = 12, the teacher's is 16",
    );
    expect(moeTeacherMismatch(upcycle, { ...TEACHER, ffn: 16 })).to.equal(
      "moe.init upcycle needs a teacher ffn of ffn 12, the teacher's is 16",
    );
    expect(moeTeacherMismatch(upcycle, { ...TEACHER, dModel: 16 })).to.match(/dModel 16 differs .* 8/);
    expect(moeTeacherMismatch(upcycle, upcycle)).to.equal('the teacher is not a plain dense transformer');
    expect(moeTeacherMismatch(moeStudent({ init: 'scratch' }), TEACHER)).to.equal('moe.init scratch');
    for (const teacher of [
      { ...TEACHER, ffn: 16 },
      { ...TEACHER, heads: 4 },
      { ...TEACHER, layers: 3 },
    ]) {
      expect(startsFromTeacher(upcycle, teacher)).to.equal(false);
      const trainer = createModel(upcycle);
      const start = jobInitialParameters(upcycle, 3, trainer, { spec: teacher, params: new Float32Array(1) });
      expect(start.from).to.equal('seed');
      expect(maxDiff(start.params, trainer.initialParameters(3))).to.equal(0);
    }
    const scratch = moeStudent({ init: 'scratch' });
    expect(
      jobInitialParameters(scratch, 3, createModel(scratch), { spec: TEACHER, params: teacherParams }).from,
    ).to.equal('seed');
    expect(initialParametersLine(scratch, 'seed', TEACHER)).to.equal(undefined);
    expect(initialParametersLine(upcycle, 'seed', { ...TEACHER, ffn: 16 })).to.equal(
      "student starts from its seed (moe.init upcycle needs a teacher ffn of ffn 12, the teacher's is 16)",
    );
    expect(teacherProblems({ ...TEACHER, ffn: 16 }, upcycle, { kind: 'text', seqLen: 8 })).to.deep.equal([
      "model.moe.init upcycle: moe.init upcycle needs a teacher ffn of ffn 12, the teacher's is 16; use a dense " +
        "teacher of the student's shape or 'scratch'",
    ]);
    expect(teacherProblems(TEACHER, upcycle, { kind: 'text', seqLen: 8 })).to.deep.equal([]);
  });

  it('spec: moe.init defaults to scratch, takes upcycle/split with a teacher, and names the field when wrong', () => {
    const data = { kind: 'text', seqLen: 8, batchSize: 2 };
    const job = (moe: Record<string, unknown>, teacher?: object) =>
      validateJobSpec({ model: { ...TEACHER, moe: { experts: 4, ...moe } }, data, teacher });
    const m = job({}).model;
    expect(m.kind === 'transformer' && m.moe?.init).to.equal('scratch');
    const t = job({ init: 'split' }, { checkpoint: 'ckpt' }).model;
    expect(t.kind === 'transformer' && t.moe?.init).to.equal('split');
    const fields = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).to.be.instanceOf(JobSpecError);
        return (e as JobSpecError).issues;
      }
      throw new Error('accepted');
    };
    expect(fields(() => job({ init: 'clone' }))).to.deep.equal([
      "model.moe.init: must be 'scratch', 'upcycle' or 'split'",
    ]);
    expect(fields(() => job({ init: 'upcycle' }))[0]).to.match(
      /^model\.moe\.init: 'upcycle' builds the experts/,
    );
  });
});
