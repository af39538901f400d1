/**
 * The kernel contracts: the O(n·d) and O(n²·d) passes the rules and pre-aggregators are built from. Every
 * backend implements the same mathematics; a backend may decline a call (return false or null: WebAssembly SIMD
 * unavailable, a module that failed to compile), and the registry (registry.ts) then runs the next backend.
 * Float64 accumulation everywhere; what a backend may change is only the float64 summation order where the
 * contract says so (the Gram matrix, squared norms), never a float32 result of a coordinate-wise kernel or a
 * linear combination.
 */
import type { Workspace } from '../util.ts';

/**
 * A coordinate-wise rule over the first m of the staged rows, per coordinate k with values vᵢ = rows[i][k], in
 * (value, row index) order (ties go to the lower row):
 * - median: the median value (midpoint of the two middle values for even m unless `lower`, then the lower one);
 *   counted: the row(s) whose value is the median value (rank h, or ranks h − 1 and h). `window`: how many ranks
 *   below the median the SIMD network also provides, to resolve ties of up to that many equal values in one
 *   pass (a speed knob; the value is the same for every window).
 * - trimmed: drops the t smallest and t largest, averages the rest (t ≥ 1); counted: the kept rows.
 * - closest: mean of the m − e values closest to a centre (the median, or the t-trimmed mean; ties in distance
 *   toward the lower row); counted: the kept rows.
 */
export type CoordSpec =
  | { kind: 'median'; lower: boolean; window?: number }
  | { kind: 'trimmed'; t: number }
  | { kind: 'closest'; centre: 'median' | 'trimmed'; lower: boolean; t: number; e: number };

/** Health sums: xu[i] = ⟨xᵢ, u⟩, xx[i] = ‖xᵢ‖² (row order) and uu = ‖u‖², added to by the kernels. */
export interface Dots {
  xu: Float64Array;
  xx: Float64Array;
  uu: number;
}

/** What a backend implements; false or null means "declined, ask the next backend". */
export interface KernelSet {
  /**
   * Gram matrix R = [⟨xᵢ, xⱼ⟩] into out (row-major n×n float64, exactly symmetric; float32 products are exact
   * in float64, sums float64 in the backend's fixed order, so equal vectors give equal rows).
   */
  gram(rows: readonly Float32Array[], out: Float64Array): boolean;
  /**
   * The coordinate-wise rule `spec` over rows 0..m−1 into update (float32 of the float64 result, bit-identical
   * across backends); adds to counts[i] the number of coordinates in which row i was counted; adds the health
   * sums of all rows to `dots` when given.
   */
  coordinatewise(
    rows: readonly Float32Array[],
    m: number,
    spec: CoordSpec,
    update: Float32Array,
    counts: Float64Array,
    dots: Dots | null,
    ws: Workspace,
  ): boolean;
  /** update = (1/n)·Σᵢ rows[i] (float64 sums in row order, times 1/n), with the health sums. */
  mean(rows: readonly Float32Array[], update: Float32Array, dots: Dots, ws: Workspace): boolean;
  /**
   * outs[o][k] = scales[o]·Σₜ coefs[o][t]·rows[outputs[o][t]][k] (float64 in term order; coefs[o] null: all 1).
   * Every output has the same number of terms (≥ 1).
   */
  combinations(
    rows: readonly Float32Array[],
    outputs: readonly ArrayLike<number>[],
    coefs: readonly (ArrayLike<number> | null)[],
    scales: ArrayLike<number>,
    outs: readonly Float32Array[],
    ws: Workspace,
  ): boolean;
  /**
   * Centered clipping, L = iterations steps of v ← v + (1/n)·Σᵢ (xᵢ − v)·min(1, τ/‖xᵢ − v‖) on the float64 v (in
   * place), written as v ← keep·v + Σᵢ cᵢxᵢ with cᵢ = min(1, τ/‖xᵢ − v‖)/n and keep = 1 − Σᵢ cᵢ; update =
   * float32(v). Fills clip (the last factors), w (each row's coefficient in v, w ← keep·w + c) and the health
   * sums; returns a₀ = Π keep, the weight of the initial v.
   */
  centeredClipping(
    rows: readonly Float32Array[],
    v: Float64Array,
    tau: number,
    iterations: number,
    update: Float32Array,
    clip: Float64Array,
    w: Float64Array,
    dots: Dots,
  ): number | null;
  /** ‖x‖² in float64 (the SIMD backend keeps x staged for a following `scale` with reuseStaged). */
  normSq(x: Float32Array): number | null;
  /** y = float32(x·s) per coordinate (float64 product). */
  scale(x: Float32Array, s: number, y: Float32Array, reuseStaged: boolean): boolean;
}

export type KernelName = keyof KernelSet;

/** A backend: a name, whether it can run on this runtime, and the kernels it implements. */
export interface KernelBackend {
  readonly name: string;
  available(): boolean;
  readonly kernels: Partial<KernelSet>;
}
