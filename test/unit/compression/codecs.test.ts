import assert from 'node:assert/strict';
import { CodecWorkspace } from '../../../src/core/compression/codecWorkspace.ts';
import {
  describeSetting,
  layerByteBounds,
  type LayerSetting,
} from '../../../src/core/compression/compressionPlan.ts';
import { LayerMemory } from '../../../src/core/compression/errorFeedback.ts';
import { encodeLayer, validateAndDecodeLayer } from '../../../src/core/compression/layerCodec.ts';
import { qsgdDecode, qsgdEncode } from '../../../src/core/compression/qsgd.ts';
import { randkIndices, randkSeed } from '../../../src/core/compression/randk.ts';
import { kthLargest } from '../../../src/core/compression/topk.ts';
import { roundToWire } from '../../../src/core/compression/valueCodec.ts';
import { encodeOnce, gaussian, lowRank, sqDist, sqNorm } from './codecFixtures.ts';

function decode(setting: LayerSetting, shape: number[], bytes: Uint8Array, sharedSeed = 7): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const dst = new Float32Array(n);
  validateAndDecodeLayer(setting, shape, bytes, dst, sharedSeed, new CodecWorkspace());
  return dst;
}

describe('compression codecs: round trips', () => {
  it('fp32 is exact and leaves no residual', () => {
    const g = gaussian(1000, 1);
    const { bytes, memory } = encodeOnce({ kind: 'fp32' }, [1000], g);
    assert.equal(bytes.length, 4000);
    assert.deepEqual(decode({ kind: 'fp32' }, [1000], bytes), g);
    assert.equal(sqNorm(memory.error), 0);
  });

  it('bf16 rounds each value to nearest-even and keeps the rounding in the memory', () => {
    const g = gaussian(500, 2);
    const { bytes, memory } = encodeOnce({ kind: 'bf16' }, [500], g);
    const d = decode({ kind: 'bf16' }, [500], bytes);
    for (let i = 0; i < g.length; i++) {
      assert.equal(d[i], roundToWire(g[i], 'bf16'));
      assert.equal(memory.error[i], Math.fround(g[i] - d[i]));
    }
  });

  it('topk with fp32 values returns exactly the k largest magnitudes (ties to the lowest index)', () => {
    const g = gaussian(4000, 3);
    g[17] = 100;
    g[18] = -100; // a tie in magnitude
    g[3999] = 100;
    const k = 40;
    const setting: LayerSetting = { kind: 'topk', k, values: 'fp32' };
    const { bytes } = encodeOnce(setting, [4000], g);
    const d = decode(setting, [4000], bytes);
    const sorted = Array.from(g, Math.abs).sort((a, b) => b - a);
    const threshold = sorted[k - 1];
    let kept = 0;
    for (let i = 0; i < g.length; i++) {
      if (d[i] !== 0) {
        kept++;
        assert.equal(d[i], g[i], `value at ${i}`);
        assert.ok(Math.abs(g[i]) >= threshold);
      } else {
        assert.ok(Math.abs(g[i]) <= threshold, `dropped ${i} above the threshold`);
      }
    }
    assert.equal(kept, k);
    assert.ok(
      bytes.length >= layerByteBounds(setting, [4000]).min &&
        bytes.length <= layerByteBounds(setting, [4000]).max,
    );
  });

  it('topk keeps exactly k when many magnitudes tie', () => {
    const g = new Float32Array(300).fill(1);
    const setting: LayerSetting = { kind: 'topk', k: 25, values: 'bf16' };
    const d = decode(setting, [300], encodeOnce(setting, [300], g).bytes);
    assert.deepEqual(Array.from(d.subarray(0, 25)), new Array(25).fill(1));
    assert.equal(sqNorm(d.subarray(25)), 0);
  });

  it('kthLargest matches a sort', () => {
    for (let t = 0; t < 30; t++) {
      const a = gaussian(50 + t * 7, 100 + t);
      for (let i = 0; i < a.length; i += 5) a[i] = a[0]; // duplicates
      const sorted = Array.from(a).sort((x, y) => y - x);
      for (const k of [1, 2, a.length >> 1, a.length])
        assert.equal(kthLargest(a.slice(), a.length, k), sorted[k - 1]);
    }
  });

  it('powersgd reconstructs a matrix of rank ≤ r (fp32 factors)', () => {
    for (const [rows, cols, rankOfM, r] of [
      [40, 30, 2, 2],
      [40, 30, 1, 4],
      [75, 20, 3, 3], // a [5,5,3,20] conv kernel viewed as 75 × 20
    ]) {
      const m = lowRank(rows, cols, rankOfM, rows + cols);
      const shape = rows === 75 ? [5, 5, 3, 20] : [rows, cols];
      const setting: LayerSetting = { kind: 'powersgd', rank: r, values: 'fp32' };
      const { bytes } = encodeOnce(setting, shape, m);
      assert.equal(bytes.length, r * (rows + cols) * 4);
      const d = decode(setting, shape, bytes);
      assert.ok(
        sqDist(d, m) <= 1e-9 * sqNorm(m),
        `rank ${rankOfM} ≤ ${r}: relative error ${sqDist(d, m) / sqNorm(m)}`,
      );
    }
  });

  it('powersgd of a full-rank matrix loses something, and warm start improves it over rounds', () => {
    const rows = 60;
    const cols = 40;
    const m = lowRank(rows, cols, 12, 5);
    const setting: LayerSetting = { kind: 'powersgd', rank: 3, values: 'fp32' };
    const memory = new LayerMemory(rows * cols);
    const ws = new CodecWorkspace();
    const out = new Uint8Array(layerByteBounds(setting, [rows, cols]).max);
    const errors: number[] = [];
    for (let t = 0; t < 6; t++) {
      memory.error.fill(0); // same M every round: isolate the warm start from error feedback
      const n = encodeLayer(setting, [rows, cols], m, memory, out, { sharedSeed: 9, privateSeed: 0 }, ws);
      errors.push(sqDist(decode(setting, [rows, cols], out.subarray(0, n)), m));
    }
    assert.ok(errors[0] > 1e-3 * sqNorm(m));
    assert.ok(errors[5] < errors[0], `warm start: ${errors.join(', ')}`);
  });
});

