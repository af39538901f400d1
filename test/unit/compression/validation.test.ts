import assert from 'node:assert/strict';
import { CodecError, type CodecErrorCode } from '../../../src/core/compression/codecError.ts';
import { CodecWorkspace } from '../../../src/core/compression/codecWorkspace.ts';
import {
  checkPlan,
  layerByteBounds,
  planBytes,
  qsgdBytes,
  uniformPlan,
  type LayerSetting,
} from '../../../src/core/compression/compressionPlan.ts';
import { LayerAssembler } from '../../../src/core/compression/layerAssembler.ts';
import { validateAndDecodeLayer } from '../../../src/core/compression/layerCodec.ts';
import { writeValue } from '../../../src/core/compression/valueCodec.ts';
import { readVarint, writeVarint } from '../../../src/core/compression/varint.ts';
import { buildLayout } from '../../../src/core/layout/parameterLayout.ts';
import { encodeOnce, gaussian, lowRank } from './codecFixtures.ts';

function rejects(
  setting: LayerSetting,
  shape: number[],
  bytes: Uint8Array,
  code: CodecErrorCode,
  message?: RegExp,
): void {
  const n = shape.reduce((a, b) => a * b, 1);
  // the destination sits inside a larger buffer with sentinels on both sides
  const backing = new Float32Array(n + 8).fill(-7);
  const dst = backing.subarray(4, 4 + n);
  assert.throws(
    () => validateAndDecodeLayer(setting, shape, bytes, dst, 7, new CodecWorkspace()),
    (e: unknown) => {
      assert.ok(e instanceof CodecError, `not a CodecError: ${String(e)}`);
      assert.equal(e.code, code, e.message);
      if (message) assert.match(e.message, message);
      return true;
    },
  );
  for (const i of [0, 1, 2, 3, n + 4, n + 5, n + 6, n + 7])
    assert.equal(backing[i], -7, 'wrote outside its slice');
}

/** Topk bytes from explicit values and raw deltas. */
function topkBytes(values: number[], deltas: number[], extra: number[] = []): Uint8Array {
  const out = new Uint8Array(values.length * 4 + deltas.length * 5 + extra.length);
  values.forEach((v, j) => writeValue(out, j * 4, v, 'fp32'));
  let pos = values.length * 4;
  for (const d of deltas) pos = writeVarint(out, pos, d);
  for (const b of extra) out[pos++] = b;
  return out.slice(0, pos);
}

describe('compression validation: topk', () => {
  const s: LayerSetting = { kind: 'topk', k: 3, values: 'fp32' };
  const N = [20000]; // indices take up to 3 varint bytes: malformed varints fit in the planned maximum
  it('accepts a well-formed message', () => {
    const dst = new Float32Array(20000);
    validateAndDecodeLayer(s, N, topkBytes([1, 2, 3], [1, 4, 19995]), dst, 0, new CodecWorkspace());
    assert.deepEqual([dst[0], dst[4], dst[19999]], [1, 2, 3]);
  });
  it('rejects a repeated (non-increasing) index', () =>
    rejects(s, N, topkBytes([1, 2, 3], [5, 0, 2]), 'index-not-increasing', /entry 1 repeats index 4/));
  it('rejects an index ≥ numel', () =>
    rejects(s, N, topkBytes([1, 2, 3], [5, 2, 19994]), 'index-out-of-range', /index 20000 ≥ numel 20000/));
  it('rejects an index past 2^32 via overflowing varint', () =>
    rejects(s, N, topkBytes([1, 2, 3], [1, 1], [0xff, 0xff, 0xff, 0xff, 0x1f]), 'varint-overflow'));
  it('rejects a 6-byte varint', () =>
    rejects(s, N, topkBytes([1, 2, 3], [1, 1], [0x81, 0x80, 0x80, 0x80, 0x80, 0x00]), 'varint-overlong'));
  it('rejects a varint not in shortest form', () =>
    rejects(s, N, topkBytes([1, 2, 3], [1, 1], [0x81, 0x00]), 'varint-overlong'));
  it('rejects bytes ending inside a varint', () =>
    rejects(s, N, topkBytes([1, 2, 3], [1, 1], [0x81]), 'varint-truncated'));
  it('rejects trailing bytes after k indices (wrong length)', () =>
    rejects(s, N, topkBytes([1, 2, 3], [1, 1, 1], [0]), 'wrong-length'));
  it('rejects fewer than k entries (wrong length)', () =>
    rejects(s, N, topkBytes([1, 2], [1, 1]), 'wrong-length'));
  it('rejects more bytes than the plan allows', () =>
    rejects(s, N, new Uint8Array(layerByteBounds(s, N).max + 1), 'too-large'));
  it('rejects NaN and Inf values', () => {
    rejects(s, N, topkBytes([1, NaN, 3], [1, 1, 1]), 'non-finite', /value 1/);
    rejects(s, N, topkBytes([1, 2, -Infinity], [1, 1, 1]), 'non-finite', /value 2/);
    const bf: LayerSetting = { kind: 'topk', k: 1, values: 'bf16' };
    rejects(bf, [10], new Uint8Array([0x80, 0x7f, 1]), 'non-finite'); // +Inf in bf16
  });
});

