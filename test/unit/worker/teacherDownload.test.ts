import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CONFIG_FILE, saveCheckpoint, TENSORS_FILE } from '../../../src/checkpoint/modelCheckpoint.ts';
import { toNamedTensors } from '../../../src/core/layout/namedTensors.ts';
import { createModel } from '../../../src/models/registry.ts';
import { TeacherDownload, TeacherRefusedError } from '../../../src/worker/teacherDownload.ts';

describe('worker: teacher download', () => {
  let tmp: string;
  let configJson = '';
  let bytes: Buffer;
  let sha = '';
  let params: Float32Array;

  before(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'phalanx-teacher-download-'));
    const model = createModel({ kind: 'mlp', hidden: [5] });
    params = model.initialParameters(4);
    const saved = await saveCheckpoint(path.join(tmp, 't'), {
      config: { model: model.spec },
      tensors: toNamedTensors(params, model.layout),
    });
    sha = saved.sha256;
    configJson = readFileSync(path.join(tmp, 't', CONFIG_FILE), 'utf8');
    bytes = readFileSync(path.join(tmp, 't', TENSORS_FILE));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  function download(
    data: Buffer,
    chunk = 100,
    header = { configJson, totalBytes: data.length, sha256: sha },
  ) {
    const d = new TeacherDownload();
    d.header(header);
    for (let at = 0; at < data.length; at += chunk) d.data(at, data.subarray(at, at + chunk));
    return d.finish();
  }

  it('assembles the chunks, checks the sha256 and decodes the parameters', () => {
    const teacher = download(bytes);
    expect(teacher.sha256).to.equal(sha);
    expect(teacher.bytes).to.equal(bytes.length);
    expect(Array.from(teacher.params)).to.deep.equal(Array.from(params));
  });

  it('refuses a flipped byte with a checksum mismatch', () => {
    const bad = Buffer.from(bytes);
    bad[bad.length - 1] ^= 1;
    expect(() => download(bad)).to.throw(
      TeacherRefusedError,
      /checksum mismatch: the model\.safetensors received/,
    );
  });

  it('refuses gaps, overlaps, overruns, a short stream, data before the header and a lying header', () => {
    const d = new TeacherDownload();
    expect(() => d.data(0, bytes.subarray(0, 10))).to.throw(/data before the header/);
    d.header({ configJson, totalBytes: bytes.length, sha256: sha });
    d.data(0, bytes.subarray(0, 10));
    expect(() => d.data(20, bytes.subarray(20, 30))).to.throw(/chunk at byte 20, expected byte 10/);
    expect(() => d.data(10, Buffer.alloc(bytes.length))).to.throw(/more than the announced/);
    expect(() => d.finish()).to.throw(/ended after 10 of/);
    expect(() => d.header({ configJson, totalBytes: bytes.length, sha256: sha })).to.throw(/second header/);
    expect(() =>
      download(bytes, 100, { configJson, totalBytes: bytes.length, sha256: 'b'.repeat(64) }),
    ).to.throw(/disagrees with its config\.json/);
    expect(() => download(bytes, 100, { configJson: '{', totalBytes: bytes.length, sha256: sha })).to.throw(
      /not valid JSON/,
    );
    expect(() => download(bytes, 100, { configJson, totalBytes: 2 ** 40, sha256: sha })).to.throw(
      /a size of/,
    );
  });
});
