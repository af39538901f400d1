/**
 * The WebAssembly SIMD backend of the kernel registry (registry.ts; contracts in types.ts): kernels for the O(n·d)
 * and O(n²·d) passes of the robust aggregation rules, generated in code (src/core/simd/simdAsm.ts)
 * and specialised per shape (number of rows, block size, rule parameters), with a JS driver that streams the
 * input through one shared linear memory in cache-sized blocks.
 *
 * Driver: for every block of B coordinates the rows are copied (memcpy) into the staging area, the kernel runs
 * on four coordinates per step (one coordinate per SIMD lane; row i of the group is one `v128.load` at an
 * immediate offset), and the block's output is copied back. The rows stay in L1/L2 for the health pass
 * ({@link dotsFn}: ⟨xᵢ, u⟩, ‖xᵢ‖², ‖u‖² of the block), so norms and cosines cost no extra trip to memory.
 * The last d mod 4 coordinates, and any block in which a kernel meets a NaN (or a non-finite centre), are
 * computed by the scalar reference code instead (scalar.ts), so every input gives exactly the result of the
 * scalar kernels in coordinatewise.ts.
 *
 * Coordinate-wise kernels ({@link CoordSpec}), per lane, bit-for-bit equal to the scalar kernels:
 * - order statistics by a comparator network ({@link selectionNetwork}, `pmin`/`pmax`, branch-free) that yields
 *   the threshold values (and their neighbouring ranks); the worker order of the scalar code ((value, worker
 *   index) order: ties go to the lower index) is reproduced by assigning ranks to equal values in worker order,
 *   with the number of equal values below the cut taken from the network when it can tell (one pass), or
 *   counted in an extra pass when it cannot (long runs of ties); without ties at a cut, plain comparisons;
 * - sums in worker order in float64 (masked values add +0), divisions as in the scalar code; the per-worker
 *   counts for the health records accumulate as SIMD masks.
 * Other kernels: the mean, Σ cₜ·x_{rowₜ} (weighted sums, averages of a selection, NNM, bucketing), centered
 * clipping, the Gram matrix in register tiles, and whole-vector norm and scaling (clip, ARC).
 *
 * Steady state allocates no O(d) memory: the staging memory, the compiled modules (cached per shape) and the
 * block views of the callers' vectors (cached per vector) are reused while n and d are unchanged.
 */
import type { Workspace } from '../util.ts';
import { selectionNetwork, type Comparator } from './networks.ts';
import { scalarCoordinates, scalarDots } from './scalar.ts';
import type { CoordSpec, Dots, KernelBackend } from './types.ts';
import {
  encodeModule,
  FnBuilder,
  instantiate,
  PAGE,
  S,
  wasmApi,
  type KernelFn,
  type WasmMemory,
} from '../../simd/simdAsm.ts';

// ------------------------------------------------------------------------------------------------------------
// Memory layout of one block (shared by the code generator and the driver).

export interface Layout {
  /** Coordinates per block (multiple of 16). */
  B: number;
  /** Bytes per row in the staging area (B·4); row i starts at i·rowBytes. */
  rowBytes: number;
  rows: number;
  /** float32 × B: the block's output. */
  out: number;
  /** float64 × B: auxiliary float64 vector (centered clipping's v). */
  vec64: number;
  /** i32x4 per row: count masks of the block. */
  cnt: number;
  /** 2 × f64x2 per row (⟨x, u⟩, ‖x‖²), then one f64x2 (‖u‖²); also centered clipping's distances. */
  dots: number;
  /** Coefficient tables (combination kernels): rows × (i32 offset) then rows + 1 f64, per output. */
  tab: number;
  /** v128 NaN flag. */
  flag: number;
  bytes: number;
}

/**
 * Block size for `rows` rows: at most 128 KB of staged float32 (L2-resident), a power of two in [256, 4096] (so
 * that the row counts of one round's rules, e.g. n and n − f, mostly share a block size and the cached block
 * views of the input vectors).
 */
export function blockSize(rows: number): number {
  let b = 4096;
  while (b > 256 && b * Math.max(1, rows) > 32768) b >>= 1;
  return b;
}

export const TAB_STRIDE = (rows: number) => 16 * Math.ceil((rows * 4 + (rows + 1) * 8) / 16);

export function layout(rows: number, tables = 1, B = blockSize(rows)): Layout {
  const rowBytes = B * 4;
  const out = rows * rowBytes;
  const vec64 = out + B * 4;
  const cnt = vec64 + B * 8;
  const dots = cnt + rows * 16;
  const tab = dots + rows * 32 + 16;
  const flag = tab + tables * TAB_STRIDE(rows);
  return { B, rowBytes, rows, out, vec64, cnt, dots, tab, flag, bytes: flag + 16 };
}

// ------------------------------------------------------------------------------------------------------------
// Code generation helpers.

/** i8x16.shuffle lanes: the two low float32 of a, then the two low float32 of b. */
const LOW_LOW = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];
/** Lanes 2, 3 of a into lanes 0, 1. */
const HIGH_TO_LOW = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];
/** The low 32 bits of each 64-bit lane of a, then of b (two i64x2 masks → one i32x4 mask). */
const NARROW = [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27];

/** Emits a comparator network on the given locals (f32x4 or f64x2 pmin/pmax). */
function emitNetwork(F: FnBuilder, net: Comparator[], regs: number[], f64: boolean): void {
  const pmin = f64 ? S.f64x2PMin : S.f32x4PMin;
  const pmax = f64 ? S.f64x2PMax : S.f32x4PMax;
  for (const [a, b] of net) {
    const ra = regs[a];
    const rb = regs[b];
    F.get(ra).get(rb).simd(pmin).get(ra).get(rb).simd(pmax).set(rb).set(ra);
  }
}

/** Positions a network reads (or that are wanted): the locals to load. */
function touched(net: Comparator[], wanted: number[]): Set<number> {
  const s = new Set(wanted);
  for (const [a, b] of net) {
    s.add(a);
    s.add(b);
  }
  return s;
}

/** Stores float64 halves lo, hi (lanes 0–1, 2–3) as four float32 at [p] + offset. */
function storeDemoted(F: FnBuilder, p: number, offset: number, lo: number, hi: number): void {
  F.get(p);
  F.get(lo).simd(S.demote).get(hi).simd(S.demote).shuffle(LOW_LOW);
  F.store(offset);
}

/** dst = float64 lanes of the float32 group at [p] + offset (half 0: lanes 0–1, half 1: lanes 2–3). */
function loadPromoted(F: FnBuilder, dst: number, p: number, offset: number, half: number): void {
  F.get(p)
    .load64Zero(offset + 8 * half)
    .simd(S.promote)
    .set(dst);
}

// ------------------------------------------------------------------------------------------------------------
// Coordinate-wise kernels.

/** Whether the kernel's count masks mark dropped (true) or kept (false) rows. */
function countsDropped(spec: CoordSpec): boolean {
  return spec.kind === 'trimmed';
}

function specKey(spec: CoordSpec): string {
  switch (spec.kind) {
    case 'median':
      return `median:${spec.lower ? 1 : 0}:${spec.window ?? 1}`;
    case 'trimmed':
      return `trimmed:${spec.t}`;
    case 'closest':
      return `closest:${spec.centre}:${spec.lower ? 1 : 0}:${spec.t}:${spec.e}`;
  }
}

/** Whether the e largest distances to the centre are found among the e smallest and e largest values. */
function mergeApplies(m: number, spec: CoordSpec & { kind: 'closest' }): boolean {
  const e = spec.e;
  if (e < 1 || 2 * e > m) return false;
  if (spec.centre === 'trimmed') return e <= spec.t + 1; // centre in [s_t, s_{m−t−1}]
  const h = m >> 1;
  const lowRank = m & 1 ? h : h - 1;
  const highRank = m & 1 ? h : spec.lower ? h - 1 : h;
  return e - 1 <= lowRank && m - e >= highRank; // centre in [s_{e−1}, s_{m−e}]
}

