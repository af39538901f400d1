/**
 * Reads a server-streamed response into one result. `chunk` consumes each message; a throw cancels the call and
 * rejects with that error. `end` builds the result once the server ended the stream (a throw rejects). `error`
 * may turn a failed call into a result (for example NOT_FOUND into "nothing stored"); otherwise it rejects.
 */
import type * as grpc from '@grpc/grpc-js';

export interface ServerStreamReader<Chunk, Result> {
  chunk(message: Chunk): void;
  end(): Result;
  error?(e: grpc.ServiceError): { result: Result } | undefined;
}

export function readServerStream<Chunk, Result>(
  stream: grpc.ClientReadableStream<Chunk>,
  reader: ServerStreamReader<Chunk, Result>,
): Promise<Result> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (outcome: () => Result) => {
      if (settled) return;
      settled = true;
      try {
        resolve(outcome());
      } catch (e) {
        reject(e as Error);
      }
    };
    stream.on('data', (message: Chunk) => {
      if (settled) return;
      try {
        reader.chunk(message);
      } catch (e) {
        settled = true;
        stream.cancel();
        reject(e as Error);
      }
    });
    stream.on('error', (e: grpc.ServiceError) =>
      settle(() => {
        const recovered = reader.error?.(e);
        if (recovered) return recovered.result;
        throw e;
      }),
    );
    stream.on('end', () => settle(() => reader.end()));
  });
}
