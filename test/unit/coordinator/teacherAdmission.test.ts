import { expect } from 'chai';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { saveCheckpoint } from '../../../src/checkpoint/modelCheckpoint.ts';
import { JobSpecError, validateJobSpec, type JobSpecInput } from '../../../src/config/jobSpec.ts';
import { toNamedTensors } from '../../../src/core/layout/namedTensors.ts';
import { admitJob, type AdmissionConfig } from '../../../src/coordinator/admission.ts';
import { createModel } from '../../../src/models/registry.ts';
import type { ModelSpec } from '../../../src/models/types.ts';

const TEACHER = {
  kind: 'transformer',
  vocab: 'abcdefgh',
  dModel: 8,
  layers: 1,
  heads: 2,
  ffn: 16,
  context: 16,
};

function student(teacher: Record<string, unknown>, over: Partial<JobSpecInput> = {}): JobSpecInput {
  return {
    model: { kind: 'transformer', vocab: 'abcdefgh', dModel: 4, layers: 1, heads: 1, ffn: 8, context: 16 },
    data: { kind: 'text', seqLen: 8 },
    teacher: { checkpoint: 'teacher', ...teacher },
    ...over,
  };
}

function issuesOf(f: () => unknown): string[] {
  try {
    f();
  } catch (e) {
    if (e instanceof JobSpecError) return e.issues;
    throw e;
  }
  throw new Error('expected a JobSpecError');
}

describe('coordinator: admission of a teacher checkpoint', () => {
  let tmp: string;
  let ckpt: string;
  let data: string;
  let outside: string;
  let sha = '';
  const config = (): AdmissionConfig => ({
    checkpointRoot: ckpt,
    dataRoots: [data],
    memoryBudgetBytes: 2 ** 31,
  });

  async function save(dir: string, spec: Record<string, unknown>): Promise<string> {
    const model = validateJobSpec({
      model: spec,
      data: spec.kind === 'transformer' ? { kind: 'text', seqLen: 8 } : {},
    }).model as ModelSpec;
    const m = createModel(model);
    const saved = await saveCheckpoint(dir, {
      config: { model },
      tensors: toNamedTensors(m.initialParameters(1), m.layout),
    });
    return saved.sha256;
  }

  before(async () => {
    tmp = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'phalanx-teacher-admission-')));
    ckpt = path.join(tmp, 'ckpt');
    data = path.join(tmp, 'data');
    outside = path.join(tmp, 'outside');
    for (const d of [ckpt, data, outside]) mkdirSync(d);
    sha = await save(path.join(ckpt, 'teacher'), TEACHER);
    await save(path.join(data, 'models', 'wide'), { ...TEACHER, vocab: 'abcdefghij' });
    await save(path.join(data, 'cnn'), { kind: 'cnn' });
    await save(path.join(outside, 'teacher'), TEACHER);
    symlinkSync(path.join(outside, 'teacher'), path.join(ckpt, 'escape'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('resolves a checkpoint in the checkpoint directory and pins its sha256', () => {
    const admitted = admitJob(validateJobSpec(student({})), config());
    expect(admitted.teacher).to.deep.equal({
      checkpoint: path.join(ckpt, 'teacher'),
      alpha: 0.5,
      temperature: 2,
      sha256: sha,
    });
  });

  it('answers every path outside its roots the same, whether it exists or not', () => {
    const expected = [/^teacher\.checkpoint: no checkpoint by that name/];
    for (const where of [
      '../outside/teacher',
      'escape',
      'nothing-here',
      path.join(outside, 'teacher'),
      'models',
    ]) {
      const issues = issuesOf(() => admitJob(validateJobSpec(student({ checkpoint: where })), config()));
      expect(issues, where).to.have.length(1);
      expect(issues[0], where).to.match(expected[0]);
    }
  });

  it('refuses a teacher of another vocabulary, of images, or whose context is shorter than seqLen, naming the fix', () => {
    const vocab = issuesOf(() => admitJob(validateJobSpec(student({ checkpoint: 'models/wide' })), config()));
    expect(vocab).to.deep.equal([
      "teacher.checkpoint: the teacher's vocabulary (10 characters) differs from model.vocab (8 characters): set " +
        "model.vocab to the teacher's (phalanx checkpoint inspect shows it)",
    ]);
    const cnn = issuesOf(() => admitJob(validateJobSpec(student({ checkpoint: 'cnn' })), config()));
    expect(cnn[0]).to.match(/the teacher is a cnn \(images\) and the student is a transformer \(text\)/);
    const mlp = validateJobSpec({ model: { kind: 'mlp', hidden: [8] }, teacher: { checkpoint: 'cnn' } });
    expect(admitJob(mlp, config()).teacher?.checkpoint).to.equal(path.join(data, 'cnn'));
    const imageOnText = validateJobSpec({
      model: { kind: 'mlp', hidden: [8] },
      teacher: { checkpoint: 'teacher' },
    });
    expect(issuesOf(() => admitJob(imageOnText, config()))[0]).to.match(
      /the teacher is a transformer and the student \(model\.kind mlp\) classifies images: use a teacher checkpoint of an mlp or cnn/,
    );
    const long = student(
      {},
      {
        model: {
          kind: 'transformer',
          vocab: 'abcdefgh',
          dModel: 4,
          layers: 1,
          heads: 1,
          ffn: 8,
          context: 32,
        },
        data: { kind: 'text', seqLen: 32 },
      },
    );
    expect(issuesOf(() => admitJob(validateJobSpec(long), config()))[0]).to.match(
      /context is 16 positions, shorter than data\.seqLen 32: lower data\.seqLen to at most 16/,
    );
  });

  it('refuses a given sha256 that is not the checkpoint’s', () => {
    const issues = issuesOf(() => admitJob(validateJobSpec(student({ sha256: 'a'.repeat(64) })), config()));
    expect(issues[0]).to.match(
      /^teacher\.sha256: the checkpoint's model\.safetensors has sha256 [0-9a-f]{64}, not/,
    );
    expect(admitJob(validateJobSpec(student({ sha256: sha })), config()).teacher?.sha256).to.equal(sha);
  });

  it('validates the teacher section at the edge, naming the field', () => {
    expect(issuesOf(() => validateJobSpec(student({ alpha: 1.5 })))[0]).to.match(/^teacher\.alpha: /);
    expect(issuesOf(() => validateJobSpec(student({ temperature: 0 })))[0]).to.match(
      /^teacher\.temperature: /,
    );
    expect(issuesOf(() => validateJobSpec(student({ sha256: 'xyz' })))[0]).to.match(
      /^teacher\.sha256: a sha256/,
    );
    expect(issuesOf(() => validateJobSpec(student({ hidden: 1 })))[0]).to.match(
      /^teacher\.hidden: unknown field \(known: checkpoint, alpha, temperature, sha256\)/,
    );
    expect(issuesOf(() => validateJobSpec({ teacher: {} }))[0]).to.match(/^teacher\.checkpoint: /);
  });
});