describe('compression codecs: error feedback', () => {
  const shape = [24, 16];
  const settings: LayerSetting[] = [
    { kind: 'bf16' },
    { kind: 'topk', k: 20, values: 'bf16' },
    { kind: 'randk', k: 30, values: 'fp32' },
    { kind: 'qsgd', bits: 3, bucket: 50 },
    { kind: 'powersgd', rank: 2, values: 'bf16' },
    { kind: 'powersgd', rank: 2, values: 'int8' },
    { kind: 'powersgd', rank: 3, values: 'int4' },
  ];
  it('every codec refuses a non-finite gradient before writing, and the memory stays as it was', () => {
    const n = 24 * 16;
    for (const setting of [{ kind: 'fp32' } as const, ...settings]) {
      for (const bad of [NaN, Infinity]) {
        const memory = new LayerMemory(n);
        memory.error.set(gaussian(n, 3, 0.1));
        const before = memory.error.slice();
        const g = gaussian(n, 4);
        g[17] = bad;
        const out = new Uint8Array(layerByteBounds(setting, shape).max);
        assert.throws(
          () =>
            encodeLayer(
              setting,
              shape,
              g,
              memory,
              out,
              { sharedSeed: 1, privateSeed: 2 },
              new CodecWorkspace(),
            ),
          (e: Error & { code?: string }) => e.code === 'non-finite' && /at element 17/.test(e.message),
          `${setting.kind} with ${bad}`,
        );
        assert.deepEqual(memory.error, before);
        assert.ok(out.every((b) => b === 0));
      }
    }
  });

  for (const setting of settings) {
    it(`${describeSetting(setting)}: Σ decoded + memory = Σ inputs over rounds`, () => {
      const n = 24 * 16;
      const memory = new LayerMemory(n);
      const ws = new CodecWorkspace();
      const out = new Uint8Array(layerByteBounds(setting, shape).max);
      const sumIn = new Float64Array(n);
      const sumDecoded = new Float64Array(n);
      for (let t = 0; t < 25; t++) {
        const g = gaussian(n, 1000 + t);
        const len = encodeLayer(
          setting,
          shape,
          g,
          memory,
          out,
          { sharedSeed: randkSeed(1, t, 0), privateSeed: t },
          ws,
        );
        const d = decode(setting, shape, out.subarray(0, len), randkSeed(1, t, 0));
        assert.deepEqual(d, memory.decoded, 'the memory used the bytes that were sent');
        for (let i = 0; i < n; i++) {
          sumIn[i] += g[i];
          sumDecoded[i] += d[i];
        }
      }
      let worst = 0;
      for (let i = 0; i < n; i++)
        worst = Math.max(worst, Math.abs(sumDecoded[i] + memory.error[i] - sumIn[i]));
      assert.ok(worst < 1e-4, `largest violation ${worst}`);
    });
  }
});

