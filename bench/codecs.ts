/**
 * bench:codecs — encode and decode throughput of every compressed-layer codec on one 2048 × 2048 layer
 * (4.19 M float32 = 16 MiB), against a plain copy of the same 16 MiB measured in the same run.
 *
 * encode = encodeLayer on the worker: error-feedback compensation, the codec, decoding its own bytes and
 * keeping the residual (what a worker pays per layer and round). decode = validateAndDecodeLayer on the
 * coordinator: validation against the plan, then decoding into a preallocated slice. MB/s are of the dense
 * float32 layer (16.8 MB) per second; "× copy" is the time relative to copying those bytes once.
 *
 *   npm run bench:codecs [-- --rows 2048 --cols 2048 --reps 3] [-- --json FILE]
 */
import { writeFileSync } from 'node:fs';
import { CodecWorkspace } from '../src/core/compression/codecWorkspace.ts';
import {
  describeSetting,
  layerByteBounds,
  type LayerSetting,
} from '../src/core/compression/compressionPlan.ts';
import { LayerMemory } from '../src/core/compression/errorFeedback.ts';
import { encodeLayer, validateAndDecodeLayer } from '../src/core/compression/layerCodec.ts';
import { Rng } from '../src/core/random.ts';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const ROWS = Number(flag('--rows') ?? 2048);
const COLS = Number(flag('--cols') ?? 2048);
const REPS = Number(flag('--reps') ?? 3);
const JSON_OUT = flag('--json');
const N = ROWS * COLS;
const SHAPE = [ROWS, COLS];
const MB = (4 * N) / 1e6;

const density = (d: number) => Math.round(d * N);
const SETTINGS: LayerSetting[] = [
  { kind: 'fp32' },
  { kind: 'bf16' },
  { kind: 'topk', k: density(0.01), values: 'bf16' },
  { kind: 'topk', k: density(0.01), values: 'fp32' },
  { kind: 'randk', k: density(0.01), values: 'bf16' },
  { kind: 'qsgd', bits: 4, bucket: 128 },
  { kind: 'qsgd', bits: 8, bucket: 128 },
  { kind: 'powersgd', rank: 1, values: 'bf16' },
  { kind: 'powersgd', rank: 4, values: 'bf16' },
  { kind: 'powersgd', rank: 4, values: 'int8' },
  { kind: 'powersgd', rank: 4, values: 'int4' },
];

/** Median wall time (ms) of `reps` runs after one warm-up. */
function time(fn: () => void, reps = REPS): number {
  fn();
  const t: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  t.sort((a, b) => a - b);
  return t[t.length >> 1];
}

const rng = new Rng(1);
const gradient = Float32Array.from({ length: N }, () => rng.normal() * 1e-3);
const source = new Uint8Array(gradient.buffer);
const target = new Uint8Array(4 * N);
const copyMs = time(() => target.set(source), Math.max(REPS, 5));

interface Row {
  codec: string;
  wireBytes: number;
  ratio: number;
  encodeMs: number;
  decodeMs: number;
}
const rows: Row[] = [];
const dst = new Float32Array(N);
for (const setting of SETTINGS) {
  const memory = new LayerMemory(N);
  const out = new Uint8Array(layerByteBounds(setting, SHAPE).max);
  const ws = new CodecWorkspace();
  let len = 0;
  let round = 0;
  const encodeMs = time(() => {
    round++;
    len = encodeLayer(setting, SHAPE, gradient, memory, out, { sharedSeed: 42, privateSeed: round }, ws);
  });
  const bytes = out.subarray(0, len);
  const decodeWs = new CodecWorkspace();
  const decodeMs = time(() => validateAndDecodeLayer(setting, SHAPE, bytes, dst, 42, decodeWs));
  rows.push({ codec: describeSetting(setting), wireBytes: len, ratio: (4 * N) / len, encodeMs, decodeMs });
}

const pad = (s: string, n: number) => s.padStart(n);
const fmt = (x: number, d = 1) => x.toFixed(d);
console.log(
  `layer ${ROWS} × ${COLS} = ${N.toLocaleString()} float32 (${fmt(MB)} MB); median of ${REPS} runs`,
);
console.log(`plain copy of ${fmt(MB)} MB: ${fmt(copyMs, 2)} ms = ${fmt(MB / (copyMs / 1e3), 0)} MB/s\n`);
console.log(
  [
    'codec'.padEnd(26),
    pad('wire bytes', 11),
    pad('vs fp32', 8),
    pad('encode ms', 10),
    pad('enc MB/s', 9),
    pad('× copy', 8),
    pad('decode ms', 10),
    pad('dec MB/s', 9),
    pad('× copy', 8),
  ].join(' '),
);
for (const r of rows) {
  console.log(
    [
      r.codec.padEnd(26),
      pad(r.wireBytes.toLocaleString(), 11),
      pad(`${fmt(r.ratio)}×`, 8),
      pad(fmt(r.encodeMs), 10),
      pad(fmt(MB / (r.encodeMs / 1e3), 0), 9),
      pad(fmt(r.encodeMs / copyMs), 8),
      pad(fmt(r.decodeMs), 10),
      pad(fmt(MB / (r.decodeMs / 1e3), 0), 9),
      pad(fmt(r.decodeMs / copyMs), 8),
    ].join(' '),
  );
}
if (JSON_OUT) {
  writeFileSync(
    JSON_OUT,
    JSON.stringify(
      { rows: ROWS, cols: COLS, reps: REPS, copyMs, codecs: rows, node: process.version },
      null,
      2,
    ),
  );
}
