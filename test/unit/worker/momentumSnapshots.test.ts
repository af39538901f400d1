import { expect } from 'chai';
import type { GradientWorker } from '../../../src/worker/gradientWorker.ts';
import { MomentumSnapshots } from '../../../src/worker/momentumSnapshots.ts';

/** The two methods MomentumSnapshots uses; the momentum of round t is [t] (none before round 1). */
function fakeWorker() {
  const w = {
    momentum: undefined as Float32Array | undefined,
    momentumState: () => w.momentum?.slice(),
    restoreMomentum: (state: Float32Array | undefined) => {
      w.momentum = state?.slice();
    },
  };
  return w;
}

function run(
  snapshots: MomentumSnapshots,
  w: ReturnType<typeof fakeWorker>,
  from: number,
  to: number,
  rollbackRound: (round: number) => number,
) {
  for (let round = from; round < to; round++) {
    snapshots.beforeRound(round, w as unknown as GradientWorker, rollbackRound(round));
    w.momentum = Float32Array.of(round + 1); // what computing the round leaves
  }
}

describe('worker momentum snapshots', () => {
  it('keep the newest two checkpoint rounds: a resume from the newest restores its momentum', () => {
    const w = fakeWorker();
    const snapshots = new MomentumSnapshots('j', 5);
    run(snapshots, w, 0, 23, () => 0);
    expect(snapshots.beforeRound(20, w as unknown as GradientWorker)).to.equal('restored');
    expect(Array.from(w.momentum!)).to.deep.equal([20]);
    expect(snapshots.beforeRound(10, w as unknown as GradientWorker)).to.equal('reset');
  });

  it('computing the last computed round again (its push did not count) starts from the state it entered it with', () => {
    const w = fakeWorker();
    const snapshots = new MomentumSnapshots('j', 5);
    run(snapshots, w, 0, 8, () => 0); // computed round 7, not a checkpoint round
    expect(snapshots.beforeRound(7, w as unknown as GradientWorker)).to.equal('restored');
    expect(Array.from(w.momentum!)).to.deep.equal([7]);
    w.momentum = Float32Array.of(8);
    // Round 0 again: no momentum yet, which is what the worker entered round 0 with.
    const first = fakeWorker();
    const fresh = new MomentumSnapshots('j', 5);
    run(fresh, first, 0, 1, () => 0);
    expect(fresh.beforeRound(0, first as unknown as GradientWorker)).to.equal('restored');
    expect(first.momentum).to.equal(undefined);
  });

  it('a worker whose push of its last round counted goes on to the next round with that round in its momentum', () => {
    const w = fakeWorker();
    const snapshots = new MomentumSnapshots('j', 5);
    run(snapshots, w, 0, 8, () => 0);
    expect(snapshots.beforeRound(8, w as unknown as GradientWorker)).to.equal('continued');
    expect(Array.from(w.momentum!)).to.deep.equal([8]);
  });

  it('an older round that is not a checkpoint round has nothing to restore: momentum starts over', () => {
    const w = fakeWorker();
    const snapshots = new MomentumSnapshots('j', 5);
    run(snapshots, w, 0, 9, () => 0);
    expect(snapshots.beforeRound(6, w as unknown as GradientWorker)).to.equal('reset');
    expect(w.momentum).to.equal(undefined);
  });

  it("keep the rollback round's snapshot beyond the newest two, so a rollback to an older good checkpoint restores it", () => {
    const w = fakeWorker();
    const snapshots = new MomentumSnapshots('j', 5);
    // The coordinator's newest good checkpoint is round 10 from round 11 on; 15..30 are not good.
    run(snapshots, w, 0, 33, (round) => (round > 10 ? 10 : 5));
    expect(snapshots.beforeRound(10, w as unknown as GradientWorker)).to.equal('restored');
    expect(Array.from(w.momentum!)).to.deep.equal([10]);
    // The round 5 snapshot, the rollback round before, went with the next snapshot.
    expect(snapshots.beforeRound(5, w as unknown as GradientWorker)).to.equal('reset');
  });
});

describe('worker error-feedback snapshots', () => {
  /** A compressor whose state after computing round t is [t + 1]. */
  function fakeCompressor() {
    const c = {
      state: undefined as number[] | undefined,
      saveState: () => c.state?.slice(),
      restoreState: (s: number[] | undefined) => {
        c.state = s?.slice();
      },
    };
    return c;
  }

  it('restores the compressor state of the checkpoint round with the momentum, and empties it without one', () => {
    const snapshots = new MomentumSnapshots('job', 5);
    const w = fakeWorker();
    const c = fakeCompressor();
    const as = (x: unknown) => x as never;
    for (let round = 0; round < 13; round++) {
      snapshots.beforeRound(round, as(w), 0, as(c));
      w.momentum = Float32Array.of(round + 1);
      c.state = [round + 1];
    }
    expect(snapshots.beforeRound(10, as(w), 0, as(c))).to.equal('restored');
    expect(c.state).to.deep.equal([10]);
    expect([...w.momentum!]).to.deep.equal([10]);
    for (let round = 10; round < 13; round++) {
      snapshots.beforeRound(round, as(w), 0, as(c));
      c.state = [round + 1];
    }
    expect(snapshots.beforeRound(7, as(w), 0, as(c))).to.equal('reset');
    expect(c.state).to.equal(undefined);
  });
});