/**
 * Builds `run(end)`: processes the coordinate groups at byte offsets 0, 16, …, end − 16 of the block (rows
 * 0..m−1), writes the float32 output, adds count masks (−1 per counted worker and lane) and sets the NaN flag.
 *
 * Each stage picks one of three paths per group of four coordinates, from the network's order statistics and
 * before touching the rows again:
 * - no tie across a cut (the neighbouring ranks differ): one pass with plain comparisons (x ≤ T, dist < T, …);
 * - ties across a cut, but the tie block starts inside the ranks the network provides: one pass with the exact
 *   tie rule, the number of equal values to take (in worker order) known from the network;
 * - otherwise: one pass counting the values below the threshold, then the exact pass.
 */
function coordFn(m: number, L: Layout, spec: CoordSpec): FnBuilder {
  const F = new FnBuilder('run', 1);
  const end = 0;
  const p = F.i32();
  const zeroAddr = F.i32();
  const valid = F.i32();
  const RB = L.rowBytes;
  const zero = F.v128();
  const nan = F.v128();
  const x = F.v128();
  const tmp = F.v128();
  F.zero(zero).zero(nan).i32Const(0).set(p).i32Const(0).set(zeroAddr);

  const loadRow = (i: number) =>
    F.get(p)
      .load(i * RB)
      .set(x);
  const nanCheck = () => F.get(nan).get(x).get(x).simd(S.f32x4Ne).simd(S.or).set(nan);
  /** cnt[i] += mask. */
  const addCount = (i: number, mask: number) => {
    F.get(zeroAddr)
      .get(zeroAddr)
      .load(L.cnt + 16 * i)
      .get(mask);
    F.simd(S.i32x4Add).store(L.cnt + 16 * i);
  };
  const i32And = () => F.code.push(0x71);
  const i32Eqz = () => F.code.push(0x45);
  /** Pushes 1 if a < b in every lane (f32x4). */
  const allLt32 = (a: number, b: number) => F.get(a).get(b).simd(S.f32x4Lt).simd(S.i32x4AllTrue);
  /** Pushes 1 if the conjunction of `conds` (each pushing an i32) holds; 1 when there is none. */
  const all = (conds: (() => void)[]) => {
    if (conds.length === 0) F.i32Const(1);
    conds.forEach((c, i) => {
      c();
      if (i > 0) i32And();
    });
  };
  /** acc0 += lanes 0–1 of v (float64), acc1 += lanes 2–3. */
  const addHalves = (acc0: number, acc1: number, v: number) => {
    F.get(acc0).get(v).simd(S.promote).simd(S.f64x2Add).set(acc0);
    F.get(acc1).get(v).get(v).shuffle(HIGH_TO_LOW).simd(S.promote).simd(S.f64x2Add).set(acc1);
  };
  /** Pushes float64 lanes of the f32x4 local v (half 0: lanes 0–1, half 1: lanes 2–3). */
  const promoted = (v: number, half: number) => {
    F.get(v);
    if (half === 1) F.get(v).shuffle(HIGH_TO_LOW);
    F.simd(S.promote);
  };

  const h = m >> 1;
  const medianRanks = (lower: boolean) => (m & 1 ? [h] : lower ? [h - 1] : [h - 1, h]);

  // ---- the order statistics one network provides
  const wanted = new Set<number>();
  const add = (lo: number, hi: number) => {
    for (let r = Math.max(0, lo); r <= Math.min(m - 1, hi); r++) wanted.add(r);
  };
  const mr = spec.kind === 'trimmed' ? [] : medianRanks(spec.lower);
  const medianLo = spec.kind === 'median' ? Math.max(0, mr[0] - Math.max(1, spec.window ?? 1)) : 0;
  if (spec.kind === 'median') add(medianLo, mr[mr.length - 1] + 1);
  if (spec.kind === 'closest' && spec.centre === 'median') for (const r of mr) wanted.add(r);
  const trimT =
    spec.kind === 'trimmed' || (spec.kind === 'closest' && spec.centre === 'trimmed') ? spec.t : 0;
  if (trimT > 0) {
    add(0, trimT);
    add(m - 2 * trimT, m - 1);
  }
  const merge = spec.kind === 'closest' && mergeApplies(m, spec);
  // list length: the e candidates on each side plus one, to see whether the threshold is tied across the cut
  const E = spec.kind === 'closest' ? Math.min(spec.e + 1, m >> 1) : 0;
  if (merge) {
    add(0, E - 1);
    add(m - E, m - 1);
  }
  const ranks = [...wanted].sort((u, v) => u - v);
  const net = selectionNetwork(m, ranks);
  const used = touched(net, ranks);
  const regs = Array.from({ length: m }, (_, i) => (used.has(i) ? F.v128() : -1));
  const R = regs;
  /** Loads the group and runs the network: R[r] = the rank-r value for every wanted r. */
  const networkStage = () => {
    for (let i = 0; i < m; i++)
      if (regs[i] >= 0)
        F.get(p)
          .load(i * RB)
          .set(regs[i]);
    emitNetwork(F, net, regs, false);
  };

  /** Trimmed mean (t ≥ 1) into float64 halves [acc0, acc1], divided by m − 2t; counts the dropped workers. */
  const trimmedStage = (t: number, count: boolean): [number, number] => {
    const T1 = R[t - 1];
    const T2 = R[m - t];
    const drop = F.v128();
    const q1 = F.v128();
    const q2 = F.v128();
    const e = F.v128();
    const acc0 = F.v128();
    const acc1 = F.v128();
    F.zero(acc0).zero(acc1);
    const keepAndCount = (i: number) => {
      F.bin(tmp, S.andNot, x, drop);
      addHalves(acc0, acc1, tmp);
      if (count) addCount(i, drop);
    };
    F.ifElse(
      () => all([() => allLt32(T1, R[t]), () => allLt32(R[m - t - 1], T2)]),
      () => {
        // no tie across either cut: dropped = (x ≤ T1) | (x ≥ T2)
        for (let i = 0; i < m; i++) {
          loadRow(i);
          nanCheck();
          F.get(x).get(T1).simd(S.f32x4Le).get(x).get(T2).simd(S.f32x4Ge).simd(S.or).set(drop);
          keepAndCount(i);
        }
      },
      () => {
        // exact ranks: q1 = t − #less(T1), q2 = (m − t) − #less(T2); equal values in worker order are dropped
        // on the low side while q1 > 0 and on the high side once q2 ≤ 0. Values below T1 all sit in ranks
        // 0..t−2; below T2, given R[w] < T2 (w = m − 2t), all but the ties in ranks w..m−t−1.
        const w = m - 2 * t;
        F.splatI32(q1, t);
        for (let j = 0; j < t - 1; j++) F.get(q1).get(R[j]).get(T1).simd(S.f32x4Lt).simd(S.i32x4Add).set(q1);
        F.zero(q2);
        for (let j = w; j < m - t; j++) F.get(q2).get(R[j]).get(T2).simd(S.f32x4Eq).simd(S.i32x4Sub).set(q2);
        F.ifElse(
          () => {
            allLt32(R[w], T2);
            i32Eqz();
          },
          () => {
            F.splatI32(q1, t).splatI32(q2, m - t);
            for (let i = 0; i < m; i++) {
              loadRow(i);
              F.get(q1).get(x).get(T1).simd(S.f32x4Lt).simd(S.i32x4Add).set(q1);
              F.get(q2).get(x).get(T2).simd(S.f32x4Lt).simd(S.i32x4Add).set(q2);
            }
          },
        );
        for (let i = 0; i < m; i++) {
          loadRow(i);
          nanCheck();
          F.bin(e, S.f32x4Eq, x, T1);
          F.get(x).get(T1).simd(S.f32x4Lt);
          F.get(e).get(q1).get(zero).simd(S.i32x4GtS).simd(S.and);
          F.simd(S.or).set(drop);
          F.bin(q1, S.i32x4Add, q1, e);
          F.bin(e, S.f32x4Eq, x, T2);
          F.get(drop).get(x).get(T2).simd(S.f32x4Gt).simd(S.or);
          F.get(e).get(q2).get(zero).simd(S.i32x4GtS).simd(S.andNot);
          F.simd(S.or).set(drop);
          F.bin(q2, S.i32x4Add, q2, e);
          keepAndCount(i);
        }
      },
    );
    F.splatF64(tmp, m - 2 * t);
    F.bin(acc0, S.f64x2Div, acc0, tmp).bin(acc1, S.f64x2Div, acc1, tmp);
    return [acc0, acc1];
  };

  /** Sum of all rows / m in float64 halves (the t = 0 trimmed mean). */
  const plainMean = (): [number, number] => {
    const acc0 = F.v128();
    const acc1 = F.v128();
    F.zero(acc0).zero(acc1);
    for (let i = 0; i < m; i++) {
      loadRow(i);
      nanCheck();
      addHalves(acc0, acc1, x);
    }
    F.splatF64(tmp, m);
    F.bin(acc0, S.f64x2Div, acc0, tmp).bin(acc1, S.f64x2Div, acc1, tmp);
    return [acc0, acc1];
  };

  const medianStage = () => {
    const T = mr.map((r) => R[r]);
    const e = F.v128();
    const tot = F.v128();
    const out = F.v128();
    const q = mr.map(() => F.v128());
    const v = mr.map(() => F.v128());
    const noTies: (() => void)[] = [];
    for (const r of mr) {
      if (r > 0) noTies.push(() => allLt32(R[r - 1], R[r]));
      if (r < m - 1) noTies.push(() => allLt32(R[r], R[r + 1]));
    }
    F.ifElse(
      () => all(noTies),
      () => {
        // each median value occurs once: its worker is the one equal to it, and it is the output value
        for (let i = 0; i < m; i++) {
          loadRow(i);
          nanCheck();
          F.bin(tot, S.f32x4Eq, x, T[0]);
          if (T.length > 1) F.get(tot).get(x).get(T[1]).simd(S.f32x4Eq).simd(S.i32x4Add).set(tot);
          addCount(i, tot);
        }
        F.get(T[0]).set(out);
      },
      () => {
        // exact ranks: q = r − #less(T); the rank-r value is the equal value (worker order) met at q = 0.
        // #less(T_r) = lo + #{j in lo..r−1 : R[j] < T_r} when lo = 0 or R[lo] < T_r.
        const lo = medianLo;
        for (let r = 0; r < mr.length; r++) {
          F.splatI32(q[r], mr[r] - lo).zero(v[r]);
          for (let j = lo; j < mr[r]; j++) {
            F.get(q[r]).get(R[j]).get(T[r]).simd(S.f32x4Lt).simd(S.i32x4Add).set(q[r]);
          }
        }
        if (lo > 0) {
          F.ifElse(
            () => {
              allLt32(R[lo], T[0]);
              i32Eqz();
            },
            () => {
              for (let r = 0; r < mr.length; r++) F.splatI32(q[r], mr[r]);
              for (let i = 0; i < m; i++) {
                loadRow(i);
                for (let r = 0; r < mr.length; r++) {
                  F.get(q[r]).get(x).get(T[r]).simd(S.f32x4Lt).simd(S.i32x4Add).set(q[r]);
                }
              }
            },
          );
        }
        for (let i = 0; i < m; i++) {
          loadRow(i);
          nanCheck();
          F.zero(tot);
          for (let r = 0; r < mr.length; r++) {
            F.bin(e, S.f32x4Eq, x, T[r]);
            F.get(e).get(q[r]).get(zero).simd(S.i32x4Eq).simd(S.and).set(tmp);
            F.bin(q[r], S.i32x4Add, q[r], e);
            F.get(v[r]).get(x).get(tmp).simd(S.and).simd(S.or).set(v[r]);
            F.bin(tot, S.i32x4Add, tot, tmp);
          }
          addCount(i, tot);
        }
        F.get(v[0]).set(out);
        if (mr.length > 1) F.get(v[1]).set(T[1]);
      },
    );
    if (mr.length === 1) F.storeFrom(out, p, L.out);
    else {
      const half = F.v128();
      const lo = F.v128();
      const hi = F.v128();
      F.splatF64(half, 0.5);
      for (const [dst, hh] of [
        [lo, 0],
        [hi, 1],
      ]) {
        F.get(half);
        promoted(out, hh);
        promoted(T[1], hh);
        F.simd(S.f64x2Add).simd(S.f64x2Mul).set(dst);
      }
      storeDemoted(F, p, L.out, lo, hi);
    }
  };

  const closestStage = (sp: CoordSpec & { kind: 'closest' }) => {
    const c = [F.v128(), F.v128()];
    if (sp.centre === 'trimmed') {
      const [r0, r1] = sp.t > 0 ? trimmedStage(sp.t, false) : plainMean();
      F.get(r0).set(c[0]).get(r1).set(c[1]);
    } else {
      for (let i = 0; i < m; i++) {
        loadRow(i);
        nanCheck();
      }
      for (let hh = 0; hh < 2; hh++) {
        if (mr.length === 1) {
          promoted(R[mr[0]], hh);
          F.set(c[hh]);
        } else {
          F.splatF64(c[hh], 0.5);
          F.get(c[hh]);
          promoted(R[mr[0]], hh);
          promoted(R[mr[1]], hh);
          F.simd(S.f64x2Add).simd(S.f64x2Mul).set(c[hh]);
        }
      }
    }
    // a non-finite centre sends the block to the scalar code
    for (const cc of c) {
      F.bin(tmp, S.f64x2Sub, cc, cc);
      F.get(nan).get(tmp).get(tmp).simd(S.f64x2Ne).simd(S.or).set(nan);
    }
    const keep = m - sp.e;
    const acc = [F.v128(), F.v128()];
    const px = F.v128();
    const dist = F.v128();
    F.zero(acc[0]).zero(acc[1]);
    /** px = float64 of row i (half hh), dist = |px − c|. */
    const distance = (i: number, hh: number) => {
      F.get(p)
        .load64Zero(i * RB + 8 * hh)
        .simd(S.promote)
        .set(px);
      F.get(px).get(c[hh]).simd(S.f64x2Sub).simd(S.f64x2Abs).set(dist);
    };
    if (sp.e === 0) {
      F.splatI32(tmp, -1);
      for (let i = 0; i < m; i++) {
        loadRow(i);
        addHalves(acc[0], acc[1], x);
        addCount(i, tmp);
      }
    } else {
      // T[hh]: the rank-(m − e) distance (the smallest excluded one); q[hh] = (m − e) − #less(T), the number of
      // distances equal to T to keep (in worker order); `valid` when q is known before the pass
      const T = [F.v128(), F.v128()];
      const q = [F.v128(), F.v128()];
      const fast = F.i32();
      if (merge) {
        // distances of the e smallest values decrease, those of the e largest increase: the e-th largest of the
        // two sorted lists is max over j of min(A[j − 1], B[e − j − 1]). The lists extend to E values, and
        // #(dist ≥ T) counts on them when their ends are below T (and inside [s_{E−1}, s_{m−E}] ∋ c).
        const e = sp.e;
        const A = Array.from({ length: E }, () => F.v128());
        const B = Array.from({ length: E }, () => F.v128());
        const g = F.v128();
        F.i32Const(1).set(valid);
        for (let hh = 0; hh < 2; hh++) {
          for (let j = 0; j < E; j++) {
            promoted(R[j], hh);
            F.get(c[hh]).simd(S.f64x2Sub).simd(S.f64x2Abs).set(A[j]);
            promoted(R[m - 1 - j], hh);
            F.get(c[hh]).simd(S.f64x2Sub).simd(S.f64x2Abs).set(B[j]);
          }
          F.get(B[e - 1]).set(T[hh]);
          for (let j = 1; j <= e; j++) {
            if (j === e) F.get(A[e - 1]);
            else
              F.get(A[j - 1])
                .get(B[e - j - 1])
                .simd(S.f64x2PMin);
            F.get(T[hh]).simd(S.f64x2PMax).set(T[hh]);
          }
          F.zero(g);
          for (let j = 0; j < E; j++) {
            for (const list of [A, B])
              F.get(g).get(list[j]).get(T[hh]).simd(S.f64x2Ge).simd(S.i64x2Add).set(g);
          }
          // q = #(dist ≥ T) − e
          F.splatI64(tmp, -sp.e);
          F.get(tmp).get(g).simd(S.i64x2Sub).set(q[hh]);
          if (2 * E < m) {
            F.get(valid);
            promoted(R[E - 1], hh);
            F.get(c[hh]).simd(S.f64x2Le);
            promoted(R[m - E], hh);
            F.get(c[hh]).simd(S.f64x2Ge).simd(S.and);
            F.get(A[E - 1])
              .get(T[hh])
              .simd(S.f64x2Lt)
              .simd(S.and);
            F.get(B[E - 1])
              .get(T[hh])
              .simd(S.f64x2Lt)
              .simd(S.and);
            F.simd(S.i64x2AllTrue);
            i32And();
            F.set(valid);
          }
        }
        F.get(valid);
        for (let hh = 0; hh < 2; hh++) {
          F.get(q[hh]).get(zero).simd(S.i64x2Eq).simd(S.i64x2AllTrue);
          i32And();
        }
        F.set(fast);
      } else {
        // the rank-(m − e) and rank-(m − e − 1) distances per half by a float64 network; no tie at the cut when
        // they differ (then exactly m − e distances are below T)
        const net64 = selectionNetwork(m, [keep - 1, keep]);
        const used64 = touched(net64, [keep - 1, keep]);
        const regs64 = Array.from({ length: m }, (_, i) => (used64.has(i) ? F.v128() : -1));
        F.i32Const(0).set(valid).i32Const(1).set(fast);
        for (let hh = 0; hh < 2; hh++) {
          for (let i = 0; i < m; i++) {
            if (regs64[i] < 0) continue;
            distance(i, hh);
            F.get(dist).set(regs64[i]);
          }
          emitNetwork(F, net64, regs64, true);
          F.get(regs64[keep]).set(T[hh]).zero(q[hh]);
          F.get(fast)
            .get(regs64[keep - 1])
            .get(T[hh])
            .simd(S.f64x2Lt)
            .simd(S.i64x2AllTrue);
          i32And();
          F.set(fast);
        }
      }
      const k = [F.v128(), F.v128()];
      const sumKept = (hh: number) =>
        F.get(acc[hh]).get(px).get(k[hh]).simd(S.and).simd(S.f64x2Add).set(acc[hh]);
      const countKept = (i: number) => {
        F.get(k[0]).get(k[1]).shuffle(NARROW).set(tmp);
        addCount(i, tmp);
      };
      F.ifElse(
        () => F.get(fast),
        () => {
          // kept = dist < T
          for (let i = 0; i < m; i++) {
            for (let hh = 0; hh < 2; hh++) {
              distance(i, hh);
              F.bin(k[hh], S.f64x2Lt, dist, T[hh]);
              sumKept(hh);
            }
            countKept(i);
          }
        },
        () => {
          F.ifElse(
            () => {
              F.get(valid);
              i32Eqz();
            },
            () => {
              for (let hh = 0; hh < 2; hh++) F.splatI64(q[hh], keep);
              for (let i = 0; i < m; i++) {
                for (let hh = 0; hh < 2; hh++) {
                  distance(i, hh);
                  F.get(q[hh]).get(dist).get(T[hh]).simd(S.f64x2Lt).simd(S.i64x2Add).set(q[hh]);
                }
              }
            },
          );
          // exact: kept = dist < T, or dist = T while q > 0 (worker order)
          const e = F.v128();
          for (let i = 0; i < m; i++) {
            for (let hh = 0; hh < 2; hh++) {
              distance(i, hh);
              F.bin(e, S.f64x2Eq, dist, T[hh]);
              F.get(dist).get(T[hh]).simd(S.f64x2Lt);
              F.get(e).get(q[hh]).get(zero).simd(S.i64x2GtS).simd(S.and);
              F.simd(S.or).set(k[hh]);
              F.bin(q[hh], S.i64x2Add, q[hh], e);
              sumKept(hh);
            }
            countKept(i);
          }
        },
      );
    }
    F.splatF64(tmp, keep);
    F.bin(acc[0], S.f64x2Div, acc[0], tmp).bin(acc[1], S.f64x2Div, acc[1], tmp);
    storeDemoted(F, p, L.out, acc[0], acc[1]);
  };

  const body = () => {
    networkStage();
    if (spec.kind === 'trimmed') {
      const [r0, r1] = trimmedStage(spec.t, true);
      storeDemoted(F, p, L.out, r0, r1);
    } else if (spec.kind === 'median') medianStage();
    else closestStage(spec);
  };

  F.forLoop(p, end, 16, body);
  F.storeFrom(nan, zeroAddr, L.flag);
  return F;
}

