/**
 * The compression session both drivers use: the plan schedule, re-plans from the median of the workers' tables
 * (one liar cannot move them), memories kept across re-plans, and pushes received chunk by chunk.
 */
import assert from 'node:assert/strict';
import { CodecError } from '../../../src/core/compression/codecError.ts';
import {
  PlanAuthority,
  WorkerCompressor,
  sessionCandidates,
  tableSeed,
  type SessionSpec,
} from '../../../src/core/compression/compressionSession.ts';
import { measureErrorTable, type ErrorModel } from '../../../src/core/compression/layerErrors.ts';
import type { LayerSetting } from '../../../src/core/compression/compressionPlan.ts';
import { buildLayout, type ParameterLayout } from '../../../src/core/layout/parameterLayout.ts';
import { deriveSeed } from '../../../src/core/random.ts';
import { gaussian, lowRank } from './codecFixtures.ts';

const layout: ParameterLayout = buildLayout([
  { name: 'fc1.weight', shape: [120, 60] },
  { name: 'fc1.bias', shape: [60] },
  { name: 'fc2.weight', shape: [60, 40] },
  { name: 'fc2.bias', shape: [40] },
  { name: 'fc3.weight', shape: [40, 10] },
]);
const lgreco: SessionSpec = {
  kind: 'lgreco',
  baseline: { kind: 'powersgd', rank: 4, values: 'bf16' },
  compressors: ['powersgd', 'topk', 'qsgd'],
  alpha: 1,
  window: 4,
  warmup: 3,
  errorModel: 'step',
};
const SEED = 5;

/** The fixture's spec under another error model. */
function withErrorModel(errorModel: ErrorModel): SessionSpec {
  return { ...(lgreco as Extract<SessionSpec, { kind: 'lgreco' }>), errorModel };
}

/**
 * Worker w's gradient in a round: per layer a signal shared by every worker (rank 1 on fc1, full rank on fc2,
 * where the baseline's rank 4 is too much and too little) plus the worker's own noise.
 */
function gradient(w: number, round: number, noise = 0.01): Float32Array {
  const g = new Float32Array(layout.totalSize);
  layout.layers.forEach((slot, l) => {
    const signal =
      l === 0
        ? lowRank(slot.size / slot.shape.at(-1)!, slot.shape.at(-1)!, 1, 10)
        : gaussian(slot.size, 10 + l);
    const own = gaussian(slot.size, deriveSeed(1, w, round, l), noise);
    for (let i = 0; i < slot.size; i++) g[slot.offset + i] = signal[i] + own[i];
  });
  return g;
}

/** Chunks of a push, `chunk` bytes each, as the wire carries them. */
function chunks(views: Uint8Array[], chunk: number): { layer: number; offset: number; data: Uint8Array }[] {
  const out: { layer: number; offset: number; data: Uint8Array }[] = [];
  views.forEach((v, layer) => {
    for (let off = 0; off < v.length; off += chunk)
      out.push({ layer, offset: off, data: v.slice(off, Math.min(v.length, off + chunk)) });
  });
  return out;
}

/**
 * Run `rounds` rounds of n workers (the last `liars` replace their tables) and return the authority. `noise`: the
 * scale of each worker's own part of its gradient (0: honest workers send the same gradient).
 */
function run(
  n: number,
  liars: number,
  rounds: number,
  lie: (t: Float64Array) => Float64Array,
  noise = 0.01,
  spec: SessionSpec = lgreco,
): PlanAuthority {
  const authority = new PlanAuthority(spec, layout, SEED);
  const workers = Array.from({ length: n }, (_, w) => new WorkerCompressor(spec, layout, SEED, w));
  const dst = new Float32Array(layout.totalSize);
  const buffer = new Uint8Array(authority.maxLayerBytes);
  for (let round = 0; round < rounds; round++) {
    const tables: Float64Array[] = [];
    workers.forEach((wk, w) => {
      const g = gradient(w, round, noise);
      if (authority.tableDue(round)) {
        const t = wk.errorTable(round, g);
        tables.push(w >= n - liars ? lie(t) : t);
      }
      const dec = authority.decoder(round, dst, buffer);
      for (const c of chunks(wk.encode(authority.plan, round, g), 97)) dec.chunk(c.layer, c.offset, c.data);
      dec.finish();
    });
    authority.closeRound(round, tables);
  }
  return authority;
}

