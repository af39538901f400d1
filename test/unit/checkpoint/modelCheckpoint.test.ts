import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  loadCheckpoint,
  saveCheckpoint,
  type CheckpointConfig,
} from '../../../src/checkpoint/modelCheckpoint.ts';
import { fromNamedTensors, toNamedTensors } from '../../../src/core/layout/namedTensors.ts';
import { createModel } from '../../../src/models/registry.ts';
import type { ModelSpec } from '../../../src/models/types.ts';

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

const SPECS: ModelSpec[] = [
  { kind: 'mlp', hidden: [32, 16] },
  { kind: 'cnn' },
  { kind: 'transformer', vocab: ' .abcdefgh', dModel: 16, layers: 2, heads: 2, ffn: 32, context: 8 },
  {
    kind: 'transformer',
    vocab: ' .abcdefgh',
    dModel: 16,
    layers: 2,
    heads: 2,
    ffn: 8,
    context: 8,
    moe: { experts: 3, topK: 2, auxLossWeight: 0.01, init: 'scratch', router: 'rmoe', routerHidden: 4 },
  },
];

/** 'mlp', 'cnn', 'transformer', or 'transformer (moe, rmoe router)'. */
const title = (spec: ModelSpec) =>
  spec.kind === 'transformer' && spec.moe ? `${spec.kind} (moe, ${spec.moe.router} router)` : spec.kind;

describe('checkpoint: a directory of named tensors and config.json', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'phalanx-model-ckpt-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const spec of SPECS) {
    it(`round-trips a ${title(spec)} exactly, one tensor per layout layer, with its architecture`, async () => {
      const model = createModel(spec);
      const params = model.initialParameters(42);
      const target = path.join(dir, spec.kind);
      const saved = await saveCheckpoint(target, {
        config: { model: spec, round: 3 },
        tensors: toNamedTensors(params, model.layout),
      });
      expect((await readdir(dir)).sort()).to.deep.equal([spec.kind]);
      const loaded = await loadCheckpoint(target);
      expect(loaded.config).to.deep.equal(saved);
      expect(loaded.config.model).to.deep.equal(spec);
      expect(loaded.config.parameters).to.equal(model.layout.totalSize);
      expect(loaded.config.vocab).to.equal(spec.kind === 'transformer' ? spec.vocab : undefined);
      expect([...loaded.tensors].map(([n, t]) => [n, t.shape])).to.deep.equal(
        model.layout.layers.map((l) => [l.name, l.shape]),
      );
      const back = fromNamedTensors(loaded.tensors, model.layout);
      expect(Buffer.from(back.buffer).equals(Buffer.from(params.buffer))).to.equal(true);
      // Its config.json and its tensor file name the same checkpoint.
      for (const via of ['config.json', 'model.safetensors']) {
        expect((await loadCheckpoint(path.join(target, via))).config).to.deep.equal(saved);
      }
    });
  }

  describe('corruption is detected and the file named', () => {
    const spec = SPECS[0];
    let target: string;
    beforeEach(async () => {
      const model = createModel(spec);
      target = path.join(dir, 'ckpt');
      await saveCheckpoint(target, {
        config: { model: spec },
        tensors: toNamedTensors(model.initialParameters(1), model.layout),
      });
    });

    it('a flipped byte in model.safetensors: checksum mismatch', async () => {
      const file = path.join(target, 'model.safetensors');
      const bytes = await readFile(file);
      bytes[bytes.length - 7] ^= 0x10;
      await writeFile(file, bytes);
      const err = await rejection(loadCheckpoint(target));
      expect(err.message).to.equal(
        `checkpoint: ${file} is corrupt: its sha256 ${createHash('sha256').update(bytes).digest('hex')} does not match config.json's ${JSON.parse(await readFile(path.join(target, 'config.json'), 'utf8')).sha256}`,
      );
    });

    it('a truncated model.safetensors', async () => {
      const file = path.join(target, 'model.safetensors');
      await writeFile(file, (await readFile(file)).subarray(0, 100));
      expect((await rejection(loadCheckpoint(target))).message).to.match(
        /model\.safetensors has 100 bytes, config\.json says \d+ \(truncated or replaced\)$/,
      );
    });

    it('a config.json that does not describe the tensors, or is not valid', async () => {
      const file = path.join(target, 'config.json');
      const config = JSON.parse(await readFile(file, 'utf8')) as CheckpointConfig;
      await writeFile(file, JSON.stringify({ ...config, model: { kind: 'mlp', hidden: [33, 16] } }));
      expect((await rejection(loadCheckpoint(target))).message).to.match(
        /config\.json: parameters is 25818 but a mlp of this spec has 26,?\d+/,
      );
      await writeFile(file, JSON.stringify({ ...config, model: { kind: 'rnn' } }));
      expect((await rejection(loadCheckpoint(target))).message).to.match(/config\.json: model\.kind: /);
      await writeFile(file, '{"format": "phalanx-checkpoint"');
      expect((await rejection(loadCheckpoint(target))).message).to.match(/config\.json is not valid JSON/);
      await rm(file);
      expect((await rejection(loadCheckpoint(target))).message).to.equal(
        `checkpoint: ${target} is not a checkpoint: it has no config.json`,
      );
    });
  });

  it('extra named tensors travel beside the model and come back apart from it', async () => {
    const spec = SPECS[0];
    const model = createModel(spec);
    const momentum = Float32Array.from({ length: 5 }, (_, i) => i / 3);
    await saveCheckpoint(path.join(dir, 'c'), {
      config: { model: spec },
      tensors: toNamedTensors(model.initialParameters(1), model.layout),
      extra: new Map([['momentum.worker-0', { data: momentum, shape: [5] }]]),
    });
    const loaded = await loadCheckpoint(path.join(dir, 'c'));
    expect(loaded.config.extraTensors).to.deep.equal(['momentum.worker-0']);
    expect([...loaded.tensors.keys()]).to.deep.equal(model.layout.layers.map((l) => l.name));
    expect(Array.from(loaded.extra.get('momentum.worker-0')!.data)).to.deep.equal(Array.from(momentum));
    const clash = await rejection(
      saveCheckpoint(path.join(dir, 'd'), {
        config: { model: spec },
        tensors: toNamedTensors(model.initialParameters(1), model.layout),
        extra: new Map([['fc1.bias', { data: momentum, shape: [5] }]]),
      }),
    );
    expect(clash.message).to.match(/extra tensor 'fc1\.bias' has a model tensor's name/);
  });
});
