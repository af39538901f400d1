/**
 * Where a job's model starts. A recursive student (MoR included) of a distillation job whose teacher is its
 * unrolled transformer — a plain transformer with the same vocabulary, width, heads, FFN width, context and depth
 * L = `layers` — starts from the teacher: `recursion.init` picks the teacher layers each shared block starts as,
 * and depth-wise LoRA starts from the truncated SVD of the residuals (recursion.ts). Every other model, a
 * recursive student whose teacher has another shape and one with `recursion.init: scratch` start from their
 * seeded initialisation. An MoE student with `moe.init` upcycle or split starts its experts from the MLPs of a
 * dense teacher of its shape (moeFromTeacher.ts). The coordinator and simulate() both start here, so a job starts
 * from the same vector in either.
 */
import type { ModelSpec, Trainer } from './types.ts';
import { recursiveParametersFromTeacher, unrolledSpec, type RecursiveSpec } from './recursiveTransformer.ts';
import { moeParametersFromTeacher, moeTeacherMismatch, type MoeStudentSpec } from './moeFromTeacher.ts';
import { modelLayout } from './registry.ts';

export interface TeacherWeights {
  spec: ModelSpec;
  params: Float32Array;
}

const SHAPE_FIELDS = ['vocab', 'dModel', 'layers', 'heads', 'ffn', 'context'] as const;

/** The student is recursive and the teacher is exactly its unrolled transformer. */
function recursiveStartsFromTeacher(
  student: ModelSpec,
  teacher: ModelSpec | undefined,
): student is RecursiveSpec {
  if (student.kind !== 'transformer' || !student.recursion || student.moe) return false;
  if (student.recursion.init === 'scratch') return false;
  if (!teacher || teacher.kind !== 'transformer' || teacher.recursion || teacher.moe) return false;
  const unrolled = unrolledSpec(student);
  return SHAPE_FIELDS.every((k) => teacher[k] === unrolled[k]);
}

/** Is an MoE student that starts from this teacher (moeTeacherMismatch says why not). */
function moeStartsFromTeacher(student: ModelSpec, teacher: ModelSpec | undefined): student is MoeStudentSpec {
  return (
    student.kind === 'transformer' && !!student.moe && moeTeacherMismatch(student, teacher) === undefined
  );
}

/** The student starts from this teacher: a recursive student from its unrolled transformer, or an MoE student. */
export function startsFromTeacher(student: ModelSpec, teacher: ModelSpec | undefined): boolean {
  return recursiveStartsFromTeacher(student, teacher) || moeStartsFromTeacher(student, teacher);
}

/** A student that may start from a teacher, so one worth loading the teacher's weights for. */
export function mayStartFromTeacher(student: ModelSpec): boolean {
  return (
    student.kind === 'transformer' && (!!student.recursion || (student.moe?.init ?? 'scratch') !== 'scratch')
  );
}

/** The job's initial parameters and where they came from (for the log). */
export function jobInitialParameters(
  model: ModelSpec,
  seed: number,
  trainer: Pick<Trainer, 'initialParameters'>,
  teacher?: TeacherWeights,
): { params: Float32Array; from: 'teacher' | 'seed' } {
  if (teacher && recursiveStartsFromTeacher(model, teacher.spec))
    return { params: recursiveParametersFromTeacher(model, teacher.params), from: 'teacher' };
  if (teacher && moeStartsFromTeacher(model, teacher.spec)) {
    const seeded = trainer.initialParameters(seed);
    const params = moeParametersFromTeacher(
      model,
      modelLayout(model),
      seeded,
      modelLayout(teacher.spec),
      teacher.params,
    );
    return { params, from: 'teacher' };
  }
  return { params: trainer.initialParameters(seed), from: 'seed' };
}

/**
 * One log line saying how a student started; `teacher` (the teacher's spec, when the job has one) lets an MoE
 * student that starts from its seed say why.
 */
export function initialParametersLine(
  model: ModelSpec,
  from: 'teacher' | 'seed',
  teacher?: ModelSpec,
): string | undefined {
  if (model.kind === 'transformer' && model.moe) {
    const { experts, init = 'scratch' } = model.moe;
    if (from === 'teacher')
      return `student starts from its teacher: ${experts} experts ${init === 'split' ? 'split' : 'upcycled'} from its FFN`;
    if (init === 'scratch') return undefined;
    return `student starts from its seed (${moeTeacherMismatch(model, teacher) ?? 'no teacher'})`;
  }
  if (model.kind !== 'transformer' || !model.recursion) return undefined;
  const r = model.recursion;
  return from === 'teacher'
    ? `student starts from its teacher: ${r.blocks} blocks (init ${r.init}), LoRA rank ${r.loraRank}`
    : r.init === 'scratch'
      ? 'student starts from its seed (recursion.init scratch)'
      : 'student starts from its seed (no teacher of its unrolled shape)';
}
