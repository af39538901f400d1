/** Shared helpers for the compression tests. */
import { Rng } from '../../../src/core/random.ts';
import { CodecWorkspace } from '../../../src/core/compression/codecWorkspace.ts';
import { layerByteBounds, type LayerSetting } from '../../../src/core/compression/compressionPlan.ts';
import { LayerMemory } from '../../../src/core/compression/errorFeedback.ts';
import { encodeLayer } from '../../../src/core/compression/layerCodec.ts';

export function gaussian(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.normal() * scale;
  return out;
}

/** Encode g once with a fresh memory; returns the bytes (a copy) and the memory. */
export function encodeOnce(
  setting: LayerSetting,
  shape: number[],
  g: Float32Array,
  sharedSeed = 7,
  privateSeed = 11,
): { bytes: Uint8Array; memory: LayerMemory } {
  const memory = new LayerMemory(g.length);
  const out = new Uint8Array(layerByteBounds(setting, shape).max);
  const n = encodeLayer(setting, shape, g, memory, out, { sharedSeed, privateSeed }, new CodecWorkspace());
  return { bytes: out.slice(0, n), memory };
}

export function sqDist(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return s;
}

export function sqNorm(a: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return s;
}

/** A rows × cols matrix of rank ≤ r: sum of r random outer products. */
export function lowRank(rows: number, cols: number, r: number, seed: number): Float32Array {
  const u = gaussian(rows * r, seed);
  const v = gaussian(cols * r, seed + 1);
  const m = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += u[i * r + k] * v[j * r + k];
      m[i * cols + j] = s;
    }
  return m;
}
