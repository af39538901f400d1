import { expect } from 'chai';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { JobSpecError, validateJobSpec } from '../../../src/config/jobSpec.ts';
import {
  admitJob,
  checkpointDirectory,
  formatBytes,
  jobMemory,
  parseByteSize,
  textSourceFile,
  type AdmissionConfig,
} from '../../../src/coordinator/admission.ts';

describe('coordinator: admission', () => {
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'phalanx-admission-unit-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  const config = (root: string): AdmissionConfig => ({
    checkpointRoot: root,
    dataRoots: [],
    memoryBudgetBytes: 2 ** 31,
  });

  it('estimates coordinator memory from the spec: 4 bytes × parameters × copies', () => {
    // mlp [128]: 101,770 parameters; params + update + feed + the iterate average + 2·8 + 4 push buffers, SGD
    // without momentum
    expect(jobMemory(validateJobSpec({}))).to.deep.equal({
      parameters: 101_770,
      copies: 24,
      bytes: 4 * 101_770 * 24,
    });
    expect(jobMemory(validateJobSpec({ optimizer: { kind: 'sgd', ema: 0 } })).copies).to.equal(23);
    // Adam keeps two moments; bf16 halves the serialised feed
    const adam = jobMemory(
      validateJobSpec({ optimizer: { kind: 'adam' }, compression: { encoding: 'bf16' } }),
    );
    expect(adam.copies).to.equal(2 + 0.5 + 2 + 1 + 20);
    expect(jobMemory(validateJobSpec({ model: { kind: 'cnn' }, workers: { max: 12 } })).bytes).to.equal(
      4 * 431_080 * 32,
    );
  });

  it('parses and prints byte sizes', () => {
    expect(parseByteSize('2GiB')).to.equal(2 * 1024 ** 3);
    expect(parseByteSize('512 MiB')).to.equal(512 * 1024 ** 2);
    expect(parseByteSize('1.5G')).to.equal(1.5 * 1024 ** 3);
    expect(parseByteSize('3MB')).to.equal(3e6);
    expect(parseByteSize('1000')).to.equal(1000);
    expect(() => parseByteSize('lots')).to.throw(/invalid size 'lots'/);
    expect(formatBytes(2 * 1024 ** 3)).to.equal('2.0 GiB');
  });

  it('puts checkpoints under the checkpoint root, also before that directory exists', () => {
    const root = path.join(tmp, 'fresh', 'checkpoints');
    expect(checkpointDirectory(validateJobSpec({}), config(root))).to.equal(root);
    expect(checkpointDirectory(validateJobSpec({ checkpoint: { dir: 'runs/a' } }), config(root))).to.equal(
      path.join(root, 'runs', 'a'),
    );
  });

  it('refuses a checkpoint sub-directory that leads out through a symbolic link', () => {
    const root = path.join(tmp, 'linked', 'checkpoints');
    mkdirSync(root, { recursive: true });
    symlinkSync(tmp, path.join(root, 'out'));
    symlinkSync(path.join(root, '.'), path.join(root, 'self'));
    expect(() =>
      checkpointDirectory(validateJobSpec({ checkpoint: { dir: 'out/x' } }), config(root)),
    ).to.throw(JobSpecError, /checkpoint\.dir: leads out of the coordinator's checkpoint directory/);
    // a link that stays inside is fine
    expect(checkpointDirectory(validateJobSpec({ checkpoint: { dir: 'self/x' } }), config(root))).to.equal(
      path.join(root, 'self', 'x'),
    );
  });

  it('accepts a text data.source only as a file inside a data root, with one message for every refusal', () => {
    const root = path.join(tmp, 'texts');
    mkdirSync(path.join(root, 'dir'), { recursive: true });
    writeFileSync(path.join(root, 'kjv.txt'), 'In the beginning\n');
    writeFileSync(path.join(tmp, 'secret.txt'), 'x\n');
    symlinkSync(path.join(tmp, 'secret.txt'), path.join(root, 'link.txt'));
    const real = realpathSync(path.join(root, 'kjv.txt'));
    expect(textSourceFile('kjv.txt', [root])).to.equal(real);
    const spec = validateJobSpec({
      model: { kind: 'transformer' },
      data: { kind: 'text', source: 'kjv.txt' },
    });
    expect(admitJob(spec, { ...config(tmp), dataRoots: [root] }).data.source).to.equal(real);
    for (const source of ['../secret.txt', path.join(tmp, 'secret.txt'), 'link.txt', 'dir', 'missing.txt']) {
      expect(() => textSourceFile(source, [root]), source).to.throw(
        JobSpecError,
        /^invalid job spec:\n {2}- data\.source: no text file by that name in the coordinator's data roots/,
      );
    }
  });
});
