/**
 * Fuzzing every compressed-layer decoder with hostile bytes (fast-check): random byte strings of lengths around
 * and beyond the planned size, and valid messages mutated (bytes flipped, set to 0x00/0xff/0x80/0x7f, cut,
 * extended, spliced). The decoder must either accept — and then every decoded value is finite — or throw a
 * CodecError with a known code; it must never throw anything else and never write outside its destination
 * slice (sentinels on both sides of the slice). For topk an independent reference parser, written from the
 * format in docs/compression.md, must agree on accept/reject and on the decoded layer. The chunk assembler gets
 * random chunkings of the same bytes and must reach the same verdict.
 *
 * Runs per codec: PHALANX_FUZZ_RUNS (default 300); `npm run fuzz` runs more. Seed: PHALANX_FUZZ_SEED.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { CodecError } from '../../src/core/compression/codecError.ts';
import { CodecWorkspace } from '../../src/core/compression/codecWorkspace.ts';
import { layerByteBounds, type LayerSetting } from '../../src/core/compression/compressionPlan.ts';
import { LayerMemory } from '../../src/core/compression/errorFeedback.ts';
import { LayerAssembler } from '../../src/core/compression/layerAssembler.ts';
import { encodeLayer, validateAndDecodeLayer } from '../../src/core/compression/layerCodec.ts';
import { Rng } from '../../src/core/random.ts';

const RUNS = Number(process.env['PHALANX_FUZZ_RUNS'] ?? 300);
const SEED = process.env['PHALANX_FUZZ_SEED'] ? Number(process.env['PHALANX_FUZZ_SEED']) : undefined;
const params = { numRuns: RUNS, seed: SEED };

const CODES = new Set([
  'invalid-setting',
  'wrong-length',
  'too-large',
  'chunk-out-of-order',
  'incomplete',
  'varint-overlong',
  'varint-truncated',
  'varint-overflow',
  'index-not-increasing',
  'index-out-of-range',
  'non-finite',
  'negative-scale',
  'nonzero-padding',
  'code-out-of-range',
  'non-finite-output',
]);

const CASES: { setting: LayerSetting; shape: number[] }[] = [
  { setting: { kind: 'fp32' }, shape: [13] },
  { setting: { kind: 'bf16' }, shape: [4, 5] },
  { setting: { kind: 'topk', k: 6, values: 'fp32' }, shape: [300] },
  { setting: { kind: 'topk', k: 9, values: 'bf16' }, shape: [20000] },
  { setting: { kind: 'topk', k: 40, values: 'bf16' }, shape: [40] },
  { setting: { kind: 'randk', k: 7, values: 'bf16' }, shape: [5, 9] },
  { setting: { kind: 'randk', k: 3, values: 'fp32' }, shape: [64] },
  { setting: { kind: 'qsgd', bits: 3, bucket: 8 }, shape: [29] },
  { setting: { kind: 'qsgd', bits: 8, bucket: 5 }, shape: [2, 3, 2] },
  { setting: { kind: 'qsgd', bits: 2, bucket: 1024 }, shape: [37] },
  { setting: { kind: 'powersgd', rank: 2, values: 'fp32' }, shape: [7, 5] },
  { setting: { kind: 'powersgd', rank: 3, values: 'bf16' }, shape: [2, 2, 3, 4] },
  { setting: { kind: 'powersgd', rank: 2, values: 'int8' }, shape: [9, 6] },
  { setting: { kind: 'powersgd', rank: 1, values: 'int4' }, shape: [5, 3] },
  { setting: { kind: 'powersgd', rank: 3, values: 'int4' }, shape: [2, 2, 3, 4] },
];

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function validMessage(setting: LayerSetting, shape: number[], seed: number): Uint8Array {
  const rng = new Rng(seed);
  const n = numel(shape);
  const g = Float32Array.from({ length: n }, () => rng.normal() * 10 ** (rng.int(7) - 3));
  const out = new Uint8Array(layerByteBounds(setting, shape).max);
  const len = encodeLayer(
    setting,
    shape,
    g,
    new LayerMemory(n),
    out,
    { sharedSeed: seed, privateSeed: seed },
    new CodecWorkspace(),
  );
  return out.slice(0, len);
}

type Verdict = { ok: true; values: Float32Array } | { ok: false; code: string };

/** Decode into a slice with sentinels on both sides; check the property; return the verdict. */
function decodeChecked(setting: LayerSetting, shape: number[], bytes: Uint8Array, seed: number): Verdict {
  const n = numel(shape);
  const backing = new Float32Array(n + 16).fill(1234.5);
  const dst = backing.subarray(8, 8 + n);
  let verdict: Verdict;
  try {
    validateAndDecodeLayer(setting, shape, bytes, dst, seed, new CodecWorkspace());
    for (let i = 0; i < n; i++)
      if (!Number.isFinite(dst[i])) expect.fail(`decoded element ${i} is ${dst[i]}`);
    verdict = { ok: true, values: dst.slice() };
  } catch (e) {
    if (!(e instanceof CodecError)) throw e;
    expect(CODES.has(e.code), e.code).to.equal(true);
    expect(e.message.length).to.be.greaterThan(10);
    verdict = { ok: false, code: e.code };
  }
  for (let i = 0; i < 8; i++) {
    expect(backing[i], 'wrote before its slice').to.equal(1234.5);
    expect(backing[n + 8 + i], 'wrote after its slice').to.equal(1234.5);
  }
  return verdict;
}

