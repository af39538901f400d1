/**
 * L-GreCo: choose one compression setting per layer to
 *
 *     minimise Σ_ℓ S_ℓ(c_ℓ)   subject to   Σ_ℓ E_ℓ(c_ℓ) ≤ α · Σ_ℓ E_ℓ(c₀)
 *
 * where S is wire bytes, E the squared compression error on a recent error-compensated gradient (squared errors
 * of disjoint layers add up to the whole vector's squared error) and c₀ the uniform baseline. A multiple-choice
 * knapsack, solved exactly by dynamic programming over errors discretised into B buckets of width budget/B,
 * each candidate's error rounded UP to whole buckets — so the plan found never exceeds the real budget — in
 * O(L · |C| · B). The baseline is always within budget for α ≥ 1; if the DP's plan is not cheaper (rounding
 * can make the baseline itself unrepresentable), the baseline is kept.
 */
import type { LayerSlot, ParameterLayout } from '../layout/parameterLayout.ts';
import {
  checkSetting,
  expectedLayerBytes,
  kFromDensity,
  matrixShape,
  PLAN_LIMITS,
  powerSgdBytes,
  sameSetting,
  settingForLayer,
  type CompressionPlan,
  type CompressorKind,
  type FactorEncoding,
  type LayerSetting,
  type UniformSetting,
} from './compressionPlan.ts';
import { valueWidth, type ValueEncoding } from './valueCodec.ts';
import { varintLength } from './varint.ts';

export const DEFAULT_BUCKETS = 10_000;

export interface CandidateSpec {
  /** Compressor families the planner may use (fp32/bf16 are not adaptive and are ignored here). */
  compressors: CompressorKind[];
  baseline: UniformSetting;
  /** Value encoding of topk/randk/powersgd candidates not taken from the baseline (default bf16). */
  values?: ValueEncoding;
  /** QSGD bucket of candidates not taken from the baseline (default 128). */
  bucket?: number;
  /**
   * Factor encodings of PowerSGD candidates: every rank of the grid in each (default: the baseline's or
   * `values`, alone). Integer codes (int8, int4) halve or quarter bf16's bytes at the error their table shows.
   */
  factorValues?: FactorEncoding[];
}

/**
 * Density multipliers around a centre: 2^(i/2), i = −8…4, i.e. ×1/16 … ×4 in half-octave steps. A narrow grid
 * (×½ … ×2) cannot reach the settings that free most bytes on a large layer.
 */
const DENSITY_STEPS = Array.from({ length: 13 }, (_, i) => 2 ** ((i - 8) / 2));

/**
 * PowerSGD ranks around r₀: every integer from max(1, ⌊r₀/4⌋) to 2r₀, then doubling up to 8r₀ (r₀ = 4:
 * 1…8, 16, 32), so that a layer with a fast-decaying spectrum can go to rank 1 and one with a flat spectrum
 * can buy error back with a high rank.
 */
export function rankGrid(r0: number): number[] {
  const ranks: number[] = [];
  for (let r = Math.max(1, Math.floor(r0 / 4)); r <= 2 * r0; r++) ranks.push(r);
  for (let r = 4 * r0; r <= 8 * r0; r *= 2) ranks.push(r);
  return ranks;
}

/**
 * Wire bytes that the grids of a dense-baseline layer (a vector, or a matrix too small for PowerSGD) are
 * centred on: one byte per element, a quarter of fp32 — an 8-bit code. The layer keeps its dense baseline as
 * candidate 0, so the planner compresses it only when the error it costs is paid for elsewhere.
 */
const DENSE_CENTRE_BYTES_PER_ELEMENT = 1;

/**
 * The candidate settings of one layer, the layer's baseline setting first. For the baseline's own family the
 * grid is around the baseline's parameter (ranks: rankGrid(r₀); densities ×1/16…×4; bits 2…8); for the other
 * families it is around the parameter whose bytes match the baseline's on this layer. A layer whose baseline
 * is dense (fp32/bf16: a vector, or a matrix PowerSGD would not shrink twofold) gets the grids of every listed
 * family centred on one byte per element. Only settings valid for the layer and smaller than the layer in
 * fp32 are kept.
 */
