/**
 * Property tests (fast-check, small sizes): permutation invariance, translation equivariance and bounded output
 * under f arbitrarily large inputs.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { Rng } from '../../../src/core/random.ts';
import { expectClose, gaussian, norm2, normInf, run } from './helpers.ts';

const RUNS = 50;

interface RuleCase {
  rule: string;
  options: Record<string, unknown>;
  /** Largest f the rule accepts for n workers (−1: none). */
  maxF: (n: number) => number;
}

const twoF = (n: number) => Math.floor((n - 1) / 2); // 2f < n
const krumF = (n: number) => Math.floor((n - 3) / 2); // n > 2f + 2
const bulyanF = (n: number) => Math.floor((n - 3) / 4); // n ≥ 4f + 3
const anyF = (n: number) => Math.floor((n - 1) / 2);

const ALL: RuleCase[] = [
  { rule: 'mean', options: {}, maxF: anyF },
  { rule: 'median', options: {}, maxF: twoF },
  { rule: 'median', options: { compat: 'garfield' }, maxF: twoF },
  { rule: 'trimmedMean', options: {}, maxF: twoF },
  { rule: 'krum', options: {}, maxF: krumF },
  { rule: 'krum', options: { compat: 'byzfl' }, maxF: twoF },
  { rule: 'krum', options: { compat: 'garfield' }, maxF: krumF },
  { rule: 'multiKrum', options: {}, maxF: krumF },
  { rule: 'multiKrum', options: { compat: 'garfield' }, maxF: krumF },
  { rule: 'bulyan', options: {}, maxF: bulyanF },
  { rule: 'bulyan', options: { compat: 'garfield' }, maxF: bulyanF },
  { rule: 'geometricMedian', options: {}, maxF: anyF },
  { rule: 'geometricMedian', options: { compat: 'byzfl' }, maxF: anyF },
  { rule: 'centeredClipping', options: { tau: 1, L: 3 }, maxF: anyF },
  { rule: 'meamed', options: {}, maxF: twoF },
  { rule: 'phocas', options: {}, maxF: twoF },
  { rule: 'mda', options: {}, maxF: twoF },
];

const label = (c: RuleCase) =>
  `${c.rule}${Object.keys(c.options).length ? ' ' + JSON.stringify(c.options) : ''}`;

/** n in [nMin, 15] with maxF(n) ≥ 0, f in [0, maxF(n)], d in [1, 20], a data seed. */
function sizes(c: RuleCase, nMax = 15) {
  let nMin = 1;
  while (c.maxF(nMin) < 0) nMin++;
  return fc
    .record({
      n: fc.integer({ min: nMin, max: nMax }),
      d: fc.integer({ min: 1, max: 20 }),
      fRaw: fc.nat(),
      seed: fc.integer({ min: 0, max: 0x7fffffff }),
    })
    .map(({ n, d, fRaw, seed }) => ({ n, d, f: fRaw % (c.maxF(n) + 1), seed }));
}

/** Whether two workers hold exactly the same value in some coordinate (float32 draws can collide). */
function hasEqualValues(x: Float32Array[]): boolean {
  const d = x[0]?.length ?? 0;
  for (let k = 0; k < d; k++) if (new Set(x.map((v) => v[k])).size < x.length) return true;
  return false;
}

describe('aggregation properties: permutation invariance of the update', () => {
  for (const c of ALL) {
    it(label(c), () => {
      fc.assert(
        fc.property(sizes(c), fc.integer({ min: 0, max: 0x7fffffff }), ({ n, d, f, seed }, permSeed) => {
          const x = gaussian(seed, n, d);
          const perm = new Rng(permSeed).shuffle(Array.from({ length: n }, (_, i) => i));
          const a = run(c.rule, x, f, c.options);
          const b = run(
            c.rule,
            perm.map((i) => x[i]),
            f,
            c.options,
          );
          // combinatorial rules (Krum family, MDA) legitimately depend on the order when a tie is broken by index
          fc.pre(!a.diagnostics?.tieBroken && !b.diagnostics?.tieBroken);
          // absolute floor for outputs that cancel to ~0: 1e-6 of the input scale
          expectClose(b.update, a.update, 1e-5, '', 1e-6 * Math.max(...x.map((v) => normInf(v))));
          // health follows the worker, unless two workers hold the same value in a coordinate: then which of
          // them a coordinate-wise rule counts as selected is decided by index (the update is the same)
          if (hasEqualValues(x)) return;
          perm.forEach((i, t) => {
            expect(b.workers[t].included).to.equal(a.workers[i].included);
            expect(b.workers[t].trust).to.be.closeTo(a.workers[i].trust, 1e-6);
          });
        }),
        { numRuns: RUNS },
      );
    });
  }
});