describe('compression codecs: randk coordinates', () => {
  it('are the same for every worker with the same seed, distinct, sorted, and differ across rounds and layers', () => {
    const numel = 5000;
    const k = 60;
    // two workers: different gradients and different private seeds, the same coordinator seed
    const ga = gaussian(numel, 1);
    const gb = gaussian(numel, 2);
    const a = encodeOnce({ kind: 'randk', k, values: 'fp32' }, [numel], ga, randkSeed(3, 5, 2), 101);
    const b = encodeOnce({ kind: 'randk', k, values: 'fp32' }, [numel], gb, randkSeed(3, 5, 2), 202);
    const support = (m: { memory: LayerMemory }) =>
      m.memory.decoded.reduce<number[]>((s, v, i) => (v !== 0 ? [...s, i] : s), []);
    assert.deepEqual(support(a), support(b));
    // what each worker sent is its own gradient at those coordinates
    for (const i of support(a)) assert.deepEqual([a.memory.decoded[i], b.memory.decoded[i]], [ga[i], gb[i]]);
    const idx = (seed: number) => {
      const out = new Uint32Array(k);
      randkIndices(seed, numel, k, out, new Uint32Array(Math.ceil(numel / 32)));
      return Array.from(out);
    };
    const base = idx(randkSeed(3, 5, 2));
    assert.deepEqual(support(a), base);
    for (let j = 1; j < k; j++) assert.ok(base[j] > base[j - 1]);
    assert.ok(base[k - 1] < numel);
    assert.notDeepEqual(idx(randkSeed(3, 6, 2)), base, 'next round');
    assert.notDeepEqual(idx(randkSeed(3, 5, 3)), base, 'other layer');
  });

  it('cover the layer uniformly over many seeds', () => {
    const numel = 50;
    const k = 10;
    const counts = new Array(numel).fill(0);
    const out = new Uint32Array(k);
    const bits = new Uint32Array(2);
    const trials = 20000;
    for (let s = 0; s < trials; s++) {
      randkIndices(randkSeed(9, s, 0), numel, k, out, bits);
      for (const i of out) counts[i]++;
    }
    const expected = (trials * k) / numel;
    for (const c of counts)
      assert.ok(Math.abs(c - expected) < 6 * Math.sqrt(expected), `count ${c} vs ${expected}`);
  });
});

describe('compression codecs: qsgd', () => {
  it('is unbiased: the mean over many rounding seeds approaches the input', () => {
    const n = 200;
    const x = gaussian(n, 4);
    const bits = 3;
    const bucket = 64;
    const out = new Uint8Array(4 * 4 + Math.ceil((n * bits) / 8));
    const dst = new Float32Array(n);
    const mean = new Float64Array(n);
    const trials = 4000;
    for (let s = 0; s < trials; s++) {
      qsgdEncode(x, bits, bucket, s, out);
      qsgdDecode(out, bits, bucket, dst);
      for (let i = 0; i < n; i++) mean[i] += dst[i] / trials;
    }
    // per-element std of one draw ≤ scale/(2s); the mean of `trials` draws is within 6σ/√trials
    const maxAbs = Math.max(...Array.from(x, Math.abs));
    const tol = (6 * maxAbs) / (2 * 3) / Math.sqrt(trials);
    for (let i = 0; i < n; i++)
      assert.ok(Math.abs(mean[i] - x[i]) < tol, `element ${i}: ${mean[i]} vs ${x[i]}`);
  });

  it('decodes every element to one of the two levels around it, with the sign', () => {
    const x = gaussian(300, 5);
    const setting: LayerSetting = { kind: 'qsgd', bits: 4, bucket: 100 };
    const d = decode(setting, [300], encodeOnce(setting, [300], x).bytes);
    for (let b = 0; b < 3; b++) {
      const part = x.subarray(b * 100, b * 100 + 100);
      const scale = Math.max(...Array.from(part, Math.abs));
      for (let i = 0; i < 100; i++) {
        const t = (Math.abs(part[i]) / scale) * 7;
        const got = d[b * 100 + i];
        const level = Math.abs(got) / (scale / 7);
        assert.ok(Math.abs(level - Math.floor(t)) < 1e-4 || Math.abs(level - Math.floor(t) - 1) < 1e-4);
        if (got !== 0) assert.equal(Math.sign(got), Math.sign(part[i]));
      }
    }
  });
});

