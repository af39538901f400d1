/** `phalanx checkpoint ls | inspect | export`, run as a user runs them (a separate process), on real files. */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeCheckpoint } from '../../src/checkpoint/checkpoint.ts';
import { encodeJobState } from '../../src/checkpoint/jobState.ts';
import { loadCheckpoint, saveCheckpoint } from '../../src/checkpoint/modelCheckpoint.ts';
import { toPyTorch } from '../../src/checkpoint/pytorchLayout.ts';
import { readPyTorchTensors, readTensorFile } from '../../src/checkpoint/tensorFiles.ts';
import { l2Norm, type NamedTensors } from '../../src/core/layout/namedTensors.ts';
import { modelLayout } from '../../src/models/registry.ts';
import type { ModelSpec } from '../../src/models/types.ts';
import { BIN, tmpDir } from '../support/processes.ts';

function phalanx(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { timeout: 60_000, env: { ...process.env, ...env } },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function plain(tensors: NamedTensors) {
  return [...tensors].map(([n, t]) => [
    n,
    t.shape,
    Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
  ]);
}

const TORCH_FILE = fileURLToPath(new URL('../fixtures/torch-transformer.safetensors', import.meta.url));
const TORCH_SPEC = (
  JSON.parse(
    readFileSync(fileURLToPath(new URL('../fixtures/torch-logits.json', import.meta.url)), 'utf8'),
  ) as {
    transformer: { spec: ModelSpec };
  }
).transformer.spec;

describe('integration: phalanx checkpoint', function () {
  this.timeout(60_000);
  let root: string;
  const mlp: ModelSpec = { kind: 'mlp', hidden: [16] };
  const layout = modelLayout(mlp);
  const params = (round: number) =>
    Float32Array.from({ length: layout.totalSize }, (_, i) => Math.cos(i * round));

  before(async () => {
    root = tmpDir('ckpt-cli');
    for (const round of [5, 10]) {
      await writeCheckpoint(
        path.join(root, 'runs'),
        encodeJobState(
          {
            jobId: 'job-mlp',
            round,
            spec: '{}',
            params: params(round),
            optimizer: { tensors: { momentum: new Float32Array(layout.totalSize) }, scalars: {} },
          },
          { spec: mlp, layout },
        ),
      );
    }
    const teacher = await readPyTorchTensors(TORCH_FILE, TORCH_SPEC, modelLayout(TORCH_SPEC));
    await saveCheckpoint(path.join(root, 'teacher'), { config: { model: TORCH_SPEC }, tensors: teacher });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('ls lists every checkpoint below DIR with round, model kind, size and date', async () => {
    const { code, stdout } = await phalanx(['checkpoint', 'ls', root]);
    expect(code).to.equal(0);
    const lines = stdout.trim().split('\n');
    expect(lines[0]).to.match(/^PATH\s+JOB\s+ROUND\s+MODEL\s+SIZE\s+CREATED$/);
    expect(lines.slice(1).map((l) => l.split(/\s{2,}/).slice(0, 4))).to.deep.equal([
      ['runs/job-mlp/round-000005', 'job-mlp', '5', 'mlp 784-16-10'],
      ['runs/job-mlp/round-000010', 'job-mlp', '10', 'mlp 784-16-10'],
      ['teacher', '-', '-', 'transformer d16 L2 H2 ffn32 ctx8 V10'],
    ]);
    expect(lines[1]).to.match(/\d+ KiB {2}\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    // The default DIR is the coordinator's checkpoint directory.
    const viaEnv = await phalanx(['checkpoint', 'ls', '-o', 'json'], {
      PHALANX_CHECKPOINT_DIR: path.join(root, 'runs'),
    });
    expect(viaEnv.code).to.equal(0);
    const listed = JSON.parse(viaEnv.stdout) as {
      path: string;
      config: { round: number; model: ModelSpec };
    }[];
    expect(listed.map((l) => [l.path, l.config.round, l.config.model])).to.deep.equal([
      ['job-mlp/round-000005', 5, mlp],
      ['job-mlp/round-000010', 10, mlp],
    ]);
  });

  it('inspect prints the config and a tensor table (name, shape, dtype, norm); --json the same as JSON', async () => {
    const dir = path.join(root, 'runs', 'job-mlp', 'round-000010');
    const { code, stdout } = await phalanx(['checkpoint', 'inspect', dir]);
    expect(code).to.equal(0);
    expect(stdout).to.match(/^model +mlp 784-16-10$/m);
    expect(stdout).to.match(/^round +10$/m);
    expect(stdout).to.match(/sha256 [0-9a-f]{64} \(verified\)$/m);
    const fc1 = params(10).subarray(0, 784 * 16);
    expect(stdout).to.match(
      new RegExp(`^fc1\\.weight +\\[784, 16\\] +F32 +${l2Norm(fc1).toPrecision(6)}$`, 'm'),
    );
    expect(stdout).to.match(/^optim\.momentum \(extra\) +\[12730\] +F32 +0\.00000$/m);

    const json = await phalanx(['checkpoint', 'inspect', path.join(dir, 'config.json'), '--json']);
    expect(json.code).to.equal(0);
    const parsed = JSON.parse(json.stdout) as {
      config: { parameters: number; jobId: string };
      tensors: { name: string; shape: number[]; dtype: string; norm: number; extra: boolean }[];
    };
    expect(parsed.config.parameters).to.equal(layout.totalSize);
    expect(parsed.config.jobId).to.equal('job-mlp');
    expect(parsed.tensors.map((t) => [t.name, t.shape, t.dtype, t.extra])).to.deep.equal([
      ['fc1.weight', [784, 16], 'F32', false],
      ['fc1.bias', [16], 'F32', false],
      ['fc2.weight', [16, 10], 'F32', false],
      ['fc2.bias', [10], 'F32', false],
      ['optim.momentum', [layout.totalSize], 'F32', true],
    ]);
    expect(parsed.tensors[0].norm).to.be.closeTo(l2Norm(fc1), 1e-9 * l2Norm(fc1));
  });

  it('export --format pytorch gives back the PyTorch state_dict the teacher came from, bit for bit', async () => {
    const out = path.join(root, 'teacher-pt.safetensors');
    const { code, stdout } = await phalanx([
      'checkpoint',
      'export',
      path.join(root, 'teacher'),
      '--out',
      out,
      '--format',
      'pytorch',
    ]);
    expect(code).to.equal(0);
    const teacherLayout = modelLayout(TORCH_SPEC);
    expect(stdout).to.include(
      `teacher-pt.safetensors (${teacherLayout.layers.length} tensors, ${teacherLayout.totalSize.toLocaleString('en')} parameters, PyTorch layout`,
    );
    const exported = await readTensorFile(out);
    expect(plain(exported.tensors)).to.deep.equal(plain((await readTensorFile(TORCH_FILE)).tensors));
    expect(exported.metadata['format']).to.equal('pt');

    // Our layout: the checkpoint's own tensors, with the config in the metadata.
    const ours = path.join(root, 'teacher.safetensors');
    expect(
      (await phalanx(['checkpoint', 'export', path.join(root, 'teacher'), '--out', ours])).code,
    ).to.equal(0);
    const file = await readTensorFile(ours);
    const teacher = await readPyTorchTensors(TORCH_FILE, TORCH_SPEC, modelLayout(TORCH_SPEC));
    expect(plain(file.tensors)).to.deep.equal(plain(teacher));
    expect(JSON.parse(file.metadata['phalanx.config']).model).to.deep.equal(TORCH_SPEC);
    expect(plain(toPyTorch('transformer', file.tensors))).to.deep.equal(plain(exported.tensors));
  });

  it('export of a job trained with optimizer.ema writes the iterate average; --weights live the parameters', async () => {
    const average = params(3);
    const dir = await writeCheckpoint(
      path.join(root, 'ema'),
      encodeJobState(
        {
          jobId: 'job-ema',
          round: 7,
          spec: '{}',
          params: params(7),
          optimizer: {
            tensors: { momentum: new Float32Array(layout.totalSize), average },
            scalars: { step: 7, averagedSteps: 7 },
          },
        },
        { spec: mlp, layout },
      ),
    ).then((m) => path.dirname(m.path));
    const flat = async (file: string) =>
      Float32Array.from(
        [...(await readTensorFile(file)).tensors.values()].flatMap((t) => Array.from(t.data)),
      );
    const delivered = path.join(root, 'ema-delivered.safetensors');
    const run = await phalanx(['checkpoint', 'export', dir, '--out', delivered]);
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stdout).to.include(
      ': the iterate average (optimizer.ema; --weights live for the live parameters)',
    );
    expect(Array.from(await flat(delivered))).to.deep.equal(Array.from(average));
    const live = path.join(root, 'ema-live.safetensors');
    expect((await phalanx(['checkpoint', 'export', dir, '--out', live, '--weights', 'live'])).code).to.equal(
      0,
    );
    expect(Array.from(await flat(live))).to.deep.equal(Array.from(params(7)));
  });

  it('import turns a PyTorch state_dict into a checkpoint, and names a mismatch in one line', async () => {
    const out = path.join(root, 'imported');
    const ok = await phalanx([
      'checkpoint',
      'import',
      TORCH_FILE,
      '--model',
      JSON.stringify(TORCH_SPEC),
      '--out',
      out,
    ]);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(ok.stdout).to.match(
      /wrote checkpoint .*imported \(transformer d16 L2 H2 ffn32 ctx8 V10, 4,768 parameters\)/,
    );
    const imported = await loadCheckpoint(out);
    expect(imported.config.model).to.deep.equal(TORCH_SPEC);
    const teacher = await readPyTorchTensors(TORCH_FILE, TORCH_SPEC, modelLayout(TORCH_SPEC));
    expect(plain(imported.tensors)).to.deep.equal(plain(teacher));

    const narrow = JSON.stringify({ ...TORCH_SPEC, dModel: 8 });
    const mismatch = await phalanx(['checkpoint', 'import', TORCH_FILE, '--model', narrow, '--out', out]);
    expect(mismatch.code).to.equal(1);
    expect(mismatch.stderr).to.match(
      /^phalanx: checkpoint: .*torch-transformer\.safetensors: PyTorch tensor 'embed\.weight' has shape \[10, 16\]; this transformer needs \[10, 8\] .*\n$/,
    );
    const badModel = await phalanx([
      'checkpoint',
      'import',
      TORCH_FILE,
      '--model',
      '{"kind":"rnn"}',
      '--out',
      out,
    ]);
    expect(badModel.code).to.equal(2);
    expect(badModel.stderr).to.match(/^phalanx: --model: kind: must be 'mlp', 'cnn' or 'transformer'\n$/);
    // The failed imports left the first one as it was.
    expect(plain((await loadCheckpoint(out)).tensors)).to.deep.equal(plain(teacher));
  });

  it('a corrupt or missing checkpoint: one line, exit 1', async () => {
    const dir = path.join(root, 'runs', 'job-mlp', 'round-000005');
    const file = path.join(dir, 'model.safetensors');
    const bytes = readFileSync(file);
    bytes[bytes.length - 1] ^= 0x80;
    writeFileSync(file, bytes);
    for (const args of [
      ['inspect', dir],
      ['export', dir, '--out', path.join(root, 'never.safetensors')],
    ]) {
      const { code, stderr } = await phalanx(['checkpoint', ...args]);
      expect(code, stderr).to.equal(1);
      expect(stderr).to.match(
        /^phalanx: checkpoint: .*round-000005\/model\.safetensors is corrupt: its sha256 [0-9a-f]{64} does not match config\.json's [0-9a-f]{64}\n$/,
      );
    }
    const missing = await phalanx(['checkpoint', 'inspect', path.join(root, 'nope')]);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.match(/^phalanx: checkpoint: .*nope: no such file or directory\n$/);
    const notDir = await phalanx(['checkpoint', 'ls', path.join(root, 'nope')]);
    expect([notDir.code, notDir.stderr]).to.deep.equal([
      1,
      `phalanx: checkpoint: ${path.join(root, 'nope')}: no such directory\n`,
    ]);
  });

  it('usage errors exit 2', async () => {
    const teacher = path.join(root, 'teacher');
    expect((await phalanx(['checkpoint', 'export', teacher])).code).to.equal(2);
    const badFormat = await phalanx(['checkpoint', 'export', teacher, '--out', 'x', '--format', 'onnx']);
    expect(badFormat.code).to.equal(2);
    expect(badFormat.stderr).to.match(/Allowed choices are safetensors, pytorch/);
    expect((await phalanx(['checkpoint', 'inspect'])).code).to.equal(2);
    expect((await phalanx(['checkpoint', 'frobnicate'])).code).to.equal(2);
  });
});
