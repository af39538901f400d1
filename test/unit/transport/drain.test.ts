import { expect } from 'chai';
import { Writable } from 'node:stream';
import { drained } from '../../../src/transport/drain.ts';

/** A stream whose reader takes one write per tick: every write past the first fills it. */
function slowStream(): Writable {
  return new Writable({
    highWaterMark: 1,
    write(_chunk, _enc, callback) {
      setImmediate(callback);
    },
  });
}

describe('transport: waiting for a stream to drain', () => {
  it('a long stream that waits many times keeps no listener, and no MaxListenersExceededWarning is emitted', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const stream = slowStream();
      const before = { drain: stream.listenerCount('drain'), close: stream.listenerCount('close') };
      let waits = 0;
      for (let i = 0; i < 100; i++) {
        if (!stream.write(Buffer.alloc(16))) {
          waits++;
          await drained(stream, ['cancelled', 'close']);
        }
        expect(stream.listenerCount('cancelled')).to.equal(0);
        expect(stream.listenerCount('close')).to.equal(before.close);
        expect(stream.listenerCount('drain')).to.equal(before.drain);
      }
      expect(waits).to.be.greaterThan(10);
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).to.deep.equal([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('ends the wait when the stream closes instead of draining', async () => {
    const stream = new Writable({ highWaterMark: 1, write: () => {} }); // never drains
    expect(stream.write(Buffer.alloc(16))).to.equal(false);
    const waiting = drained(stream, ['cancelled', 'close']);
    stream.destroy();
    await waiting;
    expect(stream.listenerCount('drain')).to.equal(0);
  });
});