export function layerCandidates(spec: CandidateSpec, slot: LayerSlot): LayerSetting[] {
  const base = settingForLayer(spec.baseline, slot);
  const out: LayerSetting[] = [base];
  const numel = slot.size;
  const dense = base.kind === 'fp32' || base.kind === 'bf16';
  const centreBytes = dense ? DENSE_CENTRE_BYTES_PER_ELEMENT * numel : expectedLayerBytes(base, slot.shape);
  const add = (s: LayerSetting) => {
    try {
      checkSetting(s, slot.shape);
    } catch {
      return;
    }
    if (expectedLayerBytes(s, slot.shape) >= 4 * numel) return;
    if (!out.some((o) => sameSetting(o, s))) out.push(s);
  };
  const valuesFor = (kind: 'topk' | 'randk'): ValueEncoding =>
    base.kind === kind ? base.values : (spec.values ?? 'bf16');
  for (const kind of spec.compressors) {
    switch (kind) {
      case 'powersgd': {
        const m = matrixShape(slot.shape);
        if (m === null) break;
        const own: FactorEncoding = base.kind === 'powersgd' ? base.values : (spec.values ?? 'bf16');
        // the rank grid is centred where the baseline's own encoding matches the centre bytes
        const r0 =
          base.kind === 'powersgd'
            ? base.rank
            : Math.max(1, Math.round(centreBytes / powerSgdBytes(m, 1, own)));
        for (const values of spec.factorValues ?? [own])
          for (const r of rankGrid(r0)) add({ kind, rank: r, values });
        break;
      }
      case 'topk':
      case 'randk': {
        const values = valuesFor(kind);
        const w = valueWidth(values);
        let k0: number;
        if (base.kind === kind) k0 = base.k;
        else if (kind === 'randk') k0 = centreBytes / w;
        else {
          // topk: value + varint of the mean gap per entry, the gap taken at a first guess of 2 index bytes
          const guess = Math.max(1, centreBytes / (w + 2));
          k0 = centreBytes / (w + varintLength(Math.ceil(numel / guess)));
        }
        for (const f of DENSITY_STEPS) add({ kind, k: kFromDensity((k0 * f) / numel, numel), values });
        break;
      }
      case 'qsgd': {
        const bucket = base.kind === 'qsgd' ? base.bucket : (spec.bucket ?? 128);
        for (let b = PLAN_LIMITS.minBits; b <= PLAN_LIMITS.maxBits; b++) add({ kind, bits: b, bucket });
        break;
      }
      default:
        break;
    }
  }
  return out;
}

/** Candidates of every layer (baseline first in each). */
export function planCandidates(spec: CandidateSpec, layout: ParameterLayout): LayerSetting[][] {
  return layout.layers.map((slot) => layerCandidates(spec, slot));
}

/** Expected bytes of every candidate of every layer (the S table). */
export function sizeTable(candidates: LayerSetting[][], layout: ParameterLayout): Float64Array[] {
  return candidates.map((cs, l) =>
    Float64Array.from(cs, (c) => expectedLayerBytes(c, layout.layers[l].shape)),
  );
}

export interface KnapsackSolution {
  /** Chosen candidate per layer. */
  choice: number[];
  bytes: number;
  /** Σ E of the choice (un-discretised). */
  error: number;
}

/**
 * Multiple-choice knapsack over discretised errors: per layer ℓ pick j minimising Σ sizes[ℓ][j] subject to
 * Σ ⌈errors[ℓ][j] / (budget/B)⌉ ≤ B, which implies Σ errors ≤ budget. Returns null when nothing fits.
 * D_ℓ[b] = min_j D_{ℓ−1}[b − e_ℓj] + s_ℓj with D_{−1}[b] = 0: the least bytes of layers 0..ℓ with discretised
 * error ≤ b. Ties keep the earlier candidate.
 */