describe('aggregation properties: translation equivariance', () => {
  // Phocas and garfield Bulyan are equivariant too, but compare values with an inexact average (trimmed mean,
  // Multi-Krum rows): on grid data an exact tie may then break differently after a shift, so they are left out.
  const equivariant = ALL.filter((c) => {
    if (c.rule === 'phocas' || (c.rule === 'bulyan' && c.options.compat === 'garfield')) return false;
    if (c.rule === 'geometricMedian') return c.options.compat === undefined;
    return c.rule !== 'centeredClipping';
  });
  for (const c of equivariant) {
    it(label(c), () => {
      fc.assert(
        fc.property(
          sizes(c),
          fc.array(fc.integer({ min: -64, max: 64 }), { minLength: 20, maxLength: 20 }),
          (s, shift) => {
            // data on a 1/64 grid and integer shifts: x + t is exact in float32, distances exact in float64
            const x = gaussian(s.seed, s.n, s.d).map((v) => v.map((e) => Math.round(e * 64) / 64));
            const t = Float32Array.from(shift.slice(0, s.d));
            const shifted = x.map((v) => v.map((e, k) => e + t[k]));
            const a = run(c.rule, x, s.f, c.options).update;
            const b = run(c.rule, shifted, s.f, c.options).update;
            const expected = Array.from(a, (e, k) => e + t[k]);
            const scale = Math.max(1, ...expected.map(Math.abs));
            b.forEach((e, k) => expect(Math.abs(e - expected[k])).to.be.at.most(2e-6 * scale));
          },
        ),
        { numRuns: RUNS },
      );
    });
  }
});

describe('aggregation properties: bounded output when f inputs are arbitrarily large', () => {
  const robust = ALL.filter((c) => c.rule !== 'mean');
  for (const c of robust) {
    it(label(c), () => {
      fc.assert(
        fc.property(
          sizes(c).filter((s) => s.f >= 1),
          fc.integer({ min: 3, max: 12 }),
          fc.boolean(),
          (s, exponent, colluding) => {
            const { n, d, f, seed } = s;
            const honest = gaussian(seed, n - f, d);
            const rng = new Rng(seed ^ 0x5bd1e995);
            const magnitude = 10 ** exponent;
            // every Byzantine coordinate is at least `magnitude` away from 0 (honest values are N(0, 1))
            const far = () =>
              Float32Array.from(
                { length: d },
                () => (rng.next() < 0.5 ? -1 : 1) * magnitude * (1 + Math.abs(rng.normal())),
              );
            const common = far();
            const byz = Array.from({ length: f }, () => (colluding ? common.slice() : far()));
            // Byzantine inputs at random positions
            const all = [...honest, ...byz];
            const order = rng.shuffle(Array.from({ length: n }, (_, i) => i));
            const out = run(
              c.rule,
              order.map((i) => all[i]),
              f,
              c.options,
            ).update;
            expect(Array.from(out).every(Number.isFinite)).to.equal(true);
            const bound = boundFor(c, honest, n, f);
            expect(bound.distance(out)).to.be.at.most(bound.limit);
          },
        ),
        { numRuns: RUNS },
      );
    });
  }
});

/**
 * What "bounded" means for each rule: coordinate-wise and selection rules stay in the honest bounding box;
 * the geometric median stays within C·R of the honest mean (C = 2(n − f)/(n − 2f), R = honest radius, plus the
 * smoothing ν); centered clipping moves at most f·τ/n per iteration from the honest contribution.
 */
