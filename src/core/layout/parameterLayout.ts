/**
 * Parameter layout shared by coordinator and workers: an ordered list of named layers packed into one flat
 * Float32Array. Both sides must derive the same layout from the job's model spec, so the layout is a pure
 * function of the spec and travels on the wire only as a fingerprint.
 */
export interface LayerSpec {
  name: string;
  shape: number[];
}

export interface LayerSlot extends LayerSpec {
  offset: number;
  size: number;
}

export interface ParameterLayout {
  layers: LayerSlot[];
  totalSize: number;
}

export function buildLayout(layers: LayerSpec[]): ParameterLayout {
  const slots: LayerSlot[] = [];
  const seen = new Set<string>();
  let offset = 0;
  for (const layer of layers) {
    if (seen.has(layer.name)) throw new Error(`layout: duplicate layer name '${layer.name}'`);
    seen.add(layer.name);
    const size = layer.shape.reduce((a, b) => a * b, 1);
    if (!Number.isInteger(size) || size <= 0)
      throw new Error(`layout: layer '${layer.name}' has an empty shape`);
    slots.push({ name: layer.name, shape: [...layer.shape], offset, size });
    offset += size;
  }
  return { layers: slots, totalSize: offset };
}

/** A view (no copy) of one layer inside a flat parameter or gradient vector. */
export function layerView(flat: Float32Array, slot: LayerSlot): Float32Array {
  return flat.subarray(slot.offset, slot.offset + slot.size);
}

/** Stable fingerprint of a layout (FNV-1a over names and shapes); workers and coordinator compare it. */
export function layoutFingerprint(layout: ParameterLayout): string {
  let h = 0x811c9dc5;
  const text = layout.layers.map((l) => `${l.name}:${l.shape.join('x')}`).join(';');
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `${layout.totalSize}-${h.toString(16).padStart(8, '0')}`;
}