describe('compression validation: randk, qsgd, powersgd, dense', () => {
  it('randk: wrong length and non-finite', () => {
    const s: LayerSetting = { kind: 'randk', k: 4, values: 'bf16' };
    rejects(s, [50], new Uint8Array(7), 'wrong-length', /7 bytes, the plan implies 8/);
    rejects(s, [50], new Uint8Array([0, 0, 0, 0, 0xc0, 0x7f, 0, 0]), 'non-finite', /value 2/);
  });

  it('qsgd: wrong length (another bit-width or bucket), bad scales, non-zero padding', () => {
    const s: LayerSetting = { kind: 'qsgd', bits: 3, bucket: 8 };
    const good = encodeOnce(s, [21], gaussian(21, 1)).bytes;
    assert.equal(good.length, qsgdBytes(21, 3, 8));
    rejects(
      s,
      [21],
      encodeOnce({ kind: 'qsgd', bits: 4, bucket: 8 }, [21], gaussian(21, 1)).bytes,
      'wrong-length',
    );
    rejects(
      s,
      [21],
      encodeOnce({ kind: 'qsgd', bits: 3, bucket: 16 }, [21], gaussian(21, 1)).bytes,
      'wrong-length',
    );
    const nan = good.slice();
    writeValue(nan, 4, NaN, 'fp32');
    rejects(s, [21], nan, 'non-finite', /bucket 1/);
    const neg = good.slice();
    writeValue(neg, 8, -1, 'fp32');
    rejects(s, [21], neg, 'negative-scale', /bucket 2/);
    const pad = good.slice();
    pad[pad.length - 1] |= 0x80; // 21·3 = 63 bits: the top bit is padding
    rejects(s, [21], pad, 'nonzero-padding');
  });

  it('powersgd: wrong rank (length), NaN factor, overflowing product, 1-D tensor', () => {
    const m = lowRank(12, 9, 2, 3);
    const s: LayerSetting = { kind: 'powersgd', rank: 2, values: 'fp32' };
    rejects(
      s,
      [12, 9],
      encodeOnce({ kind: 'powersgd', rank: 3, values: 'fp32' }, [12, 9], m).bytes,
      'wrong-length',
      /rank 2/,
    );
    rejects(
      s,
      [12, 9],
      encodeOnce({ kind: 'powersgd', rank: 2, values: 'bf16' }, [12, 9], m).bytes,
      'wrong-length',
    );
    const bytes = encodeOnce(s, [12, 9], m).bytes;
    const nan = bytes.slice();
    writeValue(nan, 4 * 25, Infinity, 'fp32');
    rejects(s, [12, 9], nan, 'non-finite', /Q\[1\]/);
    const big = new Uint8Array(bytes.length);
    for (let i = 0; i < bytes.length / 4; i++) writeValue(big, 4 * i, 3e38, 'fp32');
    rejects(s, [12, 9], big, 'non-finite-output');
    rejects(s, [12], new Uint8Array(0), 'invalid-setting', /1-D/);
    rejects(
      { kind: 'powersgd', rank: 10, values: 'fp32' },
      [12, 9],
      new Uint8Array(0),
      'invalid-setting',
      /rank = 10/,
    );
  });

  it('powersgd int8/int4 codes: length, scales, the excluded code, padding, overflow', () => {
    const m = lowRank(12, 9, 2, 3);
    const s8: LayerSetting = { kind: 'powersgd', rank: 2, values: 'int8' };
    const s4: LayerSetting = { kind: 'powersgd', rank: 2, values: 'int4' };
    const b8 = encodeOnce(s8, [12, 9], m).bytes;
    const b4 = encodeOnce(s4, [12, 9], m).bytes;
    assert.equal(b8.length, 8 + 24 + 8 + 18);
    assert.equal(b4.length, 8 + 12 + 8 + 9);
    // another bit-width or value encoding is another length
    rejects(s8, [12, 9], b4, 'wrong-length', /int8/);
    rejects(s4, [12, 9], b8, 'wrong-length', /int4/);
    rejects(
      s8,
      [12, 9],
      encodeOnce({ kind: 'powersgd', rank: 2, values: 'bf16' }, [12, 9], m).bytes,
      'wrong-length',
    );
    // P's scales sit at 0, Q's after P's codes
    const withScale = (bytes: Uint8Array, at: number, v: number) => {
      const out = bytes.slice();
      writeValue(out, at, v, 'fp32');
      return out;
    };
    rejects(s8, [12, 9], withScale(b8, 4, NaN), 'non-finite', /P scale 1/);
    rejects(s8, [12, 9], withScale(b8, 32, Infinity), 'non-finite', /Q scale 0/);
    rejects(s4, [12, 9], withScale(b4, 20, -0.5), 'negative-scale', /Q scale 0/);
    // −128 (int8) and −8 (int4) are outside the symmetric code range
    const bad8 = b8.slice();
    bad8[8 + 5] = 0x80;
    rejects(s8, [12, 9], bad8, 'code-out-of-range', /P code 5/);
    const bad4 = b4.slice();
    bad4[28 + 2] = (bad4[28 + 2] & 0x0f) | 0x80; // Q code 5: the high nibble of Q's third byte
    rejects(s4, [12, 9], bad4, 'code-out-of-range', /Q code 5/);
    // an odd number of 4-bit codes: the last byte's high nibble is padding
    const odd: LayerSetting = { kind: 'powersgd', rank: 1, values: 'int4' };
    const bOdd = encodeOnce(odd, [5, 3], lowRank(5, 3, 1, 4)).bytes;
    const padded = bOdd.slice();
    padded[6] |= 0x10;
    rejects(odd, [5, 3], padded, 'nonzero-padding', /P padding/);
    const paddedQ = bOdd.slice();
    paddedQ[12] |= 0x30;
    rejects(odd, [5, 3], paddedQ, 'nonzero-padding', /Q padding/);
    // finite scales whose products overflow float32
    const huge = withScale(withScale(b8, 0, 3e38), 32, 3e38);
    rejects(s8, [12, 9], huge, 'non-finite-output');
    rejects(
      { kind: 'powersgd', rank: 2, values: 'int2' as 'int4' },
      [12, 9],
      b4,
      'invalid-setting',
      /values 'int2'/,
    );
  });

  it('dense: wrong length and NaN', () => {
    rejects({ kind: 'fp32' }, [5], new Uint8Array(16), 'wrong-length');
    rejects({ kind: 'bf16' }, [5], new Uint8Array(12), 'wrong-length');
    const b = new Uint8Array(20);
    writeValue(b, 12, NaN, 'fp32');
    rejects({ kind: 'fp32' }, [5], b, 'non-finite', /element 3/);
  });

  it('settings outside the plan limits are refused', () => {
    rejects({ kind: 'topk', k: 0, values: 'fp32' }, [5], new Uint8Array(0), 'invalid-setting');
    rejects({ kind: 'topk', k: 6, values: 'fp32' }, [5], new Uint8Array(0), 'invalid-setting');
    rejects({ kind: 'qsgd', bits: 9, bucket: 4 }, [5], new Uint8Array(0), 'invalid-setting');
    rejects({ kind: 'qsgd', bits: 2, bucket: 0 }, [5], new Uint8Array(0), 'invalid-setting');
  });
});

