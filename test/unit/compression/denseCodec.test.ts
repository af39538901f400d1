import assert from 'node:assert/strict';
import {
  decodeDenseInto,
  encodeDense,
  wireRoundTripInPlace,
} from '../../../src/core/compression/denseCodec.ts';
import { copyFloat32Checked, finiteScanActive, setFiniteScan } from '../../../src/core/simd/finiteScan.ts';

/** float32 values as little-endian bytes starting at an odd offset of a larger buffer (as protobuf hands them). */
function unalignedBytes(values: Float32Array, pad = 3): Uint8Array {
  const backing = new Uint8Array(values.byteLength + pad + 5);
  const bytes = backing.subarray(pad, pad + values.byteLength);
  bytes.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  return bytes;
}

function pseudoRandom(n: number, seed = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 1e3;
  }
  return out;
}

describe('dense codec: float32 copy with finite check', () => {
  const modes = [true, false];
  afterEach(() => setFiniteScan(true));

  it('uses the SIMD scan on this machine (Node 20 has WebAssembly SIMD)', () => {
    assert.equal(finiteScanActive(), true);
  });

  for (const simd of modes) {
    const label = simd ? 'SIMD' : 'scalar';

    it(`${label}: copies finite values exactly and reports -1, for lengths around the 16-element steps`, () => {
      setFiniteScan(simd);
      for (const n of [1, 3, 15, 16, 17, 63, 64, 65, 1000, 262_144, 262_144 + 5]) {
        const src = pseudoRandom(n, n);
        const dst = new Float32Array(n + 7);
        assert.equal(copyFloat32Checked(unalignedBytes(src), dst, 7), -1, `n=${n}`);
        assert.deepEqual(dst.subarray(7), src);
      }
    });

    it(`${label}: finds the first NaN, +Inf or -Inf at any position, including the tail`, () => {
      setFiniteScan(simd);
      const n = 1037;
      for (const bad of [NaN, Infinity, -Infinity]) {
        for (const at of [0, 1, 15, 16, 500, 1023, 1024, 1030, 1036]) {
          const src = pseudoRandom(n, at + 11);
          src[at] = bad;
          if (at + 3 < n) src[at + 3] = NaN; // a later bad value must not win
          const dst = new Float32Array(n);
          assert.equal(copyFloat32Checked(unalignedBytes(src), dst, 0), at, `${bad} at ${at}`);
        }
      }
    });

    it(`${label}: treats the largest finite float32 and subnormals as finite`, () => {
      setFiniteScan(simd);
      const src = new Float32Array(64).fill(3.4028234663852886e38);
      src[5] = -3.4028234663852886e38;
      src[9] = 1.4e-45;
      src[10] = -0;
      const dst = new Float32Array(64);
      assert.equal(copyFloat32Checked(unalignedBytes(src), dst, 0), -1);
      assert.deepEqual(dst, src);
    });
  }

  it('handles chunks larger than the staging area (several kernel calls)', () => {
    const n = (1 << 18) * 2 + 37;
    const src = pseudoRandom(n, 5);
    src[(1 << 18) + 100] = NaN;
    const dst = new Float32Array(n);
    assert.equal(copyFloat32Checked(unalignedBytes(src), dst, 0), (1 << 18) + 100);
  });
});

describe('dense codec: encode/decode', () => {
  it('fp32 and bf16 round trips; bf16 rounds to nearest even', () => {
    const src = new Float32Array([1, -2.5, 3.14159, 1e-3, 65504, 1 + 2 ** -8, 1 + 3 * 2 ** -9]);
    const fp32 = new Float32Array(src.length);
    assert.equal(decodeDenseInto(encodeDense(src, 0, src.length, 'fp32'), fp32, 0, 'fp32'), -1);
    assert.deepEqual(fp32, src);
    const bf16 = new Float32Array(src.length);
    assert.equal(decodeDenseInto(encodeDense(src, 0, src.length, 'bf16'), bf16, 0, 'bf16'), -1);
    assert.equal(bf16[0], 1);
    assert.equal(bf16[1], -2.5);
    assert.equal(bf16[5], 1); // tie: rounds to even
    assert.equal(bf16[6], 1 + 2 ** -7); // above the tie: rounds up
    for (let i = 0; i < src.length; i++) assert.ok(Math.abs(bf16[i] - src[i]) <= Math.abs(src[i]) * 2 ** -8);
  });

  it('reports the first non-finite element of a bf16 chunk', () => {
    const src = new Float32Array([1, 2, Infinity, NaN]);
    const dst = new Float32Array(4);
    assert.equal(decodeDenseInto(encodeDense(src, 0, 4, 'bf16'), dst, 0, 'bf16'), 2);
  });

  it('refuses a byte length that is not whole elements, and a chunk that overruns the destination', () => {
    assert.throws(() => decodeDenseInto(new Uint8Array(7), new Float32Array(4), 0, 'fp32'), /whole number/);
    assert.throws(() => decodeDenseInto(new Uint8Array(8), new Float32Array(4), 3, 'fp32'), /overruns/);
  });
});

describe('dense codec: wire round trip in place', () => {
  it('equals encode then decode, bit for bit, for bf16 (and is the identity for fp32)', () => {
    const n = 10_000;
    const v = new Float32Array(n);
    let x = 12345;
    for (let i = 0; i < n; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      v[i] = ((x / 2 ** 32) * 2 - 1) * 10 ** ((i % 13) - 6);
    }
    v[0] = 0;
    v[1] = -0;
    v[2] = 3.4028234663852886e38;
    v[3] = 1.401298464324817e-45;
    v[4] = 1 + 2 ** -8; // a tie: rounds to even
    v[5] = 1 + 3 * 2 ** -8;
    const viaWire = new Float32Array(n);
    decodeDenseInto(encodeDense(v, 0, n, 'bf16'), viaWire, 0, 'bf16');
    const inPlace = v.slice();
    wireRoundTripInPlace(inPlace, 'bf16');
    assert.deepEqual(new Uint32Array(inPlace.buffer), new Uint32Array(viaWire.buffer));
    assert.notDeepEqual(inPlace, v, 'bf16 loses precision');
    const same = v.slice();
    wireRoundTripInPlace(same, 'fp32');
    assert.deepEqual(same, v);
  });
});
