import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import {
  DivergenceGuard,
  guardLoss,
  observeClosedRound,
  type DivergenceKind,
  type GuardObservation,
  type GuardState,
} from '../../../src/core/round/divergenceGuard.ts';
import { Rng } from '../../../src/core/random.ts';

interface RecordedRound {
  round: number;
  loss: number;
  updateNorm: number;
  accuracy?: number;
}
/** Per-round loss, update norm and accuracy of two real `simulate` runs (the fixture says which). */
const runs = JSON.parse(readFileSync(new URL('../../fixtures/guard-runs.json', import.meta.url), 'utf8')) as {
  clean: RecordedRound[];
  collapse: RecordedRound[];
};

const observation = (r: RecordedRound): GuardObservation => ({
  round: r.round,
  loss: r.loss,
  updateNorm: r.updateNorm,
  ...(r.accuracy === undefined ? {} : { evaluation: { loss: r.loss, accuracy: r.accuracy } }),
});

/**
 * A long training curve shaped like a real run: loss 2.3 → 0.25 (exponential decay), multiplicative noise of
 * ~15% per round and a 1.6× batch spike every ~50 rounds; update norm rising then decaying with ~30% noise;
 * accuracy 60% → 88% with ±2% evaluation noise every 25 rounds.
 */
function noisyTraining(rounds: number, seed: number): GuardObservation[] {
  const rng = new Rng(seed);
  const out: GuardObservation[] = [];
  for (let t = 0; t < rounds; t++) {
    const spike = rng.next() < 0.02 ? 1.6 : 1;
    const loss = (0.25 + 2.05 * Math.exp(-t / 300)) * Math.exp(0.15 * rng.normal()) * spike;
    const norm = (0.2 + 0.5 * Math.exp(-t / 500) * Math.min(1, (t + 5) / 30)) * Math.exp(0.3 * rng.normal());
    const evaluation =
      (t + 1) % 25 === 0
        ? { loss, accuracy: 0.88 - 0.28 * Math.exp(-t / 400) + 0.02 * rng.normal() }
        : undefined;
    out.push({ round: t, loss, updateNorm: norm, ...(evaluation ? { evaluation } : {}) });
  }
  return out;
}

function firstSignal(guard: DivergenceGuard, series: GuardObservation[]) {
  for (const o of series) {
    const signals = guard.observe(o);
    if (signals.length) return { round: o.round, kinds: signals.map((s) => s.kind), signals };
  }
  return undefined;
}

