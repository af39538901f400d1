/** The dashboard's pure logic (the same module the browser loads): heat-map cells, series, alerts. */
import { expect } from 'chai';
import {
  accuracySeries,
  addReport,
  alerts,
  compressionView,
  FLAG_WINDOW,
  heatMap,
  lossRise,
  MIN_STALL_MS,
  phaseSeries,
  stallAfterMs,
  workerSeries,
  type Report,
  type WorkerRow,
} from '../../../src/coordinator/dashboard/static/model.js';

function worker(name: string, rank: number, over: Partial<WorkerRow> = {}): WorkerRow {
  return {
    workerId: `id-${name}`,
    name,
    rank,
    included: true,
    trust: 1,
    weight: 0.25,
    norm: 2,
    cosine: 0.8,
    reason: '',
    byzantine: '',
    ...over,
  };
}

/** A round in which `flagged` names the workers excluded by the rule, `missing` those with no gradient. */
function round(
  r: number,
  opts: {
    flagged?: string[];
    missing?: Record<string, string>;
    loss?: number | null;
    extra?: Partial<Report>;
  } = {},
): Report {
  const names = ['w0', 'w1', 'w2', 'w3'];
  const missing = opts.missing ?? {};
  return {
    jobId: 'job',
    round: r,
    rule: 'flag',
    workers: names
      .filter((n) => !(n in missing))
      .map((n, i) =>
        opts.flagged?.includes(n)
          ? worker(n, i, { included: false, trust: 0, weight: 0, reason: `flag: points against (${n})` })
          : worker(n, i),
      ),
    missing: Object.entries(missing).map(([n, reason]) =>
      worker(n, names.indexOf(n), { included: false, trust: 0, weight: 0, reason }),
    ),
    trainLoss: opts.loss === undefined ? 1 : opts.loss,
    testAccuracy: null,
    testLoss: null,
    timings: { collectMs: 10, aggregateMs: 5, optimizeMs: 1, totalMs: 16 },
    finishedAtMs: 1000 + r,
    divergence: [],
    rollbacks: 0,
    ...opts.extra,
  };
}

function history(n: number, make: (r: number) => Report): Report[] {
  let h: Report[] = [];
  for (let r = 0; r < n; r++) h = addReport(h, make(r));
  return h;
}

const running = { running: true, sinceLastMs: 0 };