/**
 * Builds `dots(end)`: per row i of the block, (⟨xᵢ, u⟩, ‖xᵢ‖²) as f64x2 partial sums at dots + 32i, and ‖u‖²
 * at dots + 32·rows (u = the block's float32 output).
 */
function dotsFn(L: Layout): FnBuilder {
  const F = new FnBuilder('dots', 1);
  const end = 0;
  const p = F.i32();
  const zeroAddr = F.i32();
  // rows in pairs (u loaded once per pair), ‖u‖² along with the first pair; 10 accumulators + 4 values
  const acc = Array.from({ length: 10 }, () => F.v128());
  const x0 = F.v128();
  const x1 = F.v128();
  const u0 = F.v128();
  const u1 = F.v128();
  const fma = (dst: number, s: number, t: number) =>
    F.get(dst).get(s).get(t).simd(S.f64x2Mul).simd(S.f64x2Add).set(dst);
  const sumStore = (a: number, b: number, addr: number) =>
    F.get(zeroAddr).get(a).get(b).simd(S.f64x2Add).store(addr);
  F.i32Const(0).set(zeroAddr);
  for (let i0 = 0; i0 < L.rows; i0 += 2) {
    const rs = i0 + 1 < L.rows ? [i0, i0 + 1] : [i0];
    const withUU = i0 === 0;
    for (const c of acc) F.zero(c);
    F.i32Const(0).set(p);
    F.forLoop(p, end, 16, () => {
      loadPromoted(F, u0, p, L.out, 0);
      loadPromoted(F, u1, p, L.out, 1);
      rs.forEach((r, t) => {
        loadPromoted(F, x0, p, r * L.rowBytes, 0);
        loadPromoted(F, x1, p, r * L.rowBytes, 1);
        fma(acc[4 * t], x0, u0);
        fma(acc[4 * t + 1], x1, u1);
        fma(acc[4 * t + 2], x0, x0);
        fma(acc[4 * t + 3], x1, x1);
      });
      if (withUU) {
        fma(acc[8], u0, u0);
        fma(acc[9], u1, u1);
      }
    });
    rs.forEach((r, t) => {
      sumStore(acc[4 * t], acc[4 * t + 1], L.dots + 32 * r);
      sumStore(acc[4 * t + 2], acc[4 * t + 3], L.dots + 32 * r + 16);
    });
    if (withUU) sumStore(acc[8], acc[9], L.dots + 32 * L.rows);
  }
  return F;
}