function boundFor(
  c: RuleCase,
  honest: Float32Array[],
  n: number,
  f: number,
): { distance: (x: Float32Array) => number; limit: number } {
  const d = honest[0].length;
  const lo = Array.from({ length: d }, (_, k) => Math.min(...honest.map((h) => h[k])));
  const hi = Array.from({ length: d }, (_, k) => Math.max(...honest.map((h) => h[k])));
  const mean = Array.from({ length: d }, (_, k) => honest.reduce((s, h) => s + h[k], 0) / honest.length);
  const radius = Math.max(...honest.map((h) => norm2(h.map((e, k) => e - mean[k]))));
  if (c.rule === 'geometricMedian') {
    const C = (2 * (n - f)) / (n - 2 * f);
    return { distance: (x) => norm2(Array.from(x, (e, k) => e - mean[k])), limit: C * radius + 1 };
  }
  if (c.rule === 'centeredClipping') {
    const tau = c.options.tau as number;
    const L = c.options.L as number;
    const maxNorm = Math.max(...honest.map(norm2));
    return { distance: (x) => norm2(x), limit: maxNorm + (L * f * tau) / n + 1e-4 };
  }
  return {
    distance: (x) => Math.max(...Array.from(x, (e, k) => Math.max(lo[k] - e, e - hi[k], 0))),
    limit: 1e-5 * Math.max(1, ...hi.map(Math.abs), ...lo.map(Math.abs)),
  };
}

describe('aggregation properties: coordinate-wise kernels match a sort-based reference, ties included', () => {
  /** Positions of one column in (value, position) order. */
  const sorted = (col: number[]) => col.map((v, i) => ({ v, i })).sort((a, b) => a.v - b.v || a.i - b.i);
  const closest = (col: number[], c: number, count: number) =>
    col
      .map((v, i) => ({ v, i, dist: Math.abs(v - c) }))
      .sort((a, b) => a.dist - b.dist || a.i - b.i)
      .slice(0, count);
  const median = (col: number[], lower: boolean) => {
    const s = sorted(col);
    const h = s.length >> 1;
    if (s.length & 1) return { value: s[h].v, used: [s[h].i] };
    if (lower) return { value: s[h - 1].v, used: [s[h - 1].i] };
    return { value: (s[h - 1].v + s[h].v) / 2, used: [s[h - 1].i, s[h].i] };
  };
  const trimmed = (col: number[], f: number) => {
    const kept = sorted(col).slice(f, col.length - f);
    return { value: kept.reduce((s, e) => s + e.v, 0) / kept.length, used: kept.map((e) => e.i) };
  };
  type Ref = (col: number[], f: number) => { value: number; used: number[] };
  const refs: [string, Record<string, unknown>, Ref][] = [
    ['median', {}, (col) => median(col, false)],
    ['median', { compat: 'garfield' }, (col) => median(col, true)],
    ['trimmedMean', {}, trimmed],
    [
      'meamed',
      {},
      (col, f) => {
        const kept = closest(col, median(col, false).value, col.length - f);
        return { value: kept.reduce((s, e) => s + e.v, 0) / kept.length, used: kept.map((e) => e.i) };
      },
    ],
    [
      'meamed',
      { compat: 'garfield' },
      (col, f) => {
        const kept = closest(col, median(col, true).value, col.length - f);
        return { value: kept.reduce((s, e) => s + e.v, 0) / kept.length, used: kept.map((e) => e.i) };
      },
    ],
    [
      'phocas',
      {},
      (col, f) => {
        const kept = closest(col, trimmed(col, f).value, col.length - f);
        return { value: kept.reduce((s, e) => s + e.v, 0) / kept.length, used: kept.map((e) => e.i) };
      },
    ],
  ];
  for (const [rule, options, ref] of refs) {
    it(`${rule} ${JSON.stringify(options)}`, () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 15 }).chain((n) =>
            fc.record({
              rows: fc.array(fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 6, maxLength: 6 }), {
                minLength: n,
                maxLength: n,
              }),
              f: fc.integer({ min: 0, max: Math.floor((n - 1) / 2) }),
            }),
          ),
          ({ rows, f }) => {
            const n = rows.length;
            const r = run(
              rule,
              rows.map((row) => Float32Array.from(row)),
              f,
              options,
            );
            const used = new Array<number>(n).fill(0);
            for (let k = 0; k < 6; k++) {
              const e = ref(
                rows.map((row) => row[k]),
                f,
              );
              expect(r.update[k]).to.be.closeTo(e.value, 1e-6);
              for (const i of e.used) used[i]++;
            }
            r.workers.forEach((w, i) => expect(w.trust).to.be.closeTo(used[i] / 6, 1e-12));
          },
        ),
        { numRuns: RUNS },
      );
    });
  }
});
