/**
 * One L-GreCo cycle through the pure core, as the coordinator and workers will run it: a uniform plan, workers
 * encoding with error feedback, layers crossing in chunks into the coordinator's preallocated buffers, error
 * tables from every worker (one of them lying), the median, the DP, a new plan that all workers then follow.
 */
import assert from 'node:assert/strict';
import { CodecError } from '../../../src/core/compression/codecError.ts';
import { CodecWorkspace } from '../../../src/core/compression/codecWorkspace.ts';
import {
  planBytes,
  uniformPlan,
  type CompressionPlan,
} from '../../../src/core/compression/compressionPlan.ts';
import { createErrorFeedback, type LayerMemory } from '../../../src/core/compression/errorFeedback.ts';
import { medianErrorTable } from '../../../src/core/compression/errorTableMedian.ts';
import { LayerAssembler } from '../../../src/core/compression/layerAssembler.ts';
import { encodeLayer, validateAndDecodeLayer } from '../../../src/core/compression/layerCodec.ts';
import { measureErrorTable } from '../../../src/core/compression/layerErrors.ts';
import {
  chooseSettings,
  planCandidates,
  planFromChoice,
  sizeTable,
  splitTable,
  type CandidateSpec,
} from '../../../src/core/compression/lgrecoPlanner.ts';
import { randkSeed } from '../../../src/core/compression/randk.ts';
import { buildLayout, type ParameterLayout } from '../../../src/core/layout/parameterLayout.ts';
import { deriveSeed, Rng } from '../../../src/core/random.ts';
import { gaussian, lowRank } from './codecFixtures.ts';

const layout: ParameterLayout = buildLayout([
  { name: 'conv1.weight', shape: [5, 5, 1, 20] },
  { name: 'conv1.bias', shape: [20] },
  { name: 'fc1.weight', shape: [300, 100] },
  { name: 'fc1.bias', shape: [100] },
  { name: 'fc2.weight', shape: [100, 10] },
]);
const spec: CandidateSpec = {
  compressors: ['powersgd', 'topk', 'qsgd'],
  baseline: { kind: 'powersgd', rank: 4, values: 'bf16' },
};
const JOB_SEED = 77;
const CHUNK = 1000; // bytes per chunk, small so that layers span several

/** Worker w's gradient in a round: a shared low-rank signal plus its own noise. */
function gradient(w: number, round: number): Float32Array {
  const g = new Float32Array(layout.totalSize);
  layout.layers.forEach((slot, l) => {
    const signal =
      slot.shape.length === 1
        ? gaussian(slot.size, 10 + l)
        : lowRank(slot.size / slot.shape.at(-1)!, slot.shape.at(-1)!, 2, 10 + l);
    const noise = gaussian(slot.size, deriveSeed(1, w, round, l), 0.05);
    for (let i = 0; i < slot.size; i++) g[slot.offset + i] = signal[i] + noise[i];
  });
  return g;
}

interface Worker {
  memory: LayerMemory[];
  ws: CodecWorkspace;
  out: Uint8Array;
}

/** Every layer of one worker's push under `plan`, as the chunks the coordinator receives. */
function push(
  worker: Worker,
  w: number,
  round: number,
  plan: CompressionPlan,
): { layer: number; offset: number; data: Uint8Array }[] {
  const g = gradient(w, round);
  const chunks: { layer: number; offset: number; data: Uint8Array }[] = [];
  layout.layers.forEach((slot, l) => {
    const n = encodeLayer(
      plan.layers[l],
      slot.shape,
      g.subarray(slot.offset, slot.offset + slot.size),
      worker.memory[l],
      worker.out,
      {
        sharedSeed: randkSeed(JOB_SEED, round, l),
        privateSeed: deriveSeed(JOB_SEED, w, round, l),
      },
      worker.ws,
    );
    for (let off = 0; off < n; off += CHUNK)
      chunks.push({ layer: l, offset: off, data: worker.out.slice(off, Math.min(n, off + CHUNK)) });
  });
  return chunks;
}