describe('compression: session (plan schedule, robust re-plans, pushes)', () => {
  it('re-plans after the warm-up and then every window, the new plan applying from the next round', () => {
    const authority = run(3, 0, 12, (t) => t);
    assert.deepEqual(
      authority.history.map((h) => [h.planId, h.fromRound, h.tables]),
      [
        ['baseline-r0', 0, 0],
        ['lgreco-r4', 4, 3],
        ['lgreco-r8', 8, 3],
        ['lgreco-r12', 12, 3],
      ],
    );
    const replanned = authority.history[1];
    assert.ok(replanned.expectedBytes < authority.history[0].expectedBytes, 'L-GreCo sends less');
    assert.ok(replanned.budgetUsed <= 1);
    // uniform: one plan for the whole job, no tables
    const uniform = new PlanAuthority({ kind: 'uniform', baseline: lgreco.baseline }, layout, SEED);
    for (let r = 0; r < 12; r++) {
      assert.equal(uniform.tableDue(r), false);
      assert.equal(uniform.closeRound(r, []), null);
    }
    assert.equal(uniform.history.length, 1);
  });

  it('one lying worker (or two of five) cannot move the plan: the median of the tables', () => {
    // Honest workers that agree: the median is then exactly their table. (When they disagree, a liar can shift each
    // median entry within the honest range, and near-tied candidates can then swap; lgrecoPlanner.test.ts bounds
    // the entries.)
    const liars: [string, (t: Float64Array) => Float64Array][] = [
      ['inflate everything', (t) => t.map(() => 1e30)],
      ['zero everything', (t) => t.map(() => 0)],
      ['NaN', (t) => t.map(() => NaN)],
      ['negative', (t) => t.map(() => -1e30)],
      ['inflate the baseline only', (t) => t.map((v, i) => (i % 7 === 0 ? 1e12 : v))],
      ['∞ everywhere but the cheapest settings', (t) => t.map((v, i) => (i % 7 === 0 ? Infinity : 0))],
    ];
    for (const errorModel of ['step', 'feedback'] as const) {
      const spec = withErrorModel(errorModel);
      const plans = (a: PlanAuthority) => a.history.map((h) => h.settings);
      const honest = plans(run(5, 0, 4, (t) => t, 0, spec));
      assert.ok(honest.length > 1, 'a re-plan happened');
      for (const [what, lie] of liars) {
        const lied = plans(run(5, 1, 4, lie, 0, spec));
        assert.deepEqual(lied, honest, `one liar (${what}) moved the ${errorModel} plan`);
      }
      // two liars out of five still cannot
      assert.deepEqual(plans(run(5, 2, 4, (t) => t.map(() => 0), 0, spec)), honest, errorModel);
    }
  });

  it('measures its table on p = g + e under the step model and on g alone under the feedback model', () => {
    for (const errorModel of ['step', 'feedback'] as const) {
      const spec = withErrorModel(errorModel);
      const wk: WorkerCompressor = new WorkerCompressor(spec, layout, SEED, 0);
      const plan = new PlanAuthority(spec, layout, SEED).plan;
      for (let round = 0; round < 3; round++) wk.encode(plan, round, gradient(0, round)); // memories ≠ 0
      const g = gradient(0, 3);
      const p = g.slice();
      wk.saveState().forEach((m: { error: Float32Array }, l: number) => {
        const slot = layout.layers[l];
        for (let i = 0; i < slot.size; i++) p[slot.offset + i] += m.error[i];
      });
      const options = { seed: tableSeed(SEED, 3), model: errorModel };
      const onP = measureErrorTable(p, layout, sessionCandidates(spec, layout), options);
      const onG = measureErrorTable(g, layout, sessionCandidates(spec, layout), options);
      assert.notDeepEqual([...onP], [...onG], 'the memories are not empty');
      assert.deepEqual([...wk.errorTable(3, g)], [...(errorModel === 'step' ? onP : onG)], errorModel);
    }
  });

  it('memories survive a re-plan (Σ decoded + e = Σ g) and decoded pushes equal what the worker sent', () => {
    const authority = new PlanAuthority(lgreco, layout, SEED);
    const workers = [0, 1, 2].map((w) => new WorkerCompressor(lgreco, layout, SEED, w));
    const sumG = workers.map(() => new Float64Array(layout.totalSize));
    const sumD = workers.map(() => new Float64Array(layout.totalSize));
    const dst = new Float32Array(layout.totalSize);
    const buffer = new Uint8Array(authority.maxLayerBytes);
    const ranks: (number | null)[] = [];
    for (let round = 0; round < 9; round++) {
      const tables: Float64Array[] = [];
      workers.forEach((wk, w) => {
        const g = gradient(w, round, 0.05);
        if (authority.tableDue(round)) tables.push(wk.errorTable(round, g));
        const views = wk.encode(authority.plan, round, g);
        const dec = authority.decoder(round, dst, buffer);
        for (const c of chunks(views, 61)) dec.chunk(c.layer, c.offset, c.data);
        assert.equal(
          dec.finish(),
          views.reduce((s, v) => s + v.length, 0),
        );
        layout.layers.forEach((slot, l) =>
          assert.deepEqual(dst.subarray(slot.offset, slot.offset + slot.size), wk.memories[l].decoded),
        );
        for (let i = 0; i < g.length; i++) {
          sumG[w][i] += g[i];
          sumD[w][i] += dst[i];
        }
      });
      if (round === 3 || round === 4) ranks.push(workers[0].memories[0].powerSgd?.rank ?? null);
      authority.closeRound(round, tables);
    }
    assert.equal(authority.history.length, 3, 're-planned at rounds 3 and 7');
    workers.forEach((wk, w) =>
      layout.layers.forEach((slot, l) => {
        for (let i = 0; i < slot.size; i += 7) {
          const lhs = sumD[w][slot.offset + i] + wk.memories[l].error[i];
          assert.ok(Math.abs(lhs - sumG[w][slot.offset + i]) < 1e-3, `worker ${w} layer ${l} element ${i}`);
        }
      }),
    );
    // the PowerSGD factors follow the plan's rank after the re-plan (re-initialised when it changed)
    const planned = authority.history[1].settings[0];
    if (planned.startsWith('powersgd')) assert.equal(`powersgd rank ${ranks[1]} bf16`, planned);
    else assert.equal(ranks[1], ranks[0], 'factors left as they were when the layer leaves PowerSGD');
  });

  it('a worker put back to a saved state sends the same bytes again (error feedback and PowerSGD warm start)', () => {
    const authority = new PlanAuthority(lgreco, layout, SEED);
    const worker = new WorkerCompressor(lgreco, layout, SEED, 0);
    const send = (w: WorkerCompressor, round: number) =>
      w
        .encode(authority.plan, round, gradient(0, round))
        .map((v) => Buffer.from(v).toString('hex'))
        .join('|');
    for (let r = 0; r < 3; r++) send(worker, r);
    const saved = worker.saveState();
    const first = [3, 4, 5].map((r) => send(worker, r));
    worker.restoreState(saved);
    assert.deepEqual(
      [3, 4, 5].map((r) => send(worker, r)),
      first,
    );
    // The memories matter: carrying on from round 6's instead sends other bytes.
    assert.notEqual(send(worker, 3), first[0]);
    // No state: as a fresh worker.
    worker.restoreState(undefined);
    assert.equal(send(worker, 3), send(new WorkerCompressor(lgreco, layout, SEED, 0), 3));
  });

  it('refuses out-of-order layers, truncated pushes and stale-plan bytes, naming the layer', () => {
    const authority = new PlanAuthority(lgreco, layout, SEED);
    const worker = new WorkerCompressor(lgreco, layout, SEED, 0);
    const dst = new Float32Array(layout.totalSize);
    const buffer = new Uint8Array(authority.maxLayerBytes);
    const views = worker.encode(authority.plan, 0, gradient(0, 0));
    const code = (f: () => void) => {
      try {
        f();
      } catch (e) {
        assert.ok(e instanceof CodecError, String(e));
        return `${e.code}: ${e.message}`;
      }
      assert.fail('accepted');
    };
    // layer 1 skipped
    let dec = authority.decoder(0, dst, buffer);
    dec.chunk(0, 0, views[0]);
    assert.match(
      code(() => dec.chunk(2, 0, views[2])),
      /^chunk-out-of-order: chunk for layer 2, expected layer 0 or 1/,
    );
    // truncated: the push ends after layer 2
    dec = authority.decoder(0, dst, buffer);
    for (let l = 0; l < 3; l++) dec.chunk(l, 0, views[l]);
    assert.match(
      code(() => dec.finish()),
      /^incomplete: truncated push: layer 3 'fc2.bias'/,
    );
    // a layer cut short, then the next one starts
    dec = authority.decoder(0, dst, buffer);
    dec.chunk(0, 0, views[0].subarray(0, 10));
    assert.match(
      code(() => dec.chunk(1, 0, views[1])),
      /^incomplete: layer 0 'fc1.weight': 10 bytes received, the plan implies at least 1440/,
    );
    // bytes of another setting for layer 0: rank 3 instead of 4 (too short), qsgd instead of powersgd (too long)
    const other = new WorkerCompressor(lgreco, layout, SEED, 1);
    const withLayer0 = (s0: LayerSetting) => ({
      planId: 'x',
      layers: authority.plan.layers.map((s, l) => (l === 0 ? s0 : s)),
    });
    let stale = other.encode(withLayer0({ kind: 'powersgd', rank: 3, values: 'bf16' }), 0, gradient(1, 0));
    dec = authority.decoder(0, dst, buffer);
    dec.chunk(0, 0, stale[0]);
    assert.match(
      code(() => dec.chunk(1, 0, views[1])),
      /^incomplete: layer 0 'fc1.weight': 1080 bytes received, the plan implies at least 1440/,
    );
    stale = other.encode(withLayer0({ kind: 'qsgd', bits: 4, bucket: 128 }), 0, gradient(1, 0));
    dec = authority.decoder(0, dst, buffer);
    assert.match(
      code(() => dec.chunk(0, 0, stale[0])),
      /^too-large: layer 0 'fc1.weight': 3828 bytes, the plan allows at most 1440/,
    );
    // same length, wrong content: a NaN factor
    const nan = views[0].slice();
    nan[0] = 0xff;
    nan[1] = 0xff;
    dec = authority.decoder(0, dst, buffer);
    dec.chunk(0, 0, nan);
    assert.match(
      code(() => dec.chunk(1, 0, views[1])),
      /^non-finite: layer 0 'fc1.weight'/,
    );
    // a chunk beyond the layer's planned size is refused on arrival
    dec = authority.decoder(0, dst, buffer);
    dec.chunk(0, 0, views[0]);
    assert.match(
      code(() => dec.chunk(0, views[0].length, new Uint8Array(1))),
      /^too-large: layer 0 'fc1.weight'/,
    );
  });
});
