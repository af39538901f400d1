/**
 * Named tensors: a model's parameters as one tensor per layout layer (what a checkpoint stores), and the maps
 * between them and the flat vector the round engine works on. Pure: no I/O.
 */
import { layerView, type ParameterLayout } from './parameterLayout.ts';

export interface NamedTensor {
  data: Float32Array;
  shape: number[];
}

/** Tensors by name; iteration order is insertion order (layout order when built by toNamedTensors). */
export type NamedTensors = Map<string, NamedTensor>;

export function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** One named tensor per layout layer, each a view (no copy) of `flat`. */
export function toNamedTensors(flat: Float32Array, layout: ParameterLayout): NamedTensors {
  if (flat.length !== layout.totalSize) {
    throw new Error(`named tensors: ${flat.length} parameters for a layout of ${layout.totalSize}`);
  }
  return new Map(
    layout.layers.map((slot) => [slot.name, { data: layerView(flat, slot), shape: [...slot.shape] }]),
  );
}

/**
 * The flat parameter vector of `layout` from named tensors: every layer must be present with exactly its
 * shape. Names the layout does not have are ignored (a checkpoint may hold more, e.g. optimizer state).
 */
export function fromNamedTensors(named: NamedTensors, layout: ParameterLayout): Float32Array {
  const missing = layout.layers.filter((slot) => !named.has(slot.name)).map((slot) => slot.name);
  if (missing.length > 0) {
    throw new Error(
      `missing tensor${missing.length > 1 ? 's' : ''} ${missing.map((n) => `'${n}'`).join(', ')} of the model's layout`,
    );
  }
  const flat = new Float32Array(layout.totalSize);
  for (const slot of layout.layers) {
    const t = named.get(slot.name)!;
    if (!sameShape(t.shape, slot.shape)) {
      throw new Error(
        `tensor '${slot.name}' has shape ${shapeText(t.shape)}, the model's layout needs ${shapeText(slot.shape)}`,
      );
    }
    if (t.data.length !== slot.size) {
      throw new Error(`tensor '${slot.name}' holds ${t.data.length} values for shape ${shapeText(t.shape)}`);
    }
    flat.set(t.data, slot.offset);
  }
  return flat;
}

/** Euclidean norm, accumulated in double precision. */
export function l2Norm(data: Float32Array): number {
  let s = 0;
  for (let i = 0; i < data.length; i++) s += data[i] * data[i];
  return Math.sqrt(s);
}
