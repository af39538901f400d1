import { expect } from 'chai';
import { getEventListeners } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { Backoff, formatDelay, sleep, unreachableReason } from '../../../src/worker/retry.ts';

describe('worker retry: backoff, sleep, reasons', () => {
  it('backoff doubles from the base up to the cap, each delay jittered within [d/2, d]', () => {
    const low = new Backoff(1000, 30_000, () => 0);
    const high = new Backoff(1000, 30_000, () => 1);
    const lows = Array.from({ length: 8 }, () => low.next());
    const highs = Array.from({ length: 8 }, () => high.next());
    expect(highs).to.deep.equal([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    expect(lows).to.deep.equal(highs.map((d) => d / 2));
    high.reset();
    expect(high.next()).to.equal(1000);
  });

  it('a sleep leaves no abort listener behind, whether it ends by time or by abort', async () => {
    const controller = new AbortController();
    for (let i = 0; i < 50; i++) await sleep(0, controller.signal);
    expect(getEventListeners(controller.signal, 'abort')).to.have.length(0);
    const pending = sleep(60_000, controller.signal);
    expect(getEventListeners(controller.signal, 'abort')).to.have.length(1);
    controller.abort();
    await pending;
    expect(getEventListeners(controller.signal, 'abort')).to.have.length(0);
  });

  it('names the socket error inside grpc-js details, else the status', () => {
    const refused = Object.assign(new Error('14 UNAVAILABLE'), {
      code: grpc.status.UNAVAILABLE,
      details:
        'No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1 (2026-12-01T14:14:36Z)',
    });
    expect(unreachableReason(refused)).to.equal('ECONNREFUSED');
    const dns = Object.assign(new Error('14 UNAVAILABLE'), {
      code: grpc.status.UNAVAILABLE,
      details: 'Name resolution failed for target dns:nohost.invalid:7070',
    });
    expect(unreachableReason(dns)).to.equal('name resolution failed');
    const deadline = Object.assign(new Error('4'), {
      code: grpc.status.DEADLINE_EXCEEDED,
      details: 'Deadline exceeded',
    });
    expect(unreachableReason(deadline)).to.equal('DEADLINE_EXCEEDED');
  });

  it('delays read as seconds', () => {
    expect(formatDelay(420)).to.equal('0.4s');
    expect(formatDelay(3660)).to.equal('3.7s');
    expect(formatDelay(12_400)).to.equal('12s');
  });
});