/**
 * Builds `comb(end, tab)`: out = s·Σ_{t<k} cₜ·x_{rowₜ} per coordinate (float64, terms in table order), with the
 * table at `tab`: k i32 row byte offsets, then (8-aligned) k float64 coefficients and the scale s. `unit`: all
 * cₜ = 1 (no multiplication; 1·x = x exactly). With `out64`, the float64 result also goes to vec64.
 */
function combFn(k: number, L: Layout, unit: boolean): FnBuilder {
  const F = new FnBuilder('comb', 2);
  const end = 0;
  const tab = 1;
  const p = F.i32();
  const a = F.i32();
  const rows = Array.from({ length: k }, () => F.i32());
  const acc0 = F.v128();
  const acc1 = F.v128();
  const h = F.v128();
  const coefOff = 8 * Math.ceil((k * 4) / 8);
  for (let t = 0; t < k; t++) {
    F.get(tab);
    F.code.push(0x28, 2, ...uleb32(4 * t)); // i32.load align=4 offset=4t
    F.set(rows[t]);
  }
  F.i32Const(0).set(p);
  F.forLoop(p, end, 16, () => {
    F.zero(acc0).zero(acc1);
    for (let t = 0; t < k; t++) {
      F.get(p).get(rows[t]).i32Add().set(a);
      for (let half = 0; half < 2; half++) {
        const acc = half === 0 ? acc0 : acc1;
        loadPromoted(F, h, a, 0, half);
        if (unit) F.bin(acc, S.f64x2Add, acc, h);
        else {
          F.get(acc)
            .get(h)
            .get(tab)
            .simd(0x0a, 3, ...uleb32(coefOff + 8 * t)); // v128.load64_splat
          F.simd(S.f64x2Mul).simd(S.f64x2Add).set(acc);
        }
      }
    }
    for (const acc of [acc0, acc1]) {
      F.get(acc)
        .get(tab)
        .simd(0x0a, 3, ...uleb32(coefOff + 8 * k))
        .simd(S.f64x2Mul)
        .set(acc);
    }
    storeDemoted(F, p, L.out, acc0, acc1);
  });
  return F;
}

