/**
 * Whether a student can learn from a teacher: the soft term compares the two models' distributions over the
 * same classes for the same input, so both must read the same inputs and predict over the same outputs —
 * images into 10 classes, or text with the same vocabulary (token id i is the same character in both), with a
 * teacher context that covers the job's sequences. Pure: returns one line per problem, each with its fix.
 */
import { moeTeacherMismatch } from './moeFromTeacher.ts';
import type { ModelSpec } from './types.ts';

const IMAGE_KINDS = new Set<ModelSpec['kind']>(['mlp', 'cnn']);

export function teacherProblems(
  teacher: ModelSpec,
  student: ModelSpec,
  data: { kind: string; seqLen?: number },
): string[] {
  if (student.kind !== 'transformer') {
    if (IMAGE_KINDS.has(teacher.kind)) return [];
    return [
      `the teacher is a ${teacher.kind} and the student (model.kind ${student.kind}) classifies images: ` +
        'use a teacher checkpoint of an mlp or cnn',
    ];
  }
  if (teacher.kind !== 'transformer') {
    return [
      `the teacher is a ${teacher.kind} (images) and the student is a transformer (text): ` +
        'use a transformer teacher checkpoint',
    ];
  }
  const problems: string[] = [];
  if (teacher.vocab !== student.vocab) {
    problems.push(
      `the teacher's vocabulary (${teacher.vocab.length} characters) differs from model.vocab ` +
        `(${student.vocab.length} characters): set model.vocab to the teacher's (phalanx checkpoint inspect shows it)`,
    );
  }
  if (data.seqLen !== undefined && data.seqLen > teacher.context) {
    problems.push(
      `the teacher's context is ${teacher.context} positions, shorter than data.seqLen ${data.seqLen}: ` +
        `lower data.seqLen to at most ${teacher.context}`,
    );
  }
  const init = student.moe?.init ?? 'scratch';
  if (init !== 'scratch') {
    const mismatch = moeTeacherMismatch(student, teacher);
    if (mismatch !== undefined)
      problems.push(
        `model.moe.init ${init}: ${mismatch}; use a dense teacher of the student's shape or 'scratch'`,
      );
  }
  return problems;
}