describe('dashboard model', () => {
  describe('heatMap', () => {
    it('marks excluded workers flagged with their reason, missing workers missing, the rest ok', () => {
      const h = [round(0, { flagged: ['w3'], missing: { w2: 'rejected: non-finite gradient' } }), round(1)];
      const map = heatMap(h);
      expect(map.workers).to.deep.equal(['w0', 'w1', 'w2', 'w3']);
      expect(map.rounds).to.deep.equal([1, 2]);
      const cell = (w: string, r: number) => map.cells.find((c) => c.worker === w && c.round === r)!;
      expect(cell('w3', 1).status).to.equal('flagged');
      expect(cell('w3', 1).reason).to.equal('flag: points against (w3)');
      expect(cell('w2', 1).status).to.equal('missing');
      expect(cell('w2', 1).reason).to.match(/non-finite/);
      expect(cell('w0', 1).status).to.equal('ok');
      expect(cell('w3', 2).status).to.equal('ok');
      expect(map.cells).to.have.length(8);
    });

    it('flags an included worker the rule gave a reason against', () => {
      const r = round(0);
      r.workers[1] = worker('w1', 1, { reason: 'clipped to τ' });
      expect(heatMap([r]).cells.find((c) => c.worker === 'w1')!.status).to.equal('flagged');
    });

    it('shows only the last `window` rounds', () => {
      const map = heatMap(
        history(10, (r) => round(r)),
        3,
      );
      expect(map.rounds).to.deep.equal([8, 9, 10]);
      expect(map.cells.every((c) => c.round >= 8)).to.equal(true);
    });
  });

  describe('addReport', () => {
    it('after a rollback, a replayed round replaces the old one and drops every later round', () => {
      let h = history(5, (r) => round(r));
      h = addReport(h, round(2, { extra: { rollbacks: 1, rule: 'median' } }));
      expect(h.map((r) => r.round)).to.deep.equal([0, 1, 2]);
      expect(h[2].rule).to.equal('median');
    });
  });

  describe('series', () => {
    it('turns null (NaN in JSON) into gaps and rounds into 1-based x values', () => {
      const h = [round(0, { loss: null }), round(1, { loss: 0.5 })];
      h[1].testAccuracy = 0.8;
      expect(accuracySeries(h)).to.deep.equal([[2], [80]]);
      const norms = workerSeries([round(0, { missing: { w1: 'late' } }), round(1)], 'norm');
      expect(norms.data[0]).to.deep.equal([1, 2]);
      expect(norms.data[2]).to.deep.equal([null, 2]);
    });

    it('gives every timing but the total as a phase, and none when there are no timings', () => {
      const phases = phaseSeries([round(0)])!;
      expect(phases.phases).to.deep.equal(['collectMs', 'aggregateMs', 'optimizeMs']);
      expect(phases.data.slice(1)).to.deep.equal([[10], [5], [1]]);
      expect(phaseSeries([round(0, { extra: { timings: {} } })])).to.equal(undefined);
    });

    it('reads the last compressed round: per-layer bytes beside the plan settings', () => {
      const h = [
        round(0, {
          extra: {
            compression: {
              planId: 'p1',
              settings: ['fp32', 'topk k 10 bf16'],
              layerBytes: [400, 40],
              bytes: 440,
              pushes: 4,
              ratio: 3,
              budgetUsed: null,
              nextPlanId: '',
            },
          },
        }),
        round(1),
      ];
      const view = compressionView(h)!;
      expect(view.round).to.equal(1);
      expect(view.layers).to.deep.equal([
        { layer: 0, bytes: 400, setting: 'fp32' },
        { layer: 1, bytes: 40, setting: 'topk k 10 bf16' },
      ]);
      expect(compressionView([round(0)])).to.equal(undefined);
    });
  });

  describe('alerts', () => {
    it(`fires for a worker flagged in more than half of the last ${FLAG_WINDOW} rounds, not at exactly half`, () => {
      // 60 rounds: w3 flagged in the first 10 (outside the window) and in 25 of the last 50 → exactly half.
      const half = history(60, (r) => round(r, { flagged: r < 10 || r % 2 === 0 ? ['w3'] : [] }));
      expect(alerts(half, running).filter((a) => a.kind === 'flagged')).to.deep.equal([]);
      // One more flagged round within the window → 26 of 50.
      const more = history(60, (r) => round(r, { flagged: r < 10 || r % 2 === 0 || r === 59 ? ['w3'] : [] }));
      const fired = alerts(more, running).filter((a) => a.kind === 'flagged');
      expect(fired.map((a) => a.worker)).to.deep.equal(['w3']);
      expect(fired[0].message)
        .to.match(/26 of the last 50 rounds/)
        .and.match(/flag: points against/);
    });

    it('counts rejected gradients against a worker, late ones not', () => {
      const h1 = history(4, (r) => round(r, { missing: { w2: 'rejected: wrong shape' } }));
      expect(alerts(h1, running).map((a) => a.worker)).to.deep.equal(['w2']);
      const h2 = history(4, (r) => round(r, { missing: { w2: 'late: missed the deadline' } }));
      expect(alerts(h2, running)).to.deep.equal([]);
    });

    it('reports a stall only while running and only past the threshold', () => {
      const h = history(3, (r) => round(r));
      expect(stallAfterMs(h)).to.equal(MIN_STALL_MS);
      const stalled = { running: true, sinceLastMs: MIN_STALL_MS + 1 };
      expect(alerts(h, stalled).map((a) => a.kind)).to.deep.equal(['stall']);
      expect(alerts(h, { running: true, sinceLastMs: MIN_STALL_MS })).to.deep.equal([]);
      expect(alerts(h, { running: false, sinceLastMs: 10 * MIN_STALL_MS })).to.deep.equal([]);
      // Slow rounds (60 s each) raise the threshold to five of them.
      const slow = history(3, (r) => round(r, { extra: { timings: { totalMs: 60_000 } } }));
      expect(stallAfterMs(slow)).to.equal(300_000);
      expect(alerts(slow, stalled)).to.deep.equal([]);
    });

    it('reports divergence: a non-finite loss, a guard signal, a rollback, a sharply rising loss', () => {
      const nan = history(3, (r) => round(r, { loss: r === 2 ? null : 1 }));
      expect(alerts(nan, running).map((a) => a.kind)).to.deep.equal(['divergence']);
      const guard = [round(0, { extra: { divergence: ['loss rose 10×'] } })];
      expect(alerts(guard, running)[0].message).to.match(/divergence guard: loss rose 10×/);
      const rolled = [round(0, { extra: { rollbacks: 1, rule: 'median' } })];
      expect(alerts(rolled, running)[0].message).to.match(/1 rollback.*rule now median/);
      const healthy = history(40, (r) => round(r, { loss: 2 / (1 + r) }));
      expect(lossRise(healthy)).to.equal(undefined);
      expect(alerts(healthy, running)).to.deep.equal([]);
      // Loss falls to 0.1, then climbs to 1: the mean of the last 10 is well above twice its best.
      const rising = history(40, (r) => round(r, { loss: r < 20 ? 0.1 : 0.1 + (r - 19) * 0.05 }));
      const rise = lossRise(rising)!;
      expect(rise.best).to.be.closeTo(0.1, 1e-9);
      expect(alerts(rising, running).map((a) => a.kind)).to.deep.equal(['divergence']);
    });
  });
});
