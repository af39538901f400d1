/**
 * Back-pressure on a gRPC stream: wait until it drains or can no longer be written. Both outcomes are listened
 * for and both listeners are removed when either fires, so a long stream that waits many times accumulates none.
 */
import type { EventEmitter } from 'node:events';

/** Resolves on 'drain' or on the first of `endEvents` (e.g. 'cancelled', 'error', 'close'). */
export function drained(stream: EventEmitter, endEvents: readonly string[]): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      stream.off('drain', done);
      for (const e of endEvents) stream.off(e, done);
      resolve();
    };
    stream.on('drain', done);
    for (const e of endEvents) stream.on(e, done);
  });
}
