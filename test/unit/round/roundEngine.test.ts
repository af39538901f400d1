import { expect } from 'chai';
import { JobFullError, RoundEngine, type Clock } from '../../../src/core/round/roundEngine.ts';

class FakeClock implements Clock {
  t = 1_000;
  now(): number {
    return this.t;
  }
}

const TIMEOUT = 5_000;

function engine(min: number, max: number, clock = new FakeClock()) {
  const e = new RoundEngine<string>({ min, max, roundTimeoutMs: TIMEOUT }, clock);
  return { e, clock };
}

/** An engine with `names` joined and round 0 open. */
function openWith(min: number, max: number, names: string[]) {
  const { e, clock } = engine(min, max);
  for (const n of names) e.join(n, n);
  e.open(0);
  return { e, clock };
}

describe('RoundEngine', () => {
  describe('quorum', () => {
    it('closes once every participant delivered and at least min did', () => {
      const { e } = openWith(2, 3, ['a', 'b', 'c']);
      e.deliver('a', 0, 'ga');
      e.deliver('b', 0, 'gb');
      expect(e.decide()).to.equal(undefined);
      e.deliver('c', 0, 'gc');
      expect(e.decide()).to.equal('quorum');
    });

    it('waits for workers.min even when every participant delivered (workers still joining)', () => {
      const { e, clock } = openWith(3, 4, ['a', 'b']);
      e.deliver('a', 0, 'ga');
      e.deliver('b', 0, 'gb');
      expect(e.decide()).to.equal(undefined);
      clock.t += TIMEOUT * 10;
      expect(e.decide(), 'no failure: keep waiting for joins').to.equal(undefined);
      e.join('c', 'c');
      expect(e.decide(), 'c has not pushed yet, and 2 accepted < min 3').to.equal(undefined);
      e.deliver('c', 0, 'gc');
      expect(e.decide()).to.equal('quorum');
    });

    it('never counts a rejected push toward workers.min', () => {
      const { e, clock } = openWith(2, 3, ['a', 'b', 'c']);
      e.deliver('a', 0, 'ga');
      e.fail('b', 0, { kind: 'rejected', reason: 'NaN' });
      e.fail('c', 0, { kind: 'rejected', reason: 'truncated' });
      expect(e.decide(), 'one accepted of min 2: no aggregation').to.equal(undefined);
      clock.t += TIMEOUT;
      expect(e.decide(), 'after the timeout the round is skipped, not aggregated').to.equal('no-quorum');
      const closed = e.close('no-quorum');
      expect(closed.deliveries.map((d) => d.payload)).to.deep.equal(['ga']);
      expect(closed.missing.map((m) => m.reason)).to.deep.equal(['rejected: NaN', 'rejected: truncated']);
      expect(closed.missing.map((m) => m.code)).to.deep.equal(['rejected', 'rejected']);
    });

    it('closes on quorum when a rejected worker is the only one missing and min is met', () => {
      const { e } = openWith(2, 3, ['a', 'b', 'c']);
      e.deliver('a', 0, 'ga');
      e.deliver('b', 0, 'gb');
      e.fail('c', 0, { kind: 'rejected', reason: 'bad' });
      expect(e.decide()).to.equal('quorum');
    });

    it('a rejected worker may retry within the round and then counts', () => {
      const { e } = openWith(2, 2, ['a', 'b']);
      e.deliver('a', 0, 'ga');
      e.fail('b', 0, { kind: 'rejected', reason: 'bad' });
      expect(e.decide()).to.equal(undefined);
      expect(e.deliver('b', 0, 'gb').kind).to.equal('open');
      expect(e.decide()).to.equal('quorum');
    });
  });

  describe('timeout', () => {
    it('closes at roundTimeout with min gradients and reports stragglers late', () => {
      const { e, clock } = openWith(2, 4, ['a', 'b', 'c', 'd']);
      e.deliver('b', 0, 'gb');
      e.deliver('a', 0, 'ga');
      clock.t += TIMEOUT - 1;
      expect(e.decide()).to.equal(undefined);
      clock.t += 1;
      expect(e.decide()).to.equal('timeout');
      const closed = e.close('timeout');
      expect(closed.deliveries.map((d) => d.payload)).to.deep.equal(['ga', 'gb']);
      expect(closed.missing.map((m) => [m.participant.name, m.reason])).to.deep.equal([
        ['c', 'late (timeout)'],
        ['d', 'late (timeout)'],
      ]);
      expect(closed.missing.map((m) => m.code)).to.deep.equal(['late', 'late']);
      expect(closed.collectMs).to.equal(TIMEOUT);
    });

    it('keeps waiting past the timeout below min, and closes as soon as min arrives', () => {
      const { e, clock } = openWith(2, 3, ['a', 'b', 'c']);
      e.deliver('a', 0, 'ga');
      clock.t += TIMEOUT * 3;
      expect(e.decide()).to.equal(undefined);
      e.deliver('b', 0, 'gb');
      expect(e.decide()).to.equal('timeout');
    });

    it('measures the timeout from when the round opened', () => {
      const { e, clock } = openWith(1, 2, ['a', 'b']);
      e.deliver('a', 0, 'ga');
      clock.t += TIMEOUT;
      e.close(e.decide()!);
      e.open(1);
      e.deliver('a', 1, 'ga1');
      expect(e.decide()).to.equal(undefined);
      expect(e.timeoutAt()).to.equal(clock.t + TIMEOUT);
    });
  });

  describe('pushes', () => {
    it('classifies late, duplicate, not-open, not-participant and busy pushes without changing state', () => {
      const { e } = openWith(1, 3, ['a', 'b']);
      e.deliver('a', 0, 'ga');
      expect(e.deliver('a', 0, 'again').kind).to.equal('duplicate');
      expect(e.classify('b', 1).kind).to.equal('not-open');
      expect(e.classify('z', 0).kind).to.equal('not-participant');
      expect(e.beginUpload('b', 0).kind).to.equal('open');
      expect(e.beginUpload('b', 0).kind, 'one upload in flight per worker').to.equal('busy');
      e.endUpload('b');
      expect(e.beginUpload('b', 0).kind).to.equal('open');
      e.deliver('b', 0, 'gb');
      const closed = e.close(e.decide()!);
      expect(closed.deliveries.map((d) => d.payload)).to.deep.equal(['ga', 'gb']);
      e.open(1);
      expect(e.classify('a', 0).kind).to.equal('late');
      expect(e.deliver('a', 0, 'old').kind).to.equal('late');
      expect(e.acceptedCount).to.equal(0);
    });

    it('answers a push for the closing round late, and one for the next round not-open until it opens', () => {
      const { e } = openWith(1, 2, ['a', 'b']);
      e.deliver('a', 0, 'ga');
      e.deliver('b', 0, 'gb');
      e.close('quorum');
      expect(e.classify('a', 0).kind).to.equal('late');
      expect(e.classify('a', 1).kind).to.equal('not-open');
      e.open(1);
      expect(e.classify('a', 1).kind, 'the next round collects as soon as it opens').to.equal('open');
    });

    it('orders deliveries by rank, then worker id, whatever the arrival order', () => {
      const { e } = openWith(1, 4, ['worker-3', 'worker-1', 'worker-0', 'worker-2']);
      for (const name of ['worker-2', 'worker-0', 'worker-3', 'worker-1']) e.deliver(name, 0, name);
      const closed = e.close(e.decide()!);
      expect(closed.deliveries.map((d) => d.payload)).to.deep.equal([
        'worker-0',
        'worker-1',
        'worker-2',
        'worker-3',
      ]);
    });
  });

  describe('membership', () => {
    it('gives a worker the rank its name ends with, else the lowest free rank, and refuses past max', () => {
      const { e } = engine(1, 3);
      expect(e.join('w1', 'worker-2').rank).to.equal(2);
      expect(e.join('w2', 'worker-2').rank, 'rank 2 is taken').to.equal(0);
      expect(e.join('w3', 'anon').rank).to.equal(1);
      expect(e.join('w1', 'worker-2').rank, 'joining twice is idempotent').to.equal(2);
      expect(() => e.join('w4', 'worker-9')).to.throw(JobFullError);
    });

    it('a worker that leaves before delivering is reported missing and no longer awaited', () => {
      const { e } = openWith(1, 3, ['a', 'b', 'c']);
      e.deliver('a', 0, 'ga');
      e.deliver('b', 0, 'gb');
      expect(e.decide()).to.equal(undefined);
      e.leave('c', 'heartbeat expired');
      expect(e.decide()).to.equal('quorum');
      const closed = e.close('quorum');
      expect(closed.missing.map((m) => [m.participant.name, m.reason])).to.deep.equal([
        ['c', 'heartbeat expired'],
      ]);
      expect(closed.missing[0].code).to.equal('left');
    });

    it('a worker that leaves after delivering still has its gradient aggregated', () => {
      const { e } = openWith(1, 2, ['a', 'b']);
      e.deliver('a', 0, 'ga');
      e.leave('a', 'left');
      e.deliver('b', 0, 'gb');
      const closed = e.close(e.decide()!);
      expect(closed.deliveries.map((d) => d.payload)).to.deep.equal(['ga', 'gb']);
      expect(closed.missing).to.deep.equal([]);
    });

    it('does not close a round with no participants', () => {
      const { e, clock } = openWith(1, 2, []);
      clock.t += TIMEOUT * 2;
      expect(e.decide()).to.equal(undefined);
    });
  });

  it('is late for everything once ended, and reports the final round', () => {
    const { e } = openWith(1, 1, ['a']);
    e.deliver('a', 0, 'ga');
    e.close('quorum');
    e.end(1);
    expect(e.round).to.equal(1);
    expect(e.classify('a', 1).kind).to.equal('late');
    expect(e.decide()).to.equal(undefined);
  });
});