/**
 * Centered clipping, two functions on rows 0..m−1 and v (float64 at vec64):
 * - `ccDist(end)`: per row, (‖xᵢ − v‖², ‖xᵢ‖²) partial sums as f64x2 at dots + 32i;
 * - `ccStep(end)`: v ← keep·v + Σᵢ cᵢ·xᵢ (worker order; keep and cᵢ at tab as float64), and the float32 output.
 */
function ccFns(m: number, L: Layout): FnBuilder[] {
  const D = new FnBuilder('ccDist', 1);
  {
    const F = D;
    const p = F.i32();
    const pv = F.i32();
    const zeroAddr = F.i32();
    const acc = [F.v128(), F.v128(), F.v128(), F.v128()];
    const x = F.v128();
    const v = F.v128();
    const t = F.v128();
    F.i32Const(0).set(zeroAddr);
    for (let i = 0; i < m; i++) {
      for (const c of acc) F.zero(c);
      F.i32Const(0).set(p).i32Const(L.vec64).set(pv);
      F.forLoop(p, 0, 16, () => {
        for (let half = 0; half < 2; half++) {
          loadPromoted(F, x, p, i * L.rowBytes, half);
          F.get(pv)
            .load(16 * half)
            .set(v);
          F.bin(t, S.f64x2Sub, x, v);
          F.get(acc[half]).get(t).get(t).simd(S.f64x2Mul).simd(S.f64x2Add).set(acc[half]);
          F.get(acc[2 + half])
            .get(x)
            .get(x)
            .simd(S.f64x2Mul)
            .simd(S.f64x2Add)
            .set(acc[2 + half]);
        }
        F.get(pv).i32Const(32).i32Add().set(pv);
      });
      F.get(zeroAddr)
        .get(acc[0])
        .get(acc[1])
        .simd(S.f64x2Add)
        .store(L.dots + 32 * i);
      F.get(zeroAddr)
        .get(acc[2])
        .get(acc[3])
        .simd(S.f64x2Add)
        .store(L.dots + 32 * i + 16);
    }
  }
  const U = new FnBuilder('ccStep', 1);
  {
    const F = U;
    const p = F.i32();
    const pv = F.i32();
    const zeroAddr = F.i32();
    const acc = [F.v128(), F.v128()];
    const x = F.v128();
    F.i32Const(0).set(zeroAddr).i32Const(0).set(p).i32Const(L.vec64).set(pv);
    F.forLoop(p, 0, 16, () => {
      for (let half = 0; half < 2; half++) {
        F.get(pv).load(16 * half);
        F.get(zeroAddr).simd(0x0a, 3, ...uleb32(L.tab)); // keep
        F.simd(S.f64x2Mul).set(acc[half]);
      }
      for (let i = 0; i < m; i++) {
        for (let half = 0; half < 2; half++) {
          loadPromoted(F, x, p, i * L.rowBytes, half);
          F.get(acc[half])
            .get(x)
            .get(zeroAddr)
            .simd(0x0a, 3, ...uleb32(L.tab + 8 + 8 * i));
          F.simd(S.f64x2Mul).simd(S.f64x2Add).set(acc[half]);
        }
      }
      for (let half = 0; half < 2; half++)
        F.get(pv)
          .get(acc[half])
          .store(16 * half);
      storeDemoted(F, p, L.out, acc[0], acc[1]);
      F.get(pv).i32Const(32).i32Add().set(pv);
    });
  }
  return [D, U];
}

/**
 * Builds `gram(end)`: adds ⟨xᵢ, xⱼ⟩ over the block (j ≥ i) to the float64 n×n matrix at `tab` (row-major), in
 * register tiles of up to a×b pairs (one f64x2 accumulator per pair, both halves of a group into it).
 */
function gramFn(n: number, L: Layout, a: number, b: number): FnBuilder {
  const F = new FnBuilder('gram', 1);
  const p = F.i32();
  const zeroAddr = F.i32();
  F.i32Const(0).set(zeroAddr);
  const maxRegs = a * b + a + b;
  const acc = Array.from({ length: a * b }, () => F.v128());
  const vals = Array.from({ length: maxRegs - a * b }, () => F.v128());
  for (let i0 = 0; i0 < n; i0 += a) {
    const I = Array.from({ length: Math.min(a, n - i0) }, (_, t) => i0 + t);
    for (let j0 = 0; j0 < n; j0 += b) {
      const J = Array.from({ length: Math.min(b, n - j0) }, (_, t) => j0 + t);
      const pairs: [number, number][] = [];
      for (const i of I) for (const j of J) if (j >= i) pairs.push([i, j]);
      if (pairs.length === 0) continue;
      const rowsUsed = [...new Set(pairs.flat())];
      const reg = new Map(rowsUsed.map((r, t) => [r, vals[t]]));
      for (let t = 0; t < pairs.length; t++) F.zero(acc[t]);
      F.i32Const(0).set(p);
      F.forLoop(p, 0, 16, () => {
        for (let half = 0; half < 2; half++) {
          for (const r of rowsUsed)
            F.get(p)
              .load64Zero(r * L.rowBytes + 8 * half)
              .simd(S.promote)
              .set(reg.get(r)!);
          pairs.forEach(([i, j], t) => {
            F.get(acc[t]).get(reg.get(i)!).get(reg.get(j)!).simd(S.f64x2Mul).simd(S.f64x2Add).set(acc[t]);
          });
        }
      });
      pairs.forEach(([i, j], t) => {
        // G[i, j] += lane 0 + lane 1
        const off = L.tab + 8 * (i * n + j);
        F.get(zeroAddr).get(zeroAddr);
        F.code.push(0x2b, 3, ...uleb32(off)); // f64.load
        F.get(acc[t]).simd(0x21, 0).get(acc[t]).simd(0x21, 1);
        F.code.push(0xa0, 0xa0); // f64.add, f64.add
        F.code.push(0x39, 3, ...uleb32(off)); // f64.store
      });
    }
  }
  return F;
}

/** Mean of rows 0..m−1: out = (Σᵢ xᵢ)·(1/m), worker order, float64. */
function meanFn(m: number, L: Layout): FnBuilder {
  const F = new FnBuilder('mean', 1);
  const p = F.i32();
  const acc0 = F.v128();
  const acc1 = F.v128();
  const h = F.v128();
  const inv = F.v128();
  F.splatF64(inv, 1 / m)
    .i32Const(0)
    .set(p);
  F.forLoop(p, 0, 16, () => {
    F.zero(acc0).zero(acc1);
    for (let i = 0; i < m; i++) {
      loadPromoted(F, h, p, i * L.rowBytes, 0);
      F.bin(acc0, S.f64x2Add, acc0, h);
      loadPromoted(F, h, p, i * L.rowBytes, 1);
      F.bin(acc1, S.f64x2Add, acc1, h);
    }
    F.bin(acc0, S.f64x2Mul, acc0, inv).bin(acc1, S.f64x2Mul, acc1, inv);
    storeDemoted(F, p, L.out, acc0, acc1);
  });
  return F;
}

/** Whole-vector kernels on the float32 data at VEC_DATA (the vector staged by {@link stageVector}). */
const VEC_RES = 0;
const VEC_DATA = 64;

