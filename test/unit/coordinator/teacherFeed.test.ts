import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { saveCheckpoint, TENSORS_FILE } from '../../../src/checkpoint/modelCheckpoint.ts';
import { toNamedTensors } from '../../../src/core/layout/namedTensors.ts';
import { StatusError } from '../../../src/coordinator/grpcStatus.ts';
import { openTeacher } from '../../../src/coordinator/teacherFeed.ts';
import { createModel } from '../../../src/models/registry.ts';
import { CHUNK_BYTES } from '../../../src/transport/protocol.ts';

describe('coordinator: teacher feed', () => {
  let tmp: string;
  let sha = '';
  before(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'phalanx-teacher-feed-'));
    // ~1.6 MB of parameters: more than one chunk.
    const model = createModel({ kind: 'mlp', hidden: [512] });
    sha = (
      await saveCheckpoint(path.join(tmp, 't'), {
        config: { model: model.spec },
        tensors: toNamedTensors(model.initialParameters(1), model.layout),
      })
    ).sha256;
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  const teacher = (over: { sha256?: string; checkpoint?: string } = {}) => ({
    checkpoint: path.join(tmp, 't'),
    alpha: 0.5,
    temperature: 2,
    sha256: sha,
    ...over,
  });

  it('streams the header, then the file in order in chunks of at most 1 MiB', async () => {
    const stream = await openTeacher(teacher());
    expect(stream.header.header).to.include({ sha256: sha, totalBytes: stream.totalBytes });
    const parts: Buffer[] = [];
    for await (const chunk of stream.chunks) {
      expect(chunk.data!.offset).to.equal(parts.reduce((n, p) => n + p.length, 0));
      expect((chunk.data!.data as Buffer).length).to.be.at.most(CHUNK_BYTES);
      parts.push(chunk.data!.data as Buffer);
    }
    expect(parts.length).to.be.greaterThan(1);
    expect(Buffer.concat(parts).equals(readFileSync(path.join(tmp, 't', TENSORS_FILE)))).to.equal(true);
  });

  it('refuses with FAILED_PRECONDITION when the checkpoint is not the pinned one or is gone, naming no path', async () => {
    for (const over of [{ sha256: 'c'.repeat(64) }, { checkpoint: path.join(tmp, 'gone') }]) {
      let error: unknown;
      try {
        await openTeacher(teacher(over));
      } catch (e) {
        error = e;
      }
      expect(error).to.be.instanceOf(StatusError);
      expect((error as StatusError).code).to.equal(grpc.status.FAILED_PRECONDITION);
      expect((error as StatusError).message).not.to.include(tmp);
    }
  });
});
