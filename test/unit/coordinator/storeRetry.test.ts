/** retryWhileUnavailable: retries only while the store does not answer, and only while the caller still wants it. */
import { expect } from 'chai';
import { backoffDelay, retryWhileUnavailable } from '../../../src/coordinator/storeRetry.ts';
import { StaleFenceError, StoreUnavailableError } from '../../../src/coordinator/state/stateStore.ts';

function failing(failures: Error[]): { write: () => Promise<string>; calls: () => number } {
  let calls = 0;
  return {
    write: async () => {
      const e = failures[calls++];
      if (e) throw e;
      return 'written';
    },
    calls: () => calls,
  };
}

const down = () => new StoreUnavailableError('state: commitRound failed: connection refused');

describe('retryWhileUnavailable', () => {
  it('waits out an unavailable store with doubling pauses, then resolves with the wait it took', async () => {
    const pauses: number[] = [];
    const w = failing([down(), down(), down()]);
    const waits: number[] = [];
    const out = await retryWhileUnavailable(w.write, {
      proceed: () => true,
      onUnavailable: (wait) => waits.push(wait.failedAttempts),
      sleep: async (ms) => void pauses.push(ms),
      initialDelayMs: 100,
      maxDelayMs: 250,
    });
    expect(out.value).to.equal('written');
    expect(out.wait?.failedAttempts).to.equal(3);
    expect(waits).to.deep.equal([1, 2, 3]);
    expect(pauses).to.deep.equal([100, 200, 250]);
    expect(w.calls()).to.equal(4);
  });

  it('does not retry any other error (a refused token is final)', async () => {
    const w = failing([new StaleFenceError('j', 1, 2)]);
    const err = await retryWhileUnavailable(w.write, {
      proceed: () => true,
      onUnavailable: () => {},
      sleep: async () => {},
    }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(StaleFenceError);
    expect(w.calls()).to.equal(1);
  });

  it('stops waiting once proceed() says the write is not wanted any more', async () => {
    let wanted = true;
    const w = failing([down(), down(), down(), down()]);
    const err = await retryWhileUnavailable(w.write, {
      proceed: () => wanted,
      onUnavailable: (wait) => {
        if (wait.failedAttempts === 2) wanted = false;
      },
      sleep: async () => {},
    }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(StoreUnavailableError);
    expect(w.calls(), 'no attempt after the runtime ended').to.equal(2);
  });

  it('backoffDelay: initial · 2^(n−1), capped', () => {
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(n, 200, 2000))).to.deep.equal([200, 400, 800, 1600, 2000]);
  });
});