/**
 * - `sumsq(end)`: Σ x² over the staged float32 bytes [VEC_DATA, VEC_DATA + end) (end a multiple of 32), float64,
 *   four f64x2 accumulators; the f64x2 partial sum goes to VEC_RES.
 * - `scale(end)`: x ← float32(x·s) in place (float64 product, s at VEC_RES + 16).
 */
function vecFns(): FnBuilder[] {
  const N = new FnBuilder('sumsq', 1);
  {
    const F = N;
    const p = F.i32();
    const e = F.i32();
    const acc = [F.v128(), F.v128(), F.v128(), F.v128()];
    const h = F.v128();
    for (const a of acc) F.zero(a);
    F.i32Const(VEC_DATA).set(p).get(0).i32Const(VEC_DATA).i32Add().set(e);
    F.forLoop(p, e, 32, () => {
      for (let q = 0; q < 4; q++) {
        F.get(p)
          .load64Zero(8 * q)
          .simd(S.promote)
          .set(h);
        F.get(acc[q]).get(h).get(h).simd(S.f64x2Mul).simd(S.f64x2Add).set(acc[q]);
      }
    });
    F.i32Const(VEC_RES);
    F.get(acc[0]).get(acc[1]).simd(S.f64x2Add).get(acc[2]).get(acc[3]).simd(S.f64x2Add).simd(S.f64x2Add);
    F.store(0);
  }
  const C = new FnBuilder('scale', 1);
  {
    const F = C;
    const p = F.i32();
    const e = F.i32();
    const sc = F.v128();
    const x = F.v128();
    F.i32Const(VEC_RES)
      .simd(0x0a, 3, ...uleb32(16))
      .set(sc); // v128.load64_splat
    F.i32Const(VEC_DATA).set(p).get(0).i32Const(VEC_DATA).i32Add().set(e);
    F.forLoop(p, e, 16, () => {
      F.get(p).load(0).set(x);
      F.get(p);
      F.get(x).simd(S.promote).get(sc).simd(S.f64x2Mul).simd(S.demote);
      F.get(x).get(x).shuffle(HIGH_TO_LOW).simd(S.promote).get(sc).simd(S.f64x2Mul).simd(S.demote);
      F.shuffle(LOW_LOW).store(0);
    });
  }
  return [N, C];
}

function uleb32(v: number): number[] {
  const out: number[] = [];
  let x = v >>> 0;
  do {
    let byte = x & 0x7f;
    x >>>= 7;
    if (x !== 0) byte |= 0x80;
    out.push(byte);
  } while (x !== 0);
  return out;
}

// ------------------------------------------------------------------------------------------------------------
// Engine: shared memory, module cache, views.

const MAX_MODULES = 64;

type Typed = Float32Array | Float64Array;

/**
 * Block views of caller-owned vectors (x.subarray(k0, k0 + B) for every block below `end`), cached per vector so
 * that steady-state rounds over the same buffers allocate nothing.
 */
const viewCache = new WeakMap<Typed, { B: number; end: number; views: Typed[] }>();

function blockViews<T extends Typed>(x: T, B: number, end: number): T[] {
  let c = viewCache.get(x);
  if (c === undefined || c.B !== B || c.end !== end) {
    const views: Typed[] = [];
    for (let k0 = 0; k0 < end; k0 += B) views.push(x.subarray(k0, Math.min(k0 + B, end)));
    c = { B, end, views };
    viewCache.set(x, c);
  }
  return c.views as T[];
}

class Engine {
  f32: Float32Array;
  f64: Float64Array;
  i32: Int32Array;
  private readonly modules = new Map<string, Record<string, KernelFn>>();
  /** Views of the memory (keyed by element offset·2¹³ + length), dropped when the memory grows. */
  private views32 = new Map<number, Float32Array>();
  private views64 = new Map<number, Float64Array>();

  constructor(readonly memory: WasmMemory) {
    this.f32 = new Float32Array(memory.buffer);
    this.f64 = new Float64Array(memory.buffer);
    this.i32 = new Int32Array(memory.buffer);
  }

  /** Grows the memory to at least `bytes` (refreshing the views). */
  reserve(bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (have < bytes) {
      this.memory.grow(Math.ceil((bytes - have) / PAGE));
      this.f32 = new Float32Array(this.memory.buffer);
      this.f64 = new Float64Array(this.memory.buffer);
      this.i32 = new Int32Array(this.memory.buffer);
      this.views32 = new Map();
      this.views64 = new Map();
    }
  }

  /** f32[offset, offset + len) as a cached view (len < 8192). */
  f32View(offset: number, len: number): Float32Array {
    const key = offset * 8192 + len;
    let v = this.views32.get(key);
    if (v === undefined) {
      v = this.f32.subarray(offset, offset + len);
      this.views32.set(key, v);
    }
    return v;
  }

  f64View(offset: number, len: number): Float64Array {
    const key = offset * 8192 + len;
    let v = this.views64.get(key);
    if (v === undefined) {
      v = this.f64.subarray(offset, offset + len);
      this.views64.set(key, v);
    }
    return v;
  }

  /** The exports of the module `key`, built by `build` on first use (null if the runtime rejects it). */
  module(key: string, bytes: number, build: () => FnBuilder[]): Record<string, KernelFn> | null {
    this.reserve(bytes);
    let m = this.modules.get(key);
    if (m === undefined) {
      const inst = instantiate(encodeModule(build(), Math.ceil(bytes / PAGE)), this.memory);
      if (inst === null) return null;
      if (this.modules.size >= MAX_MODULES) this.modules.delete(this.modules.keys().next().value as string);
      this.modules.set(key, inst);
      m = inst;
    } else {
      // keep recently used modules at the end (least recently used evicted first)
      this.modules.delete(key);
      this.modules.set(key, m);
    }
    return m;
  }

  /** Copies block `k0 / B` (blocks cover [0, end)) of rows 0..count−1 into the staging area. */
  stage(rows: readonly Float32Array[], count: number, L: Layout, k0: number, end: number): void {
    const stride = L.B;
    const b = k0 / L.B;
    for (let i = 0; i < count; i++) this.f32.set(blockViews(rows[i], L.B, end)[b], i * stride);
  }
}

let engine: Engine | null | undefined;

function loadEngine(): Engine | null {
  if (engine !== undefined) return engine;
  engine = null;
  const api = wasmApi();
  if (api === undefined) return null;
  try {
    const e = new Engine(new api.Memory({ initial: 1 }));
    // probe: a one-group median of 3 rows must compile, validate and give the right value
    const L = layout(3);
    const mod = e.module(`probe`, L.bytes, () => [coordFn(3, L, { kind: 'median', lower: false })]);
    if (mod === null) return null;
    e.f32.fill(0, 0, L.bytes / 4);
    e.f32.set([3, 1, 2, 4], 0);
    e.f32.set([1, 2, 3, 4], L.B);
    e.f32.set([2, 3, 1, 4], 2 * L.B);
    mod.run(16);
    const out = e.f32.subarray(L.out / 4, L.out / 4 + 4);
    if (out[0] === 2 && out[1] === 2 && out[2] === 2 && out[3] === 4) engine = e;
  } catch {
    engine = null;
  }
  return engine;
}

/** Whether WebAssembly SIMD is available and the kernels compile and pass their probe. */
export function simdAvailable(): boolean {
  return loadEngine() !== null;
}

function activeEngine(): Engine | null {
  return loadEngine();
}

// ------------------------------------------------------------------------------------------------------------
// Drivers.

/** Whole-vector kernels run in their own memory (the vector stays staged between the two calls of clip). */
let vecEngine: Engine | null | undefined;
/** The vector last staged by {@link stagedNormSq}. */
let staged: Float32Array | null = null;

function vecKernels(d: number): { e: Engine; mod: Record<string, KernelFn> } | null {
  if (activeEngine() === null) return null;
  if (vecEngine === undefined) {
    const api = wasmApi();
    vecEngine = api === undefined ? null : new Engine(new api.Memory({ initial: 1 }));
  }
  if (vecEngine === null) return null;
  const mod = vecEngine.module('vec', VEC_DATA + 4 * d + 64, vecFns);
  return mod === null ? null : { e: vecEngine, mod };
}

