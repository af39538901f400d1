/**
 * Baseline for bench:transport: a bare grpc-js server with raw-Buffer methods (no protobuf, no validation) that
 * receives a chunked upload into a preallocated buffer and serves a chunked download. Prints its port. With a
 * second argument (a directory of PEM files from `phalanx certs create`) it serves mutual TLS, as the coordinator.
 */
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { bareService } from './bareService.ts';

const CHUNK = 1 << 20;
const TOTAL = Math.ceil(Number(process.argv[2] ?? 64)) * CHUNK;
const store = Buffer.alloc(TOTAL);

const chunks: Buffer[] = [];
for (let off = 0; off < TOTAL; off += CHUNK) chunks.push(store.subarray(off, off + CHUNK));

const server = new grpc.Server({ 'grpc.max_receive_message_length': CHUNK + 65536 });
server.addService(bareService, {
  upload: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
    let off = 0;
    call.on('data', (b: Buffer) => {
      b.copy(store, off % TOTAL);
      off += b.length;
    });
    call.on('end', () => cb(null, Buffer.from(String(off))));
  },
  download: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
    void (async () => {
      for (const c of chunks) {
        if (!call.write(c)) await new Promise<void>((r) => call.once('drain', r));
      }
      call.end();
    })();
  },
});
const pki = process.argv[3];
const credentials = pki
  ? grpc.ServerCredentials.createSsl(
      readFileSync(path.join(pki, 'ca.crt')),
      [
        {
          cert_chain: readFileSync(path.join(pki, 'server.crt')),
          private_key: readFileSync(path.join(pki, 'server.key')),
        },
      ],
      true,
    )
  : grpc.ServerCredentials.createInsecure();
server.bindAsync('127.0.0.1:0', credentials, (err, port) => {
  if (err) throw err;
  console.log(`bare listening on 127.0.0.1:${port}`);
});