describe('compression validation: varints', () => {
  it('round-trip every length class and read exactly their bytes', () => {
    const cursor = { value: 0, pos: 0 };
    for (const v of [0, 1, 127, 128, 16383, 16384, 2 ** 21, 2 ** 28 - 1, 2 ** 28, 2 ** 32 - 1]) {
      const out = new Uint8Array(5);
      const end = writeVarint(out, 0, v);
      readVarint(out, 0, end, cursor);
      assert.deepEqual([cursor.value, cursor.pos], [v, end]);
    }
  });
});

describe('compression plan: byte sizes and chunked assembly', () => {
  const layout = buildLayout([
    { name: 'conv.weight', shape: [5, 5, 1, 20] },
    { name: 'conv.bias', shape: [20] },
    { name: 'fc.weight', shape: [800, 10] },
  ]);

  it('uniform powersgd sends vectors in fp32 and computes exact sizes', () => {
    const plan = uniformPlan('p1', { kind: 'powersgd', rank: 4, values: 'bf16' }, layout);
    assert.deepEqual(plan.layers[1], { kind: 'fp32' });
    const bytes = planBytes(plan, layout);
    assert.deepEqual(
      bytes.perLayer.map((b) => b.max),
      [4 * (25 + 20) * 2, 20 * 4, 4 * (800 + 10) * 2],
    );
    assert.equal(bytes.total.max, bytes.total.min);
  });

  it('uniform powersgd leaves matrices it would not shrink twofold in fp32', () => {
    const small = buildLayout([
      { name: 'a', shape: [10, 10] }, // 4·20·2 = 160 ≥ 100
      { name: 'b', shape: [30, 12] }, // 4·42·2 = 336 < 360
    ]);
    const plan = uniformPlan('s', { kind: 'powersgd', rank: 4, values: 'fp32' }, small);
    assert.deepEqual(plan.layers, [{ kind: 'fp32' }, { kind: 'powersgd', rank: 4, values: 'fp32' }]);
  });

  it('a plan whose pushes could exceed the size limit is refused', () => {
    const plan = uniformPlan('big', { kind: 'fp32' }, layout);
    const total = planBytes(plan, layout).total.max;
    assert.equal(total, 4 * layout.totalSize);
    assert.equal(planBytes(plan, layout, total).total.max, total);
    assert.throws(
      () => planBytes(plan, layout, total - 1),
      (e: CodecError) => e.code === 'too-large',
    );
  });

  it('a plan with a wrong number of layers or a bad setting is refused', () => {
    assert.throws(() => checkPlan({ planId: 'x', layers: [{ kind: 'fp32' }] }, layout), CodecError);
    const bad = uniformPlan('x', { kind: 'topk', density: 0.1, values: 'fp32' }, layout);
    bad.layers[2] = { kind: 'topk', k: 8001, values: 'fp32' };
    assert.throws(() => planBytes(bad, layout), /fc.weight/);
  });

  it('a layer assembled from chunks decodes like the whole message; bad chunks are refused on arrival', () => {
    const s: LayerSetting = { kind: 'topk', k: 50, values: 'bf16' };
    const g = gaussian(8000, 8);
    const { bytes } = encodeOnce(s, [800, 10], g);
    // sized for a larger layer of the plan, as a coordinator's per-worker buffer would be
    const asm = new LayerAssembler(new Uint8Array(layerByteBounds(s, [800, 10]).max + 4096));
    asm.begin(layerByteBounds(s, [800, 10]), 'fc.weight');
    for (let off = 0; off < bytes.length; off += 37)
      asm.push(off, bytes.subarray(off, Math.min(bytes.length, off + 37)));
    const whole = new Float32Array(8000);
    const pieces = new Float32Array(8000);
    validateAndDecodeLayer(s, [800, 10], bytes, whole, 0, new CodecWorkspace());
    validateAndDecodeLayer(s, [800, 10], asm.complete(), pieces, 0, new CodecWorkspace());
    assert.deepEqual(pieces, whole);

    asm.begin(layerByteBounds(s, [800, 10]), 'fc.weight');
    asm.push(0, bytes.subarray(0, 10));
    assert.throws(
      () => asm.push(11, bytes.subarray(11, 20)),
      (e: CodecError) => e.code === 'chunk-out-of-order',
    );
    assert.throws(
      () => asm.complete(),
      (e: CodecError) => e.code === 'incomplete',
    );
    assert.throws(
      () => asm.push(10, new Uint8Array(layerByteBounds(s, [800, 10]).max)),
      (e: CodecError) => e.code === 'too-large',
    );
  });
});
