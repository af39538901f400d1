/**
 * What can be said about a transformer spec without tfjs: its parameter count and whether it can be built
 * (job-spec validation and admission use these; transformer.ts builds the model).
 */
import { moeParameterCount, moeProblems } from './moeSpec.ts';
import { recursionProblems, recursiveParameterCount } from './recursion.ts';
import type { TransformerSpec } from './types.ts';

/**
 * Parameters of a transformer spec: V·d + C·d + L·(4d² + 2d·f + 9d + f) + 2d; a recursive one stores K blocks
 * plus its relaxations (recursion.ts); an MoE one E experts and a router per block (moeSpec.ts; an rmoe router adds one shared GRU).
 */
export function transformerParameterCount(spec: Omit<TransformerSpec, 'kind'>): number {
  if (spec.recursion !== undefined) return recursiveParameterCount({ ...spec, recursion: spec.recursion });
  if (spec.moe !== undefined) return moeParameterCount({ ...spec, moe: spec.moe });
  const { dModel: d, ffn: f, layers: l, context: c } = spec;
  const v = spec.vocab.length;
  return v * d + c * d + l * (4 * d * d + 2 * d * f + 9 * d + f) + 2 * d;
}

/** Problems with a spec's shape, one message each (empty when it can be built). */
export function transformerSpecProblems(spec: TransformerSpec): string[] {
  const problems: string[] = [];
  for (const key of ['dModel', 'layers', 'heads', 'ffn', 'context'] as const) {
    if (!Number.isInteger(spec[key]) || spec[key] <= 0) problems.push(`${key} must be a positive integer`);
  }
  if (problems.length === 0 && spec.dModel % spec.heads !== 0) {
    problems.push(`dModel (${spec.dModel}) must be a multiple of heads (${spec.heads})`);
  }
  if (spec.vocab.length < 2 || spec.vocab.length > 256) problems.push('vocab must hold 2 to 256 characters');
  const chars = [...spec.vocab];
  if (chars.length !== spec.vocab.length || chars.some((c, i) => i > 0 && !(chars[i - 1] < c))) {
    problems.push('vocab must be sorted distinct characters of the Basic Multilingual Plane');
  }
  if (spec.recursion !== undefined && Number.isInteger(spec.layers) && spec.layers > 0) {
    problems.push(...recursionProblems(spec.layers, spec.recursion));
  }
  if (spec.moe !== undefined) {
    problems.push(...moeProblems(spec.moe));
    if (spec.recursion !== undefined) {
      problems.push(
        'moe.experts cannot be combined with recursion (a recursive MoE student, linear or rmoe router, is ' +
          'not supported): remove model.moe or model.recursion',
      );
    }
  }
  return problems;
}
