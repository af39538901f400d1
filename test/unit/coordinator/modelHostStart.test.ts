/**
 * The coordinator's model host (its tfjs thread) and simulate() start a recursive student of a distillation job
 * from its teacher, as jobInitialParameters says: the coordinator's round-0 parameters are the converted teacher.
 * An MoE student with moe.init upcycle/split starts from the teacher's MLPs the same way.
 */
import { expect } from 'chai';
import { saveCheckpoint } from '../../../src/checkpoint/modelCheckpoint.ts';
import { validateJobSpec, type JobSpecInput } from '../../../src/config/jobSpec.ts';
import { buildModelHost } from '../../../src/coordinator/modelHost.ts';
import { toNamedTensors } from '../../../src/core/layout/namedTensors.ts';
import { BUNDLED_EXCERPT } from '../../../src/data/text.ts';
import {
  createRecursiveTransformer,
  recursiveParametersFromTeacher,
  type RecursiveSpec,
} from '../../../src/models/recursiveTransformer.ts';
import { moeParametersFromTeacher, type MoeStudentSpec } from '../../../src/models/moeFromTeacher.ts';
import { modelLayout } from '../../../src/models/registry.ts';
import { createTransformer } from '../../../src/models/transformer.ts';
import type { TransformerSpec } from '../../../src/models/types.ts';
import { simulate } from '../../../src/simulation/simulate.ts';
import { maxAbsDiff } from '../../support/arrays.ts';
import { tmpDir } from '../../support/processes.ts';

const TEXT = { kind: 'text', seqLen: 8, batchSize: 2, maxTrain: 64, maxTest: 16 } as const;
const TEACHER = { kind: 'transformer', dModel: 16, layers: 4, heads: 2, ffn: 32, context: 8 } as const;

describe('coordinator: a recursive student starts from its teacher', function () {
  this.timeout(120_000);
  const savedText = process.env.PHALANX_TEXT;
  let checkpoint: string;
  let teacherParams: Float32Array;

  const job = (model: JobSpecInput['model']) =>
    validateJobSpec({
      name: 'student',
      seed: 4,
      model,
      data: TEXT,
      rounds: 1,
      workers: { min: 1, max: 1 },
      aggregation: { rule: 'mean' },
      evaluation: { every: 0 },
      teacher: { checkpoint },
    });

  before(async () => {
    process.env.PHALANX_TEXT = BUNDLED_EXCERPT;
    const spec = validateJobSpec({ model: TEACHER, data: TEXT }).model as TransformerSpec;
    const teacher = createTransformer(spec);
    teacherParams = teacher.initialParameters(11);
    checkpoint = `${tmpDir('student-start')}/teacher`;
    await saveCheckpoint(checkpoint, {
      config: { model: spec },
      tensors: toNamedTensors(teacherParams, teacher.layout),
    });
  });
  after(() => {
    if (savedText === undefined) delete process.env.PHALANX_TEXT;
    else process.env.PHALANX_TEXT = savedText;
  });

  it('the model host starts it from the converted teacher, and says so; simulate() does too', async () => {
    const spec = job({ ...TEACHER, recursion: { blocks: 2, init: 'average', loraRank: 4 } });
    const host = await buildModelHost(spec);
    try {
      const expected = recursiveParametersFromTeacher(spec.model as RecursiveSpec, teacherParams);
      expect(maxAbsDiff(host.initialParameters(), expected)).to.equal(0);
      expect(host.startLine).to.equal(
        'student starts from its teacher: 2 blocks (init average), LoRA rank 4',
      );
    } finally {
      await host.dispose();
    }
    const lines: string[] = [];
    await simulate(spec, { backend: 'cpu', log: (l) => lines.push(l) });
    expect(lines).to.include('student starts from its teacher: 2 blocks (init average), LoRA rank 4');
  });

  it('a student of another width starts from its seed', async () => {
    const spec = job({ ...TEACHER, dModel: 8, recursion: { blocks: 2, loraRank: 0 } });
    const host = await buildModelHost(spec);
    try {
      const seeded = createRecursiveTransformer(spec.model as RecursiveSpec).initialParameters(spec.seed);
      expect(maxAbsDiff(host.initialParameters(), seeded)).to.equal(0);
      expect(host.startLine).to.equal('student starts from its seed (no teacher of its unrolled shape)');
    } finally {
      await host.dispose();
    }
  });

  it('an MoE student with moe.init split starts from the sliced teacher MLPs in the host and simulate()', async () => {
    const spec = job({ ...TEACHER, ffn: 8, moe: { experts: 4, init: 'split' } });
    const host = await buildModelHost(spec);
    const student = spec.model as MoeStudentSpec;
    const layout = modelLayout(student);
    const seeded = createTransformer(student).initialParameters(spec.seed);
    const teacherLayout = modelLayout({ ...TEACHER, vocab: student.vocab });
    const expected = moeParametersFromTeacher(student, layout, seeded, teacherLayout, teacherParams);
    try {
      expect(maxAbsDiff(host.initialParameters(), expected)).to.equal(0);
      expect(host.startLine).to.equal('student starts from its teacher: 4 experts split from its FFN');
    } finally {
      await host.dispose();
    }
    const lines: string[] = [];
    await simulate(spec, { backend: 'cpu', log: (l) => lines.push(l) });
    expect(lines).to.include('student starts from its teacher: 4 experts split from its FFN');
  });
});
