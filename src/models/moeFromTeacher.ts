/**
 * An MoE student built from a dense teacher of its shape (same vocabulary, width, depth, heads and context; a plain
 * transformer). Every tensor outside the MLPs is the teacher's; per block the experts come from the teacher's MLP
 * fc [d, F] + [F], proj [F, d] + [d]:
 *
 *   upcycle (F = f): every expert is a copy of the MLP. The chosen gates are renormalised to sum to 1, so without
 *     capacity dropping the student computes exactly the teacher's function whatever the router says.
 *   split (F = E·f): expert e takes the hidden units [e·f, (e+1)·f) — fc columns, fc bias entries, proj rows — and
 *     proj bias / E, so Σ_e expert_e(x) = MLP(x) (the GELU acts per hidden unit).
 *
 * The router (linear, or rmoe's per-block projections and shared GRU) has no teacher counterpart and keeps the
 * student's seeded values; upcycle's identity holds for any router. Pure: no tfjs.
 */
import { toNamedTensors, fromNamedTensors, type NamedTensors } from '../core/layout/namedTensors.ts';
import type { ParameterLayout } from '../core/layout/parameterLayout.ts';
import { isRouterTensor } from './moeSpec.ts';
import type { ModelSpec, MoeSpec, TransformerSpec } from './types.ts';

export type MoeStudentSpec = TransformerSpec & { moe: MoeSpec & { init: 'upcycle' | 'split' } };

const SHAPE_FIELDS = ['vocab', 'dModel', 'layers', 'heads', 'context'] as const;

/**
 * Why an MoE student cannot start from this teacher, or undefined when it can (moe.init upcycle or split and a
 * dense teacher of its shape whose FFN width fits the init).
 */
export function moeTeacherMismatch(student: ModelSpec, teacher: ModelSpec | undefined): string | undefined {
  if (student.kind !== 'transformer' || !student.moe) return 'the student has no moe section';
  const init = student.moe.init ?? 'scratch';
  if (init === 'scratch') return 'moe.init scratch';
  if (!teacher) return 'no teacher';
  if (teacher.kind !== 'transformer' || teacher.recursion || teacher.moe)
    return 'the teacher is not a plain dense transformer';
  for (const k of SHAPE_FIELDS)
    if (teacher[k] !== student[k])
      return `the teacher's ${k} ${teacher[k]} differs from the student's ${student[k]}`;
  const want = init === 'upcycle' ? student.ffn : student.moe.experts * student.ffn;
  if (teacher.ffn !== want) {
    const need =
      init === 'upcycle' ? `ffn ${student.ffn}` : `${student.moe.experts} × ${student.ffn} = ${want}`;
    return `moe.init ${init} needs a teacher ffn of ${need}, the teacher's is ${teacher.ffn}`;
  }
  return undefined;
}

/** The student's named tensors from the teacher's (both keyed by layout name); router tensors from `seeded`. */
export function moeFromTeacher(
  student: MoeStudentSpec,
  teacher: NamedTensors,
  seeded: NamedTensors,
): NamedTensors {
  const { experts: E, init } = student.moe;
  const f = student.ffn;
  const d = student.dModel;
  const F = init === 'upcycle' ? f : E * f;
  const out: NamedTensors = new Map();
  const get = (name: string) => {
    const t = teacher.get(name);
    if (!t) throw new Error(`moeFromTeacher: the teacher has no tensor '${name}'`);
    return t.data;
  };
  for (const [name, t] of seeded) {
    if (isRouterTensor(name)) {
      out.set(name, { data: t.data.slice(), shape: [...t.shape] });
      continue;
    }
    const m = /^(blocks\.\d+)\.mlp\.experts\.(\d+)\.(fc|proj)\.(weight|bias)$/.exec(name);
    if (!m) {
      out.set(name, { data: get(name).slice(), shape: [...t.shape] });
      continue;
    }
    const e = Number(m[2]);
    const source = get(`${m[1]}.mlp.${m[3]}.${m[4]}`);
    // Upcycle copies hidden units [0, f) into every expert; split gives expert e the units [e·f, (e+1)·f).
    const lo = init === 'upcycle' ? 0 : e * f;
    let data: Float32Array;
    if (m[3] === 'fc' && m[4] === 'weight') {
      data = new Float32Array(d * f);
      for (let i = 0; i < d; i++) data.set(source.subarray(i * F + lo, i * F + lo + f), i * f);
    } else if (m[3] === 'fc') data = source.slice(lo, lo + f);
    else if (m[4] === 'weight') data = source.slice(lo * d, (lo + f) * d);
    else data = init === 'upcycle' ? source.slice() : source.map((v) => v / E);
    out.set(name, { data, shape: [...t.shape] });
  }
  return out;
}

/** The student's flat parameters from the teacher's flat parameters and the student's seeded ones. */
export function moeParametersFromTeacher(
  student: MoeStudentSpec,
  studentLayout: ParameterLayout,
  seeded: Float32Array,
  teacherLayout: ParameterLayout,
  teacherParams: Float32Array,
): Float32Array {
  const named = moeFromTeacher(
    student,
    toNamedTensors(teacherParams, teacherLayout),
    toNamedTensors(seeded, studentLayout),
  );
  return fromNamedTensors(named, studentLayout);
}