export function solveErrorBudget(
  sizes: readonly Float64Array[],
  errors: readonly Float64Array[],
  budget: number,
  buckets = DEFAULT_BUCKETS,
): KnapsackSolution | null {
  const L = sizes.length;
  const B = buckets;
  const width = budget / B;
  const cost: Int32Array[] = errors.map((row) =>
    Int32Array.from(row, (E) => {
      if (!(E >= 0)) return E === E && E < 0 ? 0 : -1; // negative → free, NaN → never
      if (budget <= 0) return E === 0 ? 0 : -1;
      const c = Math.ceil(E / width);
      return c > B ? -1 : c;
    }),
  );
  let prev = new Float64Array(B + 1); // no layers: 0 bytes at any budget
  let cur = new Float64Array(B + 1);
  const back = new Int32Array(L * (B + 1)).fill(-1);
  for (let l = 0; l < L; l++) {
    cur.fill(Infinity);
    const s = sizes[l];
    const e = cost[l];
    const row = l * (B + 1);
    for (let j = 0; j < s.length; j++) {
      const ej = e[j];
      if (ej < 0) continue;
      const sj = s[j];
      for (let b = ej; b <= B; b++) {
        const v = prev[b - ej] + sj;
        if (v < cur[b]) {
          cur[b] = v;
          back[row + b] = j;
        }
      }
    }
    [prev, cur] = [cur, prev];
  }
  if (!(prev[B] < Infinity)) return null;
  const choice = new Array<number>(L);
  let b = B;
  let bytes = 0;
  let error = 0;
  for (let l = L - 1; l >= 0; l--) {
    const j = back[l * (B + 1) + b];
    choice[l] = j;
    b -= cost[l][j];
    bytes += sizes[l][j];
    error += errors[l][j];
  }
  return { choice, bytes, error };
}

export interface LGreCoDecision extends KnapsackSolution {
  budget: number;
  baselineBytes: number;
  baselineError: number;
  /** error / budget (the share of the error budget used). */
  budgetUsed: number;
  /** True when the DP found nothing cheaper and the baseline was kept. */
  keptBaseline: boolean;
}

/**
 * Solve L-GreCo given sizes and (robust) errors, where candidate 0 of every layer is the baseline. For α < 1
 * nothing may fit; the baseline is then returned and budgetUsed > 1 says so.
 */
export function chooseSettings(
  sizes: readonly Float64Array[],
  errors: readonly Float64Array[],
  alpha: number,
  buckets = DEFAULT_BUCKETS,
): LGreCoDecision {
  if (!(alpha > 0) || !Number.isFinite(alpha))
    throw new RangeError(`lgreco: alpha ${alpha} must be a positive number`);
  let baselineBytes = 0;
  let baselineError = 0;
  for (let l = 0; l < sizes.length; l++) {
    baselineBytes += sizes[l][0];
    baselineError += errors[l][0];
  }
  const budget = alpha * baselineError;
  const found = Number.isFinite(budget) ? solveErrorBudget(sizes, errors, budget, buckets) : null;
  const baselineFits = baselineError <= budget;
  const keepBaseline = found === null || (baselineFits && found.bytes >= baselineBytes);
  const solution: KnapsackSolution = keepBaseline
    ? { choice: sizes.map(() => 0), bytes: baselineBytes, error: baselineError }
    : found;
  return {
    ...solution,
    budget,
    baselineBytes,
    baselineError,
    budgetUsed: budget > 0 ? solution.error / budget : solution.error === 0 ? 0 : Infinity,
    keptBaseline: keepBaseline,
  };
}

/** The plan that the decision selects. */
export function planFromChoice(
  planId: string,
  candidates: LayerSetting[][],
  choice: readonly number[],
): CompressionPlan {
  return { planId, layers: candidates.map((cs, l) => cs[choice[l]]) };
}

/** Flat error-table layout: offsets[ℓ] is where layer ℓ's candidates start; offsets[L] the table length. */
export function tableOffsets(candidates: LayerSetting[][]): number[] {
  const offsets = [0];
  for (const cs of candidates) offsets.push(offsets[offsets.length - 1] + cs.length);
  return offsets;
}

/** Split a flat L × |C| table into per-layer rows. */
export function splitTable(table: Float64Array, candidates: LayerSetting[][]): Float64Array[] {
  const offsets = tableOffsets(candidates);
  return candidates.map((_, l) => table.subarray(offsets[l], offsets[l + 1]));
}

/** Re-plan schedule: first at round `warmup`, then every `window` rounds. */
export function replanDue(round: number, warmup: number, window: number): boolean {
  return round >= warmup && (round - warmup) % window === 0;
}
