/**
 * PyTorch layouts ↔ ours. A model defined in PyTorch with the same architecture (module names as in our layouts)
 * has a state_dict that differs from our named tensors only in layout:
 *
 *   nn.Linear weight     PyTorch [out, in]          ours [in, out]                 (transpose)
 *   nn.Conv2d weight     PyTorch OIHW [o, i, kh, kw] ours HWIO [kh, kw, i, o]
 *   cnn fc1.weight       PyTorch flattens the [50, 4, 4] feature map as (c, h, w), ours (NHWC) as (h, w, c):
 *                        ours[(h·4 + w)·50 + c][o] = PyTorch[o][c·16 + h·4 + w]
 *   nn.LayerNorm         PyTorch `weight`, ours `gain`
 *   nn.Embedding, biases the same
 *
 * The transformer's output projection is tied to `embed.weight`, so its PyTorch twin computes
 * logits = LN(h) · embed.weightᵀ and has no separate head. Pure: no I/O.
 */
import type { ParameterLayout } from '../core/layout/parameterLayout.ts';
import { sameShape, shapeText, type NamedTensor, type NamedTensors } from '../core/layout/namedTensors.ts';
import type { ModelSpec } from '../models/types.ts';

type Transform = 'same' | 'linear' | 'conv' | 'cnnFlatten';

interface TorchEntry {
  /** The PyTorch state_dict key. */
  torch: string;
  transform: Transform;
}

const DESCRIBE: Record<Transform, string> = {
  same: 'same layout',
  linear: 'Linear weight [out, in]',
  conv: 'Conv2d weight [out, in, kh, kw]',
  cnnFlatten: 'Linear weight [out, in] over the (c, h, w) flatten',
};

/** The cnn's feature map before fc1: [h, w, c] = [4, 4, 50]. */
const CNN_MAP = { h: 4, w: 4, c: 50 };

/** Where our tensor `name` of a `kind` model is in a PyTorch state_dict, and how its layout differs. */
function torchEntry(kind: ModelSpec['kind'], name: string): TorchEntry {
  if (kind === 'cnn') {
    if (/^conv\d+\.weight$/.test(name)) return { torch: name, transform: 'conv' };
    if (name === 'fc1.weight') return { torch: name, transform: 'cnnFlatten' };
  }
  if (kind === 'transformer') {
    if (/\.gain$/.test(name)) return { torch: name.replace(/\.gain$/, '.weight'), transform: 'same' };
    if (name === 'embed.weight' || name === 'pos.weight') return { torch: name, transform: 'same' };
    // a recursive student's LoRA: ours a [in, r], b [r, out] → PyTorch's lora_A [r, in], lora_B [out, r]
    if (/^lora\.\d+\..+\.a$/.test(name))
      return { torch: name.replace(/\.a$/, '.lora_A'), transform: 'linear' };
    if (/^lora\.\d+\..+\.b$/.test(name))
      return { torch: name.replace(/\.b$/, '.lora_B'), transform: 'linear' };
  }
  if (name.endsWith('.weight')) return { torch: name, transform: 'linear' };
  return { torch: name, transform: 'same' };
}

function torchShape(transform: Transform, shape: readonly number[]): number[] {
  switch (transform) {
    case 'same':
      return [...shape];
    case 'linear':
    case 'cnnFlatten':
      return [shape[1], shape[0]];
    case 'conv':
      return [shape[3], shape[2], shape[0], shape[1]];
  }
}

/** Our row index for PyTorch's fc1 input index k = c·16 + h·4 + w. */
function cnnRow(k: number): number {
  const c = Math.floor(k / (CNN_MAP.h * CNN_MAP.w));
  const hw = k % (CNN_MAP.h * CNN_MAP.w);
  return hw * CNN_MAP.c + c;
}

/** Calls `pair(ours, torch)` with the flat index of each element in our layout and in PyTorch's. `shape` is ours. */
function forEachIndexPair(
  transform: Transform,
  shape: readonly number[],
  pair: (ours: number, torch: number) => void,
): void {
  if (transform === 'same') {
    const n = shape.reduce((a, b) => a * b, 1);
    for (let k = 0; k < n; k++) pair(k, k);
  } else if (transform === 'linear' || transform === 'cnnFlatten') {
    const [rows, cols] = shape; // ours [in, out]; PyTorch [out, in]
    for (let o = 0; o < cols; o++) {
      for (let k = 0; k < rows; k++) {
        const r = transform === 'cnnFlatten' ? cnnRow(k) : k;
        pair(r * cols + o, o * rows + k);
      }
    }
  } else {
    const [kh, kw, ci, co] = shape; // ours HWIO; PyTorch OIHW
    for (let o = 0; o < co; o++)
      for (let i = 0; i < ci; i++)
        for (let y = 0; y < kh; y++)
          for (let x = 0; x < kw; x++)
            pair(((y * kw + x) * ci + i) * co + o, ((o * ci + i) * kh + y) * kw + x);
  }
}

