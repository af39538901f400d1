import { expect } from 'chai';
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { readServerStream } from '../../../src/transport/serverStream.ts';

/** The part of a grpc-js ClientReadableStream the reader uses: events and cancel(). */
class FakeStream extends EventEmitter {
  cancelled = 0;
  cancel() {
    this.cancelled++;
  }
}

const serviceError = (code: grpc.status) =>
  Object.assign(new Error(`code ${code}`), { code, details: '', metadata: new grpc.Metadata() });

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

function read(stream: FakeStream, error?: (e: grpc.ServiceError) => { result: number[] } | undefined) {
  const got: number[] = [];
  const result = readServerStream<number, number[]>(stream as unknown as grpc.ClientReadableStream<number>, {
    chunk(n) {
      if (n < 0) throw new Error(`bad chunk ${n}`);
      got.push(n);
    },
    end() {
      if (got.length === 0) throw new Error('nothing received');
      return got;
    },
    ...(error ? { error } : {}),
  });
  return { got, result };
}

describe('transport: readServerStream', () => {
  it('collects the chunks and resolves with end()', async () => {
    const s = new FakeStream();
    const { result } = read(s);
    s.emit('data', 1);
    s.emit('data', 2);
    s.emit('end');
    expect(await result).to.deep.equal([1, 2]);
    expect(s.cancelled).to.equal(0);
  });

  it('a chunk that throws cancels the call once, rejects, and nothing after it counts', async () => {
    const s = new FakeStream();
    const { got, result } = read(s);
    s.emit('data', 1);
    s.emit('data', -1);
    s.emit('data', 3);
    s.emit('error', serviceError(grpc.status.CANCELLED));
    s.emit('end');
    expect((await rejection(result)).message).to.equal('bad chunk -1');
    expect(got).to.deep.equal([1]);
    expect(s.cancelled).to.equal(1);
  });

  it('end() that throws rejects', async () => {
    const s = new FakeStream();
    const { result } = read(s);
    s.emit('end');
    expect((await rejection(result)).message).to.equal('nothing received');
  });

  it('an error rejects unless error() recovers it into a result', async () => {
    const plain = new FakeStream();
    const a = read(plain);
    plain.emit('error', serviceError(grpc.status.INTERNAL));
    expect((await rejection(a.result)).message).to.equal('code 13');

    const recovering = new FakeStream();
    const b = read(recovering, (e) => (e.code === grpc.status.NOT_FOUND ? { result: [] } : undefined));
    recovering.emit('error', serviceError(grpc.status.NOT_FOUND));
    expect(await b.result).to.deep.equal([]);
  });
});
