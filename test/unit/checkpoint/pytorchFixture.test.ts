/**
 * A model trained in PyTorch loads into ours: state_dicts written by scripts/make-torch-fixture.py (PyTorch 1.13,
 * the same architectures defined in PyTorch) go through the converter into the tfjs models, whose logits on the
 * fixture's inputs must match PyTorch's within 1e-4.
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCheckpoint, saveCheckpoint } from '../../../src/checkpoint/modelCheckpoint.ts';
import { fromPyTorch, toPyTorch } from '../../../src/checkpoint/pytorchLayout.ts';
import { readPyTorchTensors, readTensorFile } from '../../../src/checkpoint/tensorFiles.ts';
import { fromNamedTensors, type NamedTensors } from '../../../src/core/layout/namedTensors.ts';
import { layerView } from '../../../src/core/layout/parameterLayout.ts';
import { createOps } from '../../../src/models/ops.ts';
import { createModel, modelLayout } from '../../../src/models/registry.ts';
import { tf } from '../../../src/models/tf.ts';
import type { ModelSpec } from '../../../src/models/types.ts';
import { selectBackend } from '../../../src/worker/backend.ts';
import { maxAbsDiff } from '../../support/arrays.ts';

const FIXTURES = fileURLToPath(new URL('../../fixtures/', import.meta.url));

interface Fixture {
  transformer: { spec: ModelSpec; cases: { ids: number[][]; logits: number[] }[] };
  mlp: { spec: ModelSpec; cases: { images: number[]; logits: number[] }[] };
}
const fixture = JSON.parse(readFileSync(path.join(FIXTURES, 'torch-logits.json'), 'utf8')) as Fixture;

function logits(spec: ModelSpec, tensors: NamedTensors, x: Float32Array, n: number): Float32Array {
  const model = createModel(spec);
  const params = fromNamedTensors(tensors, model.layout);
  const ops = createOps({ conv: 'builtin', matMul: 'builtin' });
  return tf.tidy(() => {
    const p = model.layout.layers.map((slot) => tf.tensor(layerView(params, slot), slot.shape));
    return model.apply(p, model.input(x, n), ops).dataSync() as Float32Array;
  });
}

function transformerLogits(tensors: NamedTensors, ids: number[][]): Float32Array {
  return logits(fixture.transformer.spec, tensors, Float32Array.from(ids.flat()), ids.length);
}

function plain(tensors: NamedTensors) {
  return [...tensors].map(([n, t]) => [n, t.shape, Array.from(t.data)]);
}

describe('checkpoint: PyTorch state_dicts (fixture made by PyTorch)', function () {
  this.timeout(60_000);
  const transformerFile = path.join(FIXTURES, 'torch-transformer.safetensors');
  const mlpFile = path.join(FIXTURES, 'torch-mlp.safetensors');
  const { spec } = fixture.transformer;
  const layout = modelLayout(spec);

  before(async () => {
    await selectBackend('cpu');
  });

  it("the transformer's logits match PyTorch's within 1e-4 (full and shorter sequences)", async () => {
    const tensors = await readPyTorchTensors(transformerFile, spec, layout);
    expect([...tensors.keys()]).to.deep.equal(layout.layers.map((l) => l.name));
    for (const c of fixture.transformer.cases) {
      const ours = transformerLogits(tensors, c.ids);
      expect(ours.length).to.equal(c.logits.length);
      expect(maxAbsDiff(ours, Float32Array.from(c.logits))).to.be.below(1e-4);
    }
  });

  it("the MLP's logits match PyTorch's within 1e-4", async () => {
    const mlp = fixture.mlp;
    const tensors = await readPyTorchTensors(mlpFile, mlp.spec, modelLayout(mlp.spec));
    for (const c of mlp.cases) {
      const ours = logits(mlp.spec, tensors, Float32Array.from(c.images), c.images.length / 784);
      expect(maxAbsDiff(ours, Float32Array.from(c.logits))).to.be.below(1e-4);
    }
  });

  it('a converted state_dict saved as our checkpoint loads back to the same logits, and exports back exactly', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'phalanx-torch-'));
    try {
      const tensors = await readPyTorchTensors(transformerFile, spec, layout);
      await saveCheckpoint(path.join(dir, 'teacher'), { config: { model: spec }, tensors });
      const loaded = await loadCheckpoint(path.join(dir, 'teacher'));
      expect(loaded.config.vocab).to.equal(' .abcdefgh');
      const c = fixture.transformer.cases[0];
      expect(maxAbsDiff(transformerLogits(loaded.tensors, c.ids), Float32Array.from(c.logits))).to.be.below(
        1e-4,
      );
      // Back to PyTorch's layout: the original state_dict, bit for bit.
      const original = (await readTensorFile(transformerFile)).tensors;
      expect(plain(toPyTorch('transformer', loaded.tensors))).to.deep.equal(plain(original));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('mismatches are named precisely', () => {
    let state: NamedTensors;
    before(async () => {
      state = (await readTensorFile(transformerFile)).tensors;
    });

    it('a different width: the first tensor whose shape differs, with both shapes', () => {
      const narrower = modelLayout({ ...spec, dModel: 8 } as ModelSpec);
      expect(() => fromPyTorch('transformer', narrower, state)).to.throw(
        "PyTorch tensor 'embed.weight' has shape [10, 16]; this transformer needs [10, 8] (same layout, ours 'embed.weight' [10, 8])",
      );
      const wider = modelLayout({ ...spec, ffn: 64 } as ModelSpec);
      expect(() => fromPyTorch('transformer', wider, state)).to.throw(
        "PyTorch tensor 'blocks.0.mlp.fc.weight' has shape [32, 16]; this transformer needs [64, 16] (Linear weight [out, in], ours 'blocks.0.mlp.fc.weight' [16, 64])",
      );
    });

    it('more layers: the missing tensors; fewer: the unexpected ones', () => {
      const deeper = modelLayout({ ...spec, layers: 3 } as ModelSpec);
      expect(() => fromPyTorch('transformer', deeper, state)).to.throw(
        /does not match the architecture: missing 'blocks\.2\.ln1\.weight' \[16\], 'blocks\.2\.ln1\.bias' \[16\], .* \(12 in all\)$/,
      );
      const shallower = modelLayout({ ...spec, layers: 1 } as ModelSpec);
      expect(() => fromPyTorch('transformer', shallower, state)).to.throw(
        /not in this transformer: 'blocks\.1\.ln1\.weight', 'blocks\.1\.ln1\.bias', .* \(12 in all\)$/,
      );
    });

    it("a prefixed state_dict (DataParallel's 'module.'): says which prefix to strip", () => {
      const prefixed: NamedTensors = new Map([...state].map(([n, t]) => [`module.${n}`, t]));
      expect(() => fromPyTorch('transformer', layout, prefixed)).to.throw(
        /every name starts with 'module\.': strip that prefix when saving/,
      );
    });

    it('a file that is not safetensors names the file', async () => {
      const err = await readPyTorchTensors(path.join(FIXTURES, 'torch-logits.json'), spec, layout).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.message).to.match(/^checkpoint: .*torch-logits\.json: safetensors: /);
    });
  });
});