describe('compression codecs: re-plans and wire alignment', () => {
  it('keeps the error-feedback memory across a re-plan and re-initialises PowerSGD only on a rank change', () => {
    const shape = [30, 20];
    const memory = new LayerMemory(600);
    const ws = new CodecWorkspace();
    const out = new Uint8Array(4 * 600);
    const ctx = { sharedSeed: 5, privateSeed: 6 };
    const rank3: LayerSetting = { kind: 'powersgd', rank: 3, values: 'fp32' };
    encodeLayer(rank3, shape, gaussian(600, 1), memory, out, ctx, ws);
    const state = memory.powerSgd;
    encodeLayer(rank3, shape, gaussian(600, 2), memory, out, ctx, ws);
    assert.equal(memory.powerSgd, state, 'same rank: warm start kept');
    const before = memory.error.slice();
    encodeLayer({ kind: 'topk', k: 50, values: 'fp32' }, shape, new Float32Array(600), memory, out, ctx, ws);
    // the memory carried over: p = 0 + e, and the topk residual is e minus its 50 largest entries
    let carried = 0;
    for (let i = 0; i < 600; i++) if (memory.error[i] === before[i]) carried++;
    assert.equal(carried, 550);
    encodeLayer({ kind: 'powersgd', rank: 2, values: 'fp32' }, shape, gaussian(600, 3), memory, out, ctx, ws);
    assert.notEqual(memory.powerSgd, state);
    assert.equal(memory.powerSgd!.rank, 2);
    assert.equal(memory.powerSgd!.q.length, 20 * 2);
  });

  it('decodes bytes that start at an odd offset exactly like aligned bytes', () => {
    const shape = [16, 12];
    const g = gaussian(192, 8);
    for (const setting of [
      { kind: 'fp32' },
      { kind: 'bf16' },
      { kind: 'topk', k: 20, values: 'fp32' },
      { kind: 'randk', k: 20, values: 'bf16' },
      { kind: 'qsgd', bits: 5, bucket: 32 },
      { kind: 'powersgd', rank: 2, values: 'fp32' },
    ] as LayerSetting[]) {
      const { bytes } = encodeOnce(setting, shape, g);
      const odd = new Uint8Array(bytes.length + 3).subarray(1, 1 + bytes.length);
      odd.set(bytes);
      assert.deepEqual(decode(setting, shape, odd), decode(setting, shape, bytes), setting.kind);
    }
  });
});

describe('compression codecs: PowerSGD factors as integer codes', () => {
  const shape = [40, 30];
  it('int8 and int4 send per-column scales and packed codes, and decode close to the fp32 factors', () => {
    const m = lowRank(40, 30, 3, 21);
    const exact = decode(
      { kind: 'powersgd', rank: 3, values: 'fp32' },
      shape,
      encodeOnce({ kind: 'powersgd', rank: 3, values: 'fp32' }, shape, m).bytes,
    );
    for (const [values, bits, tolerance] of [
      ['int8', 8, 1e-3],
      ['int4', 4, 0.1],
    ] as const) {
      const setting: LayerSetting = { kind: 'powersgd', rank: 3, values };
      const { bytes } = encodeOnce(setting, shape, m);
      assert.equal(bytes.length, 2 * 4 * 3 + Math.ceil((40 * 3 * bits) / 8) + Math.ceil((30 * 3 * bits) / 8));
      assert.equal(bytes.length, layerByteBounds(setting, shape).max);
      const d = decode(setting, shape, bytes);
      const relative = sqDist(d, exact) / sqNorm(exact);
      assert.ok(relative > 0 && relative < tolerance, `${values}: relative error ${relative}`);
    }
  });

  it('an odd number of 4-bit codes leaves the padding nibble zero', () => {
    // 5 × 3 matrix at rank 1: P has 5 codes, Q 3 — both odd
    const setting: LayerSetting = { kind: 'powersgd', rank: 1, values: 'int4' };
    const { bytes } = encodeOnce(setting, [5, 3], lowRank(5, 3, 1, 4));
    assert.equal(bytes.length, 4 + 3 + 4 + 2);
    assert.equal(bytes[4 + 2] >> 4, 0);
    assert.equal(bytes[4 + 3 + 4 + 1] >> 4, 0);
  });
});