/** The coordinator's side of one push: assemble and decode every layer into `dst`, or reject with a CodecError. */
function receive(
  chunks: { layer: number; offset: number; data: Uint8Array }[],
  plan: CompressionPlan,
  round: number,
  asm: LayerAssembler,
  ws: CodecWorkspace,
  dst: Float32Array,
): number {
  const bounds = planBytes(plan, layout).perLayer;
  let bytes = 0;
  let at = 0;
  layout.layers.forEach((slot, l) => {
    asm.begin(bounds[l], slot.name);
    for (; at < chunks.length && chunks[at].layer === l; at++) asm.push(chunks[at].offset, chunks[at].data);
    const layerBytes = asm.complete();
    bytes += layerBytes.length;
    validateAndDecodeLayer(
      plan.layers[l],
      slot.shape,
      layerBytes,
      dst.subarray(slot.offset, slot.offset + slot.size),
      randkSeed(JOB_SEED, round, l),
      ws,
    );
  });
  return bytes;
}

describe('compression: one L-GreCo cycle through the core', () => {
  it('re-plans from the median of the workers’ tables, sends fewer bytes, and rejects a hostile push', () => {
    const n = 5;
    const workers: Worker[] = Array.from({ length: n }, () => ({
      memory: createErrorFeedback(layout),
      ws: new CodecWorkspace(),
      out: new Uint8Array(4 * Math.max(...layout.layers.map((s) => s.size))),
    }));
    const uniform = uniformPlan('uniform', spec.baseline, layout);
    const baselineBytes = planBytes(uniform, layout).total.max;
    // the coordinator's buffers, sized from the largest plan it will accept (fp32 everywhere)
    const maxLayer = planBytes(uniformPlan('dense', { kind: 'fp32' }, layout), layout).total.max;
    const asm = new LayerAssembler(new Uint8Array(maxLayer));
    const ws = new CodecWorkspace();
    ws.reserveForPlan(uniform, layout);
    const decoded = workers.map(() => new Float32Array(layout.totalSize));

    let round = 0;
    for (; round < 3; round++) {
      workers.forEach((wk, w) =>
        assert.equal(
          receive(push(wk, w, round, uniform), uniform, round, asm, ws, decoded[w]),
          baselineBytes,
        ),
      );
    }

    // window end: every worker measures its table on its own p = g + e; worker 4 lies
    const candidates = planCandidates(spec, layout);
    const tables = workers.map((wk, w) => {
      const p = new Float32Array(layout.totalSize);
      layout.layers.forEach((slot, l) =>
        p.set(
          wk.memory[l].compensate(gradient(w, round).subarray(slot.offset, slot.offset + slot.size)),
          slot.offset,
        ),
      );
      return measureErrorTable(p, layout, candidates, { seed: JOB_SEED });
    });
    tables[4] = tables[4].map((_, i) => (i % 7 === 0 ? 1e12 : 0));
    const decision = chooseSettings(
      sizeTable(candidates, layout),
      splitTable(medianErrorTable(tables, tables[0].length), candidates),
      1,
    );
    const plan = planFromChoice('lgreco-1', candidates, decision.choice);
    const planned = planBytes(plan, layout).total;
    assert.ok(decision.bytes < decision.baselineBytes && decision.budgetUsed <= 1);
    assert.ok(planned.max < baselineBytes, `${planned.max} vs ${baselineBytes}`);

    // the next rounds follow the new plan, memories carried over
    ws.reserveForPlan(plan, layout);
    for (; round < 6; round++) {
      workers.forEach((wk, w) => {
        const sent = receive(push(wk, w, round, plan), plan, round, asm, ws, decoded[w]);
        assert.ok(sent >= planned.min && sent <= planned.max);
        assert.ok(decoded[w].every(Number.isFinite));
      });
    }

    // a push made under the old plan, and random bytes, are refused with a CodecError
    const stale = push(workers[0], 0, round, uniform);
    assert.throws(() => receive(stale, plan, round, asm, ws, decoded[0]), CodecError);
    const rng = new Rng(3);
    const garbage = push(workers[1], 1, round, plan).map((c) => ({
      ...c,
      data: c.data.map(() => rng.int(256)),
    }));
    assert.throws(() => receive(garbage, plan, round, asm, ws, decoded[1]), CodecError);
  });
});