/**
 * ‖x‖² in float64 (SIMD; x is copied once into a staging area, where it stays for {@link scaleVector}); null
 * when the kernels are off.
 */
export function stagedNormSq(x: Float32Array): number | null {
  const d = x.length;
  const k = vecKernels(d);
  if (k === null) return null;
  k.e.f32.set(x, VEC_DATA / 4);
  staged = x;
  const dSimd = d - (d % 8);
  k.mod.sumsq(dSimd * 4);
  let s = k.e.f64[VEC_RES / 8] + k.e.f64[VEC_RES / 8 + 1];
  for (let q = dSimd; q < d; q++) s += x[q] * x[q];
  return s;
}

/**
 * y = float32(x·scale) for every coordinate (float64 products, as the scalar loop), SIMD. With `reuseStaged`,
 * x must be the vector of the last {@link stagedNormSq} call, unchanged since (it is not copied again).
 * Returns false when the kernels are off.
 */
export function scaleVector(x: Float32Array, scale: number, y: Float32Array, reuseStaged = false): boolean {
  const d = x.length;
  const k = vecKernels(d);
  if (k === null) return false;
  const { e, mod } = k;
  if (!(reuseStaged && staged === x)) e.f32.set(x, VEC_DATA / 4);
  staged = null;
  e.f64[VEC_RES / 8 + 2] = scale;
  const dSimd = d - (d % 4);
  mod.scale(dSimd * 4);
  for (let k0 = 0; k0 < dSimd; k0 += 4096) {
    const len = Math.min(4096, dSimd - k0);
    y.set(e.f32View(VEC_DATA / 4 + k0, len), k0);
  }
  for (let q = dSimd; q < d; q++) y[q] = x[q] * scale;
  return true;
}

/** Reads the block's dots (written by `dots`) into the totals. */
function collectDots(e: Engine, L: Layout, count: number, dots: Dots): void {
  const base = L.dots / 8;
  const f64 = e.f64;
  for (let i = 0; i < count; i++) {
    const o = base + 4 * i;
    dots.xu[i] += f64[o] + f64[o + 1];
    dots.xx[i] += f64[o + 2] + f64[o + 3];
  }
  const o = base + 4 * count;
  dots.uu += f64[o] + f64[o + 1];
}

/**
 * Coordinate-wise rule over `rows` (all `rows.length` rows staged; the kernel uses rows 0..m−1, the health dots
 * cover all). Writes update[k] for every k, adds to counts[i] (row order) the number of coordinates in which
 * row i was used (kept), and fills `dots` when given. `scalar(k0, k1)` must compute update[k] and the counts for
 * coordinates [k0, k1) with the reference code. Returns false (and does nothing) when the SIMD kernels are off.
 */
export function runCoordinatewise(
  rows: readonly Float32Array[],
  m: number,
  spec: CoordSpec,
  update: Float32Array,
  counts: Float64Array,
  dots: Dots | null,
  scalar: (k0: number, k1: number) => void,
): boolean {
  const e = activeEngine();
  if (e === null) return false;
  const count = rows.length;
  const d = update.length;
  const L = layout(count);
  const mod = e.module(`cw:${m}:${count}:${L.B}:${specKey(spec)}`, L.bytes, () => [
    coordFn(m, L, spec),
    dotsFn(L),
  ]);
  if (mod === null) return false;
  const run = mod.run;
  const dotsK = mod.dots;
  const dropped = countsDropped(spec);
  const cntBase = L.cnt / 4;
  const flagBase = L.flag / 4;
  const outBase = L.out / 4;
  const dSimd = d - (d % 4);
  for (let k0 = 0; k0 < dSimd; k0 += L.B) {
    const len = Math.min(L.B, dSimd - k0);
    e.stage(rows, count, L, k0, dSimd);
    const i32 = e.i32;
    i32.fill(0, cntBase, cntBase + 4 * m);
    run(len * 4);
    if ((i32[flagBase] | i32[flagBase + 1] | i32[flagBase + 2] | i32[flagBase + 3]) !== 0) {
      scalar(k0, k0 + len);
      if (dots) scalarDots(rows, count, update, k0, k0 + len, dots);
      continue;
    }
    for (let i = 0; i < m; i++) {
      const o = cntBase + 4 * i;
      const s = -(i32[o] + i32[o + 1] + i32[o + 2] + i32[o + 3]);
      counts[i] += dropped ? len - s : s;
    }
    if (dots) {
      dotsK(len * 4);
      collectDots(e, L, count, dots);
    }
    update.set(e.f32View(outBase, len), k0);
  }
  if (dSimd < d) {
    scalar(dSimd, d);
    if (dots) scalarDots(rows, count, update, dSimd, d, dots);
  }
  return true;
}

/**
 * Register tile (rows × columns) of the Gram kernel; every pair has its own accumulator, so the tile does not
 * change the sums.
 */
const GRAM_TILE: [number, number] = [4, 4];

/** Coordinates per block of the Gram kernel (n·8 KB of staged float32). */
export const GRAM_BLOCK = 2048;

/**
 * Gram matrix R = [⟨xᵢ, xⱼ⟩] (row-major n×n float64, exactly symmetric) with the SIMD tile kernel; false when
 * WebAssembly SIMD is unavailable. Summation order, fixed: per block of {@link GRAM_BLOCK} coordinates (the last
 * one zero-padded to a multiple of 4) and pair (i, j), two float64 lanes sum the products of coordinates ≡ 0, 2
 * and ≡ 1, 3 (mod 4) in coordinate order; R[i, j] += lane₀ + lane₁ block after block. Products of float32 are
 * exact in float64, so equal vectors give equal entries.
 */
export function runGram(rows: readonly Float32Array[], gram: Float64Array): boolean {
  const e = activeEngine();
  if (e === null) return false;
  const n = rows.length;
  const d = n > 0 ? rows[0].length : 0;
  const [a, b] = GRAM_TILE;
  const L0 = layout(n, 1, GRAM_BLOCK);
  const L = { ...L0, flag: L0.tab + 8 * n * n, bytes: L0.tab + 8 * n * n + 16 };
  const mod = e.module(`gram:${n}:${L.B}:${a}x${b}`, L.bytes, () => [gramFn(n, L, a, b)]);
  if (mod === null) return false;
  const g = L.tab / 8;
  e.f64.fill(0, g, g + n * n);
  for (let k0 = 0; k0 < d; k0 += L.B) {
    const len = Math.min(L.B, d - k0);
    const padded = (len + 3) & ~3;
    const f32 = e.f32;
    for (let i = 0; i < n; i++) {
      const base = i * L.B;
      f32.set(rows[i].subarray(k0, k0 + len), base);
      f32.fill(0, base + len, base + padded);
    }
    mod.gram(padded * 4);
  }
  const f64 = e.f64;
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      const s = f64[g + i * n + j];
      gram[i * n + j] = s;
      gram[j * n + i] = s;
    }
  }
  return true;
}

/** Mean of `rows` into `update` (float64 sums in row order, times 1/n), with the health dots. */
export function runMean(rows: readonly Float32Array[], update: Float32Array, dots: Dots): boolean {
  const e = activeEngine();
  if (e === null) return false;
  const n = rows.length;
  const d = update.length;
  const L = layout(n);
  const mod = e.module(`mean:${n}:${L.B}`, L.bytes, () => [meanFn(n, L), dotsFn(L)]);
  if (mod === null) return false;
  const outBase = L.out / 4;
  const dSimd = d - (d % 4);
  for (let k0 = 0; k0 < dSimd; k0 += L.B) {
    const len = Math.min(L.B, dSimd - k0);
    e.stage(rows, n, L, k0, dSimd);
    mod.mean(len * 4);
    mod.dots(len * 4);
    collectDots(e, L, n, dots);
    update.set(e.f32View(outBase, len), k0);
  }
  if (dSimd < d) {
    const inv = 1 / n;
    for (let k = dSimd; k < d; k++) {
      let acc = 0;
      for (let i = 0; i < n; i++) acc += rows[i][k];
      update[k] = acc * inv;
    }
    scalarDots(rows, n, update, dSimd, d, dots);
  }
  return true;
}