/** Independent topk parser: k values, then k shortest-form LEB128 deltas ≥ 1, indices < numel, nothing after. */
function referenceTopk(bytes: Uint8Array, k: number, width: 2 | 4, n: number): Float32Array | null {
  if (bytes.length < k * width) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values: number[] = [];
  for (let j = 0; j < k; j++) {
    const v =
      width === 4
        ? view.getFloat32(j * 4, true)
        : new Float32Array(new Uint32Array([view.getUint16(j * 2, true) << 16]).buffer)[0];
    if (!Number.isFinite(v)) return null;
    values.push(v);
  }
  const out = new Float32Array(n);
  let pos = k * width;
  let index = -1;
  for (let j = 0; j < k; j++) {
    let value = 0n;
    let shift = 0n;
    let len = 0;
    for (;;) {
      if (pos >= bytes.length || len === 5) return null;
      const b = bytes[pos++];
      len++;
      value |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if ((b & 0x80) === 0) {
        if (b === 0 && len > 1) return null;
        break;
      }
    }
    if (value === 0n || value > 0xffffffffn) return null;
    index += Number(value);
    if (index >= n) return null;
    out[index] = values[j];
  }
  return pos === bytes.length ? out : null;
}

function expectSame(a: Float32Array, b: Float32Array): void {
  expect(a.length).to.equal(b.length);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) expect(a[i], `element ${i}`).to.equal(b[i]);
}

const mutation = fc.oneof(
  fc.record({
    op: fc.constant('set' as const),
    at: fc.nat(),
    value: fc.constantFrom(0, 0xff, 0x80, 0x7f, 0x01),
  }),
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ op: fc.constant('cut' as const), at: fc.nat(), value: fc.constant(0) }),
  fc.record({
    op: fc.constant('extend' as const),
    at: fc.nat({ max: 12 }),
    value: fc.integer({ min: 0, max: 255 }),
  }),
);

function mutate(bytes: Uint8Array, ms: { op: string; at: number; value: number }[]): Uint8Array {
  let b = bytes.slice();
  for (const m of ms) {
    if (m.op === 'extend') {
      const longer = new Uint8Array(b.length + m.at + 1).fill(m.value);
      longer.set(b);
      b = longer;
    } else if (b.length > 0) {
      const at = m.at % b.length;
      if (m.op === 'set') b[at] = m.value;
      else if (m.op === 'flip') b[at] ^= m.value;
      else b = b.slice(0, at);
    }
  }
  return b;
}

describe('fuzz: compressed-layer decoders', () => {
  for (const { setting, shape } of CASES) {
    const label = `${setting.kind} ${JSON.stringify(setting)} on [${shape}]`;
    const max = layerByteBounds(setting, shape).max;

    it(`${label}: random bytes`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 0, maxLength: max + 16 }), fc.nat(), (bytes, seed) => {
          decodeChecked(setting, shape, bytes, seed);
        }),
        params,
      );
    });

    it(`${label}: mutated valid messages, whole and in chunks`, () => {
      fc.assert(
        fc.property(
          fc.nat(),
          fc.array(mutation, { minLength: 0, maxLength: 4 }),
          fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 8 }),
          (seed, ms, cuts) => {
            const bytes = mutate(validMessage(setting, shape, seed), ms);
            const whole = decodeChecked(setting, shape, bytes, seed);
            if (ms.length === 0) expect(whole.ok, 'an unmutated message is accepted').to.equal(true);
            if (setting.kind === 'topk') {
              const ref = referenceTopk(bytes, setting.k, setting.values === 'fp32' ? 4 : 2, numel(shape));
              expect(whole.ok, 'agrees with the reference parser').to.equal(ref !== null);
              if (whole.ok && ref !== null) expectSame(whole.values, ref);
            }
            // the same bytes in chunks: the assembler refuses only what the whole-message decoder refuses
            const asm = new LayerAssembler(new Uint8Array(max));
            asm.begin(layerByteBounds(setting, shape), label);
            let verdict: Verdict;
            try {
              let off = 0;
              for (let c = 0; off < bytes.length; c++) {
                const len = cuts[c % cuts.length];
                asm.push(off, bytes.subarray(off, off + len));
                off += Math.min(len, bytes.length - off);
              }
              verdict = decodeChecked(setting, shape, asm.complete(), seed);
            } catch (e) {
              if (!(e instanceof CodecError)) throw e;
              verdict = { ok: false, code: e.code };
            }
            expect(verdict.ok).to.equal(whole.ok);
            if (verdict.ok && whole.ok)
              expect(Array.from(verdict.values)).to.deep.equal(Array.from(whole.values));
          },
        ),
        params,
      );
    });
  }
});
