/**
 * The kernel registry: every O(n·d) or O(n²·d) pass of the rules and pre-aggregators (kernels: gram,
 * coordinatewise, mean, combinations, centeredClipping, normSq, scale; contracts in types.ts) is looked up here by
 * name and runs on the first backend, in registration order, that is enabled, available on this runtime and takes
 * the call. Backends are registered once, at the bottom of this file: WebAssembly SIMD first, the scalar
 * reference last (it implements every kernel and never declines). Rules contain only their mathematics and call
 * the functions below; none chooses a backend.
 */
import type { Workspace } from '../util.ts';
import { scalarBackend } from './scalar.ts';
import { simdBackend } from './simd.ts';
import type { CoordSpec, Dots, KernelBackend, KernelName, KernelSet } from './types.ts';

const backends: KernelBackend[] = [];
const disabled = new Set<string>();
/** Per kernel, the implementations to try in order (rebuilt when a backend is registered or toggled). */
let chains = new Map<KernelName, unknown[]>();

/** Registers a backend after the ones already registered. Names are unique. */
export function registerBackend(backend: KernelBackend): void {
  if (backends.some((b) => b.name === backend.name)) {
    throw new Error(`kernel backend '${backend.name}' is already registered`);
  }
  backends.push(backend);
  chains = new Map();
}

/** Names of the registered backends that are enabled and available here, in lookup order. */
export function activeBackends(): string[] {
  return backends.filter((b) => !disabled.has(b.name) && b.available()).map((b) => b.name);
}

/** Enables or disables a registered backend (benchmarks and tests compare backends); returns the previous state. */
export function setBackendEnabled(name: string, on: boolean): boolean {
  if (!backends.some((b) => b.name === name)) throw new Error(`unknown kernel backend '${name}'`);
  const prev = !disabled.has(name);
  if (on) disabled.delete(name);
  else disabled.add(name);
  chains = new Map();
  return prev;
}

/** Whether the WebAssembly SIMD kernels are in use (available and enabled). */
export function simdKernelsActive(): boolean {
  return activeBackends().includes(simdBackend.name);
}

/** Enables or disables the WebAssembly SIMD backend; returns the previous setting. */
export function setSimdKernels(on: boolean): boolean {
  return setBackendEnabled(simdBackend.name, on);
}

function chain<K extends KernelName>(name: K): KernelSet[K][] {
  let c = chains.get(name) as KernelSet[K][] | undefined;
  if (c === undefined) {
    c = [];
    for (const b of backends) {
      const k = b.kernels[name];
      if (k !== undefined && !disabled.has(b.name) && b.available()) c.push(k as KernelSet[K]);
    }
    chains.set(name, c);
  }
  return c;
}

function declined(name: KernelName): never {
  throw new Error(`no kernel backend ran '${name}'`);
}

/** Gram matrix R = [⟨xᵢ, xⱼ⟩] (n×n float64, exactly symmetric) into `out` (or a new array). */
export function computeGram(rows: readonly Float32Array[], out?: Float64Array): Float64Array {
  const n = rows.length;
  const gram = out ?? new Float64Array(n * n);
  if (gram.length < n * n) throw new Error('computeGram: output buffer too small');
  for (const k of chain('gram')) if (k(rows, gram)) return gram;
  return declined('gram');
}

/** The coordinate-wise rule `spec` over rows 0..m−1 (see CoordSpec), with the health sums of all rows. */
export function coordinatewise(
  rows: readonly Float32Array[],
  m: number,
  spec: CoordSpec,
  update: Float32Array,
  counts: Float64Array,
  dots: Dots | null,
  ws: Workspace,
): void {
  for (const k of chain('coordinatewise')) if (k(rows, m, spec, update, counts, dots, ws)) return;
  declined('coordinatewise');
}

/** update = (1/n)·Σᵢ rows[i], with the health sums. */
export function meanOfRows(
  rows: readonly Float32Array[],
  update: Float32Array,
  dots: Dots,
  ws: Workspace,
): void {
  for (const k of chain('mean')) if (k(rows, update, dots, ws)) return;
  declined('mean');
}

/** outs[o] = scales[o]·Σₜ coefs[o][t]·rows[outputs[o][t]] (float64 in term order; see KernelSet). */
export function combineRows(
  rows: readonly Float32Array[],
  outputs: readonly ArrayLike<number>[],
  coefs: readonly (ArrayLike<number> | null)[],
  scales: ArrayLike<number>,
  outs: readonly Float32Array[],
  ws: Workspace,
): void {
  for (const k of chain('combinations')) if (k(rows, outputs, coefs, scales, outs, ws)) return;
  declined('combinations');
}

/** Centered clipping's L steps on v (see KernelSet); returns the weight a₀ of the initial v. */
export function centeredClippingSteps(
  rows: readonly Float32Array[],
  v: Float64Array,
  tau: number,
  iterations: number,
  update: Float32Array,
  clip: Float64Array,
  w: Float64Array,
  dots: Dots,
): number {
  for (const k of chain('centeredClipping')) {
    const a0 = k(rows, v, tau, iterations, update, clip, w, dots);
    if (a0 !== null) return a0;
  }
  return declined('centeredClipping');
}

/** ‖x‖² in float64; x stays staged for a following {@link scaleVectorInto} with reuseStaged. */
export function vectorNormSq(x: Float32Array): number {
  for (const k of chain('normSq')) {
    const s = k(x);
    if (s !== null) return s;
  }
  return declined('normSq');
}

/** y = float32(x·s) per coordinate. With `reuseStaged`, x is the vector of the last {@link vectorNormSq}. */
export function scaleVectorInto(x: Float32Array, s: number, y: Float32Array, reuseStaged = false): void {
  for (const k of chain('scale')) if (k(x, s, y, reuseStaged)) return;
  declined('scale');
}

/**
 * out = (1/count)·Σ_{t<count} vectors[sel[t]], float64 in selection order (the mean of a selected subset: Krum
 * variants, MDA, MoNNA).
 */
export function averageSelected(
  vectors: Float32Array[],
  sel: ArrayLike<number>,
  count: number,
  ws: Workspace,
  out: Float32Array,
): Float32Array {
  if (count === 0) {
    out.fill(Number.NaN);
    return out;
  }
  const rows: Float32Array[] = [];
  const terms: number[] = [];
  for (let t = 0; t < count; t++) {
    rows.push(vectors[sel[t]]);
    terms.push(t);
  }
  combineRows(rows, [terms], [null], [1 / count], [out], ws);
  return out;
}

/** out = Σᵢ wᵢ·vectors[i] (zero weights skipped), float64 in worker order. */
export function weightedSum(
  vectors: Float32Array[],
  w: ArrayLike<number>,
  ws: Workspace,
  out: Float32Array,
): Float32Array {
  const rows: Float32Array[] = [];
  const terms: number[] = [];
  const coef: number[] = [];
  for (let i = 0; i < vectors.length; i++) {
    if (w[i] === 0) continue;
    terms.push(rows.length);
    rows.push(vectors[i]);
    coef.push(w[i]);
  }
  if (rows.length === 0) {
    out.fill(0);
    return out;
  }
  combineRows(rows, [terms], [coef], [1], [out], ws);
  return out;
}

registerBackend(simdBackend);
registerBackend(scalarBackend);