describe('divergence guard', () => {
  it('raises no alarm on a real clean run', () => {
    expect(firstSignal(new DivergenceGuard(), runs.clean.map(observation))).to.equal(undefined);
  });

  it('raises no alarm on long noisy training curves (10 seeds, 3000 rounds each)', () => {
    for (let seed = 1; seed <= 10; seed++) {
      expect(firstSignal(new DivergenceGuard(), noisyTraining(3000, seed)), `seed ${seed}`).to.equal(
        undefined,
      );
    }
  });

  it('lets one or two unlucky batches pass (patience 3)', () => {
    const series = noisyTraining(300, 7);
    const at = series[299].loss;
    series.push(
      { round: 300, loss: 10 * at, updateNorm: 0.3 },
      { round: 301, loss: 10 * at, updateNorm: 0.3 },
    );
    series.push({ round: 302, loss: at, updateNorm: 0.3 });
    expect(firstSignal(new DivergenceGuard(), series)).to.equal(undefined);
  });

  it('signals loss-jump on the real collapse of the mean under sign flip, long before non-finite values', () => {
    const hit = firstSignal(new DivergenceGuard(), runs.collapse.map(observation));
    expect(hit?.kinds).to.include('loss-jump');
    // The loss passes 2 × its early baseline (~2.4) at round 16 of that run and stays above: patience 3 → 18.
    expect(hit?.round).to.equal(18);
    expect(hit?.signals[0].message).to.match(/^loss-jump: loss 9\.192 > 2 × baseline 2\.\d+$/);
  });

  it('catches a slow climb that a trailing baseline would follow', () => {
    // Decrease for 200 rounds, then +1% per round: each round is only 1% above the last.
    const series = noisyTraining(200, 3);
    let loss = series[199].loss;
    for (let t = 200; t < 600; t++) {
      loss *= 1.01;
      series.push({ round: t, loss, updateNorm: 0.3 });
    }
    const hit = firstSignal(new DivergenceGuard(), series);
    expect(hit?.kinds).to.deep.equal(['loss-jump']);
    expect(hit!.round).to.be.within(200, 320);
  });

  it('signals norm-jump on a sudden update norm, against the recent rounds', () => {
    const series = noisyTraining(300, 4);
    series.push({ round: 300, loss: series[299].loss, updateNorm: 50 });
    const hit = firstSignal(new DivergenceGuard(), series);
    expect(hit?.round).to.equal(300);
    expect(hit?.kinds).to.deep.equal(['norm-jump']);
  });

  const patches: [string, Partial<GuardObservation>][] = [
    ['loss', { loss: NaN }],
    ['update norm', { updateNorm: Infinity }],
    ['evaluation loss', { evaluation: { loss: NaN, accuracy: 0.7 } }],
  ];
  for (const [what, patch] of patches) {
    it(`signals non-finite on a non-finite ${what}, even in the first round`, () => {
      const guard = new DivergenceGuard();
      const signals = guard.observe({ ...{ round: 0, loss: 2.3, updateNorm: 0.5 }, ...patch });
      expect(signals.map((s) => s.kind)).to.deep.equal(['non-finite']);
      expect(signals[0].message).to.contain(what);
    });
  }

  it('signals accuracy-collapse below (1 − accuracyDrop) × the best evaluation', () => {
    const series = noisyTraining(400, 5);
    series.push({
      round: 400,
      loss: series[399].loss,
      updateNorm: 0.3,
      evaluation: { loss: 2.3, accuracy: 0.1 },
    });
    const hit = firstSignal(new DivergenceGuard(), series);
    expect(hit?.round).to.equal(400);
    expect(hit?.kinds).to.deep.equal(['accuracy-collapse']);
    // 30% is above half of a best near 85%: no signal with accuracyDrop 0.7.
    const lenient = new DivergenceGuard({ accuracyDrop: 0.7 });
    series[400] = { ...series[400], evaluation: { loss: 1, accuracy: 0.3 } };
    expect(firstSignal(lenient, series)).to.equal(undefined);
  });

  it('keeps signalling rounds out of the baseline, and its state round-trips', () => {
    const guard = new DivergenceGuard();
    for (const o of noisyTraining(100, 6)) guard.observe(o);
    const before = guard.save();
    expect(guard.observe({ round: 100, loss: 100, updateNorm: 50 })).to.have.length(1);
    expect({ ...guard.save(), lossAbove: 0, signalled: false }).to.deep.equal(before);
    const copy = new DivergenceGuard();
    copy.load(JSON.parse(JSON.stringify(before)));
    expect(copy.observe({ round: 101, loss: 100, updateNorm: 0.3 })).to.deep.equal(
      guard.observe({ round: 101, loss: 100, updateNorm: 0.3 }),
    );
  });

  describe('health: which states a rollback may go back to', () => {
    const small = { window: 5, warmup: 3 };
    /** Health after each round of a loss series (no signal expected on any of them). */
    function healthOf(guard: DivergenceGuard, losses: number[], from = 0) {
      return losses.map((loss, i) => {
        expect(guard.observe({ round: from + i, loss, updateNorm: 1 })).to.deep.equal([]);
        return guard.isGood();
      });
    }

    it('a guard that has seen nothing is good (the initial parameters)', () => {
      expect(new DivergenceGuard().health()).to.deep.equal({ good: true });
    });

    it('turns bad once the rolling median loss passes √lossJump × the lowest one, long before the alarm', () => {
      const guard = new DivergenceGuard(small);
      // Baseline 1; a climb to 1.3 stays good (1.3 ≤ √2); at 1.5 the median of 5 follows after 3 rounds.
      expect(healthOf(guard, [1, 1, 1, 1, 1, 1.3, 1.3, 1.3, 1.3, 1.3])).to.deep.equal(Array(10).fill(true));
      expect(healthOf(guard, [1.5, 1.5, 1.5, 1.5], 10)).to.deep.equal([true, true, false, false]);
      expect(guard.health().reason).to.equal('rolling median loss 1.500 > √2 × baseline 1.000');
      // Under lossJump 3 the same 1.5 is within √3 ≈ 1.73.
      const lenient = new DivergenceGuard({ ...small, lossJump: 3 });
      expect(healthOf(lenient, [1, 1, 1, 1, 1, 1.5, 1.5, 1.5, 1.5])).to.deep.equal(Array(9).fill(true));
    });

    it('is bad while the loss is above the alarm threshold or the latest round signalled, good again after', () => {
      const guard = new DivergenceGuard(small);
      healthOf(guard, [1, 1, 1, 1, 1]);
      // One high batch: no signal yet (patience 3), but not good.
      expect(guard.observe({ round: 5, loss: 3, updateNorm: 1 })).to.deep.equal([]);
      expect(guard.health()).to.deep.equal({
        good: false,
        reason: 'the latest loss is above 2 × baseline 1.000',
      });
      expect(healthOf(guard, [1], 6)).to.deep.equal([true]);
      expect(guard.observe({ round: 7, loss: 1, updateNorm: 100 }).map((x) => x.kind)).to.deep.equal([
        'norm-jump',
      ]);
      expect(guard.isGood()).to.equal(false);
      expect(healthOf(guard, [1], 8)).to.deep.equal([true]);
    });

    it('is bad when the latest evaluation fell by more than accuracyDrop/2 from the best, before the collapse alarm', () => {
      const guard = new DivergenceGuard(small);
      const evaluate = (round: number, accuracy: number) => {
        expect(
          guard.observe({ round, loss: 1, updateNorm: 1, evaluation: { loss: 1, accuracy } }),
        ).to.deep.equal([]);
        return guard.isGood();
      };
      expect(evaluate(0, 0.8)).to.equal(true);
      // accuracyDrop 0.5: good down to 0.75 × 0.8 = 0.6; the alarm is at 0.4.
      expect(evaluate(1, 0.61)).to.equal(true);
      expect(guard.observe({ round: 2, loss: 1, updateNorm: 1 })).to.deep.equal([]);
      expect(guard.isGood(), 'the latest evaluation still counts between evaluations').to.equal(true);
      expect(evaluate(3, 0.59)).to.equal(false);
      expect(guard.health().reason).to.equal('accuracy 59.0% < 0.75 × best 80.0%');
      expect(guard.observe({ round: 4, loss: 1, updateNorm: 1 })).to.deep.equal([]);
      expect(guard.isGood()).to.equal(false);
      expect(evaluate(5, 0.7)).to.equal(true);
    });

    it('stays good on a real clean run and on long noisy training curves', () => {
      const clean = new DivergenceGuard();
      for (const r of runs.clean) {
        clean.observe(observation(r));
        expect(clean.health(), `round ${r.round}`).to.deep.equal({ good: true });
      }
      for (let seed = 1; seed <= 3; seed++) {
        const guard = new DivergenceGuard();
        const bad = noisyTraining(3000, seed).filter((o) => {
          guard.observe(o);
          return !guard.isGood();
        });
        // Only the rare 1.6× batch spikes that cross the alarm line, for the round they last.
        expect(bad.length, `seed ${seed}`).to.be.lessThan(30);
      }
    });

    it('turns bad on a slow climb well before the loss-jump alarm', () => {
      const series = noisyTraining(200, 3);
      let loss = series[199].loss;
      for (let t = 200; t < 600; t++) {
        loss *= 1.01;
        series.push({ round: t, loss, updateNorm: 0.3 });
      }
      const guard = new DivergenceGuard();
      let firstBad: number | undefined;
      const hit = series.find((o) => {
        const signalled = guard.observe(o).length > 0;
        if (firstBad === undefined && o.round >= 200 && !guard.isGood()) firstBad = o.round;
        return signalled;
      });
      expect(firstBad).to.be.a('number');
      // +1% per round: √2 is reached ~35 rounds before 2 (plus the median's lag of ~W/2 rounds for both).
      expect(hit!.round - firstBad!).to.be.at.least(25);
    });

    it('its inputs round-trip with the state, and a state without them reads as none', () => {
      const guard = new DivergenceGuard(small);
      healthOf(guard, [1, 1, 1, 1, 1]);
      guard.observe({ round: 5, loss: 1, updateNorm: 1, evaluation: { loss: 1, accuracy: 0.8 } });
      guard.observe({ round: 6, loss: 1, updateNorm: 1, evaluation: { loss: 1, accuracy: 0.5 } });
      guard.observe({ round: 7, loss: 1, updateNorm: 100 });
      const saved = guard.save();
      expect(saved).to.include({ lastAccuracy: 0.5, signalled: true });
      const copy = new DivergenceGuard(small);
      copy.load(JSON.parse(JSON.stringify(saved)) as GuardState);
      expect(copy.health()).to.deep.equal(guard.health());
      // Without the signal, the accuracy verdict must survive the round trip on its own.
      const quiet = new DivergenceGuard(small);
      quiet.load(JSON.parse(JSON.stringify({ ...saved, signalled: false })) as GuardState);
      expect(quiet.health().reason).to.equal('accuracy 50.0% < 0.75 × best 80.0%');
      const { lastAccuracy: _a, signalled: _s, ...older } = saved;
      const fromOlder = new DivergenceGuard(small);
      fromOlder.load(older);
      expect(fromOlder.health()).to.deep.equal({ good: true });
    });
  });

  it('waits for `warmup` values before the jump tests apply', () => {
    const guard = new DivergenceGuard({ warmup: 5 });
    const kinds: DivergenceKind[][] = [];
    for (let t = 0; t < 5; t++)
      kinds.push(guard.observe({ round: t, loss: t === 4 ? 50 : 2, updateNorm: 1 }).map((s) => s.kind));
    expect(kinds.flat()).to.deep.equal([]);
  });

  it('the watched loss is the median of included finite losses: a Byzantine minority cannot move it', () => {
    const w = (loss: number, included = true) => ({ included, loss });
    expect(guardLoss([w(0.5), w(0.6), w(0.7), w(1e30), w(1e30, false)])).to.be.closeTo(0.65, 1e-12);
    expect(guardLoss([w(0.5), w(NaN), w(0.7)])).to.be.closeTo(0.6, 1e-12);
    expect(Number.isNaN(guardLoss([w(NaN), w(0.7, false)]))).to.equal(true);
  });

  it('a closed round: judged with its included workers’ losses, its evaluation only when there was one', () => {
    const guard = new DivergenceGuard();
    const workers = [
      { included: true, loss: 2 },
      { included: false, loss: NaN },
    ];
    const round = { round: 0, aggregated: true, workers, updateNorm: 1, testAccuracy: NaN, testLoss: NaN };
    expect(observeClosedRound(undefined, round)).to.deep.equal([]);
    expect(observeClosedRound(guard, round)).to.deep.equal([]);
    expect(guard.save().losses).to.deep.equal([2]);
    // skipped (no quorum, or the rule excluded everyone): no worker counted and no loss, yet nothing is signalled
    // or learnt
    const skipped = { ...round, round: 1, aggregated: false, workers: [{ included: false, loss: NaN }] };
    expect(observeClosedRound(guard, { ...skipped, updateNorm: undefined })).to.deep.equal([]);
    expect(guard.save().losses).to.deep.equal([2]);
    // the same round counted as aggregated is a non-finite training loss
    const kinds = observeClosedRound(guard, { ...skipped, aggregated: true }).map((x) => x.kind);
    expect(kinds).to.deep.equal(['non-finite']);
    expect(observeClosedRound(guard, { ...round, round: 3, testAccuracy: 0.8, testLoss: 0.5 })).to.deep.equal(
      [],
    );
    expect(guard.save().bestAccuracy).to.equal(0.8);
  });

  it('refuses options that would disable a test silently', () => {
    expect(() => new DivergenceGuard({ lossJump: 1 })).to.throw(/lossJump/);
    expect(() => new DivergenceGuard({ warmup: 30 })).to.throw(/warmup/);
    expect(() => new DivergenceGuard({ accuracyDrop: 0 })).to.throw(/accuracyDrop/);
  });
});
