import { expect } from 'chai';
import { validateJobSpec } from '../../../src/config/jobSpec.ts';
import type { ModelSpec, TransformerSpec } from '../../../src/models/types.ts';
import { jobInitialParameters, startsFromTeacher } from '../../../src/models/studentInit.ts';
import {
  createRecursiveTransformer,
  recursiveParametersFromTeacher,
  type RecursiveSpec,
} from '../../../src/models/recursiveTransformer.ts';
import { createTransformer } from '../../../src/models/transformer.ts';
import { maxAbsDiff } from '../../support/arrays.ts';

const TEXT = { kind: 'text', seqLen: 8, batchSize: 2 } as const;
const BASE = {
  kind: 'transformer',
  vocab: 'abcdefgh',
  dModel: 8,
  layers: 4,
  heads: 2,
  ffn: 16,
  context: 8,
} as const;
const model = (m: Record<string, unknown>) => validateJobSpec({ model: { ...BASE, ...m }, data: TEXT }).model;

describe('models: where a job starts (studentInit)', () => {
  const teacher = model({});
  const student = model({ recursion: { blocks: 2, init: 'average', loraRank: 2 } }) as RecursiveSpec;

  it('a recursive student starts from a teacher that is exactly its unrolled transformer', () => {
    expect(startsFromTeacher(student, teacher)).to.equal(true);
    for (const [field, value] of [
      ['dModel', 16],
      ['layers', 6],
      ['heads', 4],
      ['ffn', 32],
      ['context', 16],
      ['vocab', 'abcdefgz'],
    ] as const)
      expect(startsFromTeacher(student, { ...teacher, [field]: value } as ModelSpec), field).to.equal(false);
    expect(startsFromTeacher(teacher, teacher), 'a plain student').to.equal(false);
    expect(startsFromTeacher(student, student), 'a recursive teacher').to.equal(false);
    expect(startsFromTeacher(student, undefined)).to.equal(false);
  });

  it("the start is recursiveParametersFromTeacher's vector with a fitting teacher, else the seed's", () => {
    const teacherParams = createTransformer(teacher as TransformerSpec).initialParameters(7);
    const trainer = createRecursiveTransformer(student);
    const fromTeacher = jobInitialParameters(student, 3, trainer, { spec: teacher, params: teacherParams });
    expect(fromTeacher.from).to.equal('teacher');
    expect(maxAbsDiff(fromTeacher.params, recursiveParametersFromTeacher(student, teacherParams))).to.equal(
      0,
    );
    const wide = { ...teacher, dModel: 16 } as ModelSpec;
    const fromSeed = jobInitialParameters(student, 3, trainer, { spec: wide, params: new Float32Array(1) });
    expect(fromSeed.from).to.equal('seed');
    expect(maxAbsDiff(fromSeed.params, trainer.initialParameters(3))).to.equal(0);
    expect(maxAbsDiff(fromSeed.params, fromTeacher.params)).to.be.greaterThan(0);
  });

  it('recursion.init scratch starts from the seed even with a teacher of the unrolled shape', () => {
    const scratch = model({ recursion: { blocks: 2, init: 'scratch', loraRank: 2 } }) as RecursiveSpec;
    expect(startsFromTeacher(scratch, teacher)).to.equal(false);
    const trainer = createRecursiveTransformer(scratch);
    const teacherParams = createTransformer(teacher as TransformerSpec).initialParameters(7);
    const start = jobInitialParameters(scratch, 3, trainer, { spec: teacher, params: teacherParams });
    expect(start.from).to.equal('seed');
    expect(maxAbsDiff(start.params, trainer.initialParameters(3))).to.equal(0);
    // The seeded start does not depend on recursion.init: the same vector as any other init's layout.
    expect(maxAbsDiff(start.params, createRecursiveTransformer(student).initialParameters(3))).to.equal(0);
  });
});