/**
 * out[k] = scale·Σ_{t<k} coef[t]·terms[t][k] for several outputs at once: `outputs[o]` lists (as indexes into
 * `rows`) the terms of output o in summation order, `coefs[o]` their coefficients (null: all 1), `scales[o]`
 * the final factor. Float64 accumulation in term order, float32 results in `outs[o]`. All outputs must have the
 * same number of terms. Returns false when the SIMD kernels are off.
 */
export function runCombinations(
  rows: readonly Float32Array[],
  outputs: readonly ArrayLike<number>[],
  coefs: readonly (ArrayLike<number> | null)[],
  scales: ArrayLike<number>,
  outs: readonly Float32Array[],
): boolean {
  const e = activeEngine();
  if (e === null || outputs.length === 0) return false;
  const count = rows.length;
  const k = outputs[0].length;
  if (k === 0 || outputs.some((o) => o.length !== k)) return false;
  const unit = coefs.every((c) => c === null);
  const d = outs[0].length;
  const L = layout(count, outputs.length);
  const mod = e.module(`comb:${count}:${k}:${L.B}:${unit ? 1 : 0}`, L.bytes, () => [combFn(k, L, unit)]);
  if (mod === null) return false;
  // tables: row byte offsets, coefficients, scale
  const stride = TAB_STRIDE(count);
  const coefOff = 8 * Math.ceil((k * 4) / 8);
  for (let o = 0; o < outputs.length; o++) {
    const base = L.tab + o * stride;
    for (let t = 0; t < k; t++) e.i32[base / 4 + t] = outputs[o][t] * L.rowBytes;
    const c = coefs[o];
    for (let t = 0; t < k; t++) e.f64[(base + coefOff) / 8 + t] = c === null ? 1 : c[t];
    e.f64[(base + coefOff) / 8 + k] = scales[o];
  }
  const outBase = L.out / 4;
  const dSimd = d - (d % 4);
  for (let k0 = 0; k0 < dSimd; k0 += L.B) {
    const len = Math.min(L.B, dSimd - k0);
    e.stage(rows, count, L, k0, dSimd);
    for (let o = 0; o < outputs.length; o++) {
      mod.comb(len * 4, L.tab + o * stride);
      outs[o].set(e.f32View(outBase, len), k0);
    }
  }
  for (let o = 0; o < outputs.length; o++) {
    const terms = outputs[o];
    const c = coefs[o];
    const s = scales[o];
    const y = outs[o];
    for (let q = dSimd; q < d; q++) {
      let acc = 0;
      for (let t = 0; t < k; t++) acc += (c === null ? 1 : c[t]) * rows[terms[t]][q];
      y[q] = acc * s;
    }
  }
  return true;
}

/**
 * Centered clipping on the SIMD kernels: L iterations of v ← keep·v + Σᵢ cᵢ·xᵢ with cᵢ = min(1, τ/‖xᵢ − v‖)/n
 * (see centeredClipping.ts), v float64 (updated in place), update = float32(v). Returns the last clipping factors
 * (`clip`), the coefficients (`w`, as the scalar code), the previous-output weight and the health dots, or null
 * when the kernels are off.
 */
export function runCenteredClipping(
  rows: readonly Float32Array[],
  v: Float64Array,
  tau: number,
  iterations: number,
  update: Float32Array,
  clip: Float64Array,
  w: Float64Array,
  dots: Dots,
): number | null {
  const e = activeEngine();
  if (e === null || iterations < 1) return null;
  const n = rows.length;
  const d = update.length;
  const L = layout(n);
  const mod = e.module(`cc:${n}:${L.B}`, L.bytes, () => [...ccFns(n, L), dotsFn(L)]);
  if (mod === null) return null;
  const dSimd = d - (d % 4);
  const dist = new Float64Array(n);
  const invN = 1 / n;
  let a0 = 1;
  const vBase = L.vec64 / 8;
  const outBase = L.out / 4;
  const tabBase = L.tab / 8;
  const dotsBase = L.dots / 8;
  for (let l = 0; l < iterations; l++) {
    const last = l === iterations - 1;
    dist.fill(0);
    // pass 1: distances to v (and the norms, in the last iteration)
    for (let k0 = 0; k0 < dSimd; k0 += L.B) {
      const len = Math.min(L.B, dSimd - k0);
      e.stage(rows, n, L, k0, dSimd);
      e.f64.set(blockViews(v, L.B, dSimd)[k0 / L.B], vBase);
      mod.ccDist(len * 4);
      const f64 = e.f64;
      for (let i = 0; i < n; i++) {
        const o = dotsBase + 4 * i;
        dist[i] += f64[o] + f64[o + 1];
        if (last) dots.xx[i] += f64[o + 2] + f64[o + 3];
      }
    }
    for (let i = 0; i < n; i++) {
      const x = rows[i];
      let s = 0;
      let q = 0;
      for (let k = dSimd; k < d; k++) {
        const diff = x[k] - v[k];
        s += diff * diff;
        q += x[k] * x[k];
      }
      dist[i] += s;
      if (last) dots.xx[i] += q;
    }
    let sumC = 0;
    for (let i = 0; i < n; i++) {
      const dd = Math.sqrt(dist[i]);
      clip[i] = dd > tau ? tau / dd : 1;
      sumC += clip[i];
    }
    const keep = 1 - sumC * invN;
    // pass 2: v ← keep·v + Σ cᵢ xᵢ (and, in the last iteration, the output and the health dots)
    e.f64[tabBase] = keep;
    for (let i = 0; i < n; i++) e.f64[tabBase + 1 + i] = clip[i] * invN;
    for (let k0 = 0; k0 < dSimd; k0 += L.B) {
      const len = Math.min(L.B, dSimd - k0);
      e.stage(rows, n, L, k0, dSimd);
      e.f64.set(blockViews(v, L.B, dSimd)[k0 / L.B], vBase);
      mod.ccStep(len * 4);
      v.set(e.f64View(vBase, len), k0);
      if (last) {
        update.set(e.f32View(outBase, len), k0);
        mod.dots(len * 4);
        const f64 = e.f64;
        for (let i = 0; i < n; i++) dots.xu[i] += f64[dotsBase + 4 * i] + f64[dotsBase + 4 * i + 1];
        dots.uu += f64[dotsBase + 4 * n] + f64[dotsBase + 4 * n + 1];
      }
    }
    for (let k = dSimd; k < d; k++) v[k] *= keep;
    for (let i = 0; i < n; i++) {
      const ci = clip[i] * invN;
      const x = rows[i];
      for (let k = dSimd; k < d; k++) v[k] += ci * x[k];
      w[i] = w[i] * keep + ci;
    }
    a0 *= keep;
  }
  for (let k = dSimd; k < d; k++) update[k] = v[k];
  for (let i = 0; i < n; i++) {
    const x = rows[i];
    let xu = 0;
    for (let k = dSimd; k < d; k++) xu += x[k] * update[k];
    dots.xu[i] += xu;
  }
  let uu = 0;
  for (let k = dSimd; k < d; k++) uu += update[k] * update[k];
  dots.uu += uu;
  return a0;
}

/**
 * The WebAssembly SIMD backend. Its coordinate-wise driver hands the last d mod 4 coordinates and every block
 * that holds a NaN to the scalar reference code, so the two backends give the same bits.
 */
export const simdBackend: KernelBackend = {
  name: 'simd',
  available: simdAvailable,
  kernels: {
    gram: runGram,
    coordinatewise: (rows, m, spec, update, counts, dots, ws: Workspace) =>
      runCoordinatewise(rows, m, spec, update, counts, dots, (k0, k1) =>
        scalarCoordinates(rows, m, spec, update, counts, k0, k1, ws),
      ),
    mean: (rows, update, dots) => runMean(rows, update, dots),
    combinations: (rows, outputs, coefs, scales, outs) => runCombinations(rows, outputs, coefs, scales, outs),
    centeredClipping: runCenteredClipping,
    normSq: stagedNormSq,
    scale: scaleVector,
  },
};