/** PyTorch layout → ours. `shape` is ours. */
function fromTorchData(transform: Transform, src: Float32Array, shape: readonly number[]): Float32Array {
  const out = new Float32Array(src.length);
  forEachIndexPair(transform, shape, (ours, torch) => (out[ours] = src[torch]));
  return out;
}

/** Ours → PyTorch layout. `shape` is ours. */
function toTorchData(transform: Transform, src: Float32Array, shape: readonly number[]): Float32Array {
  const out = new Float32Array(src.length);
  forEachIndexPair(transform, shape, (ours, torch) => (out[torch] = src[ours]));
  return out;
}

const quoted = (names: readonly string[], max = 6) =>
  names
    .slice(0, max)
    .map((n) => `'${n}'`)
    .join(', ') + (names.length > max ? `, … (${names.length} in all)` : '');

/** A prefix every name shares (e.g. 'module.' from DataParallel, 'model.'), as a hint for a mismatch. */
function sharedPrefix(names: readonly string[]): string | undefined {
  const first = /^[^.]+\./.exec(names[0] ?? '')?.[0];
  return first && names.length > 1 && names.every((n) => n.startsWith(first)) ? first : undefined;
}

/**
 * Our named tensors (layout order) from a PyTorch state_dict of the same architecture. Every layer must be there
 * with the shape its PyTorch twin has, and nothing else may be: the error names each mismatch.
 */
export function fromPyTorch(
  kind: ModelSpec['kind'],
  layout: ParameterLayout,
  state: NamedTensors,
): NamedTensors {
  const out: NamedTensors = new Map();
  const used = new Set<string>();
  const missing: string[] = [];
  for (const slot of layout.layers) {
    const entry = torchEntry(kind, slot.name);
    const want = torchShape(entry.transform, slot.shape);
    const t = state.get(entry.torch);
    if (!t) {
      missing.push(`'${entry.torch}' ${shapeText(want)}`);
      continue;
    }
    used.add(entry.torch);
    if (!sameShape(t.shape, want)) {
      throw new Error(
        `PyTorch tensor '${entry.torch}' has shape ${shapeText(t.shape)}; this ${kind} needs ${shapeText(want)} ` +
          `(${DESCRIBE[entry.transform]}, ours '${slot.name}' ${shapeText(slot.shape)})`,
      );
    }
    out.set(slot.name, { data: fromTorchData(entry.transform, t.data, slot.shape), shape: [...slot.shape] });
  }
  const unexpected = [...state.keys()].filter((n) => !used.has(n));
  if (missing.length > 0 || unexpected.length > 0) {
    const parts: string[] = [];
    if (missing.length > 0)
      parts.push(
        `missing ${missing.slice(0, 6).join(', ')}${missing.length > 6 ? `, … (${missing.length} in all)` : ''}`,
      );
    if (unexpected.length > 0) parts.push(`not in this ${kind}: ${quoted(unexpected)}`);
    const prefix = unexpected.length === state.size ? sharedPrefix(unexpected) : undefined;
    throw new Error(
      `the PyTorch state_dict does not match the architecture: ${parts.join('; ')}` +
        (prefix ? ` (every name starts with '${prefix}': strip that prefix when saving)` : ''),
    );
  }
  return out;
}

/** A PyTorch state_dict (PyTorch names and layouts) of our named tensors of a `kind` model. */
export function toPyTorch(kind: ModelSpec['kind'], tensors: NamedTensors): NamedTensors {
  const out: NamedTensors = new Map();
  for (const [name, t] of tensors) {
    const entry = torchEntry(kind, name);
    const converted: NamedTensor = {
      data: toTorchData(entry.transform, t.data, t.shape),
      shape: torchShape(entry.transform, t.shape),
    };
    out.set(entry.torch, converted);
  }
  return out;
}
