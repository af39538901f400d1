/**
 * Models by name. Adding a model is one file and one line here; the layout of a spec is a pure function of
 * the spec, so coordinator and workers derive the same one.
 */
import type { ParameterLayout } from '../core/layout/parameterLayout.ts';
import { createCnn } from './cnn.ts';
import type { Model } from './model.ts';
import { createMlp } from './mlp.ts';
import { createRecursiveTransformer, isRecursive } from './recursiveTransformer.ts';
import { createTransformer } from './transformer.ts';
import type { ModelSpec } from './types.ts';

type Factory<K extends ModelSpec['kind']> = (spec: Extract<ModelSpec, { kind: K }>) => Model;

const registry: { [K in ModelSpec['kind']]: Factory<K> } = {
  mlp: (spec) => {
    if (!Array.isArray(spec.hidden))
      throw new Error(`model 'mlp': 'hidden' must be an array of layer widths`);
    return createMlp(spec.hidden);
  },
  cnn: () => createCnn(),
  transformer: (spec) => (isRecursive(spec) ? createRecursiveTransformer(spec) : createTransformer(spec)),
};

export const MODEL_KINDS = Object.keys(registry) as ModelSpec['kind'][];

export function createModel(spec: ModelSpec): Model {
  const factory = registry[spec.kind] as Factory<ModelSpec['kind']> | undefined;
  if (factory === undefined) {
    throw new Error(`unknown model kind '${String(spec.kind)}' (known: ${MODEL_KINDS.join(', ')})`);
  }
  return factory(spec);
}

export function modelLayout(spec: ModelSpec): ParameterLayout {
  return createModel(spec).layout;
}
