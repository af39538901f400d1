/**
 * A compressed job end to end over real loopback gRPC: `phalanx launch` (coordinator + 3 worker processes) with
 * compression lgreco on the character transformer (its layers are the plan's layers; re-planned twice from the
 * workers' error tables), with uniform topk, and with uniform qsgd under the median with a label-flipping worker.
 * The coordinator's
 * round reports carry the plans and the bytes received, and `simulate()` (the same session, in process) ends
 * with the same parameters, the same plans and the same bytes: plans, error feedback, randk/qsgd seeds and
 * decoding are the same on both paths.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { listCheckpoints } from '../../src/checkpoint/checkpoint.ts';
import { checkpointParams } from '../support/checkpoints.ts';
import type { LaunchReport } from '../../src/cli/launch.ts';
import { validateJobSpec, type JobSpecInput } from '../../src/config/jobSpec.ts';
import { BUNDLED_EXCERPT } from '../../src/data/text.ts';
import { simulate } from '../../src/simulation/simulate.ts';
import { BIN } from '../support/processes.ts';
import { maxAbsDiff } from '../support/arrays.ts';

const ROUNDS = 8;

function jobSpec(name: string, compression: JobSpecInput['compression']): JobSpecInput {
  return {
    name,
    seed: 13,
    model: { kind: 'mlp', hidden: [24] },
    data: { batchSize: 16, maxTrain: 3000, maxTest: 200 },
    optimizer: { kind: 'sgd', lr: 0.1, momentum: 0.9 },
    rounds: ROUNDS,
    // min = max: every round waits for all three workers.
    workers: { min: 3, max: 3, roundTimeout: '60s' },
    aggregation: { rule: 'median', f: 1 },
    checkpoint: { every: ROUNDS, keep: 1 },
    evaluation: { every: ROUNDS, limit: 200 },
    compression,
  };
}

async function launch(
  dir: string,
  spec: JobSpecInput,
  byzantine?: { count: number; attack: string },
): Promise<{ params: Float32Array; report: LaunchReport }> {
  const config = path.join(dir, `${spec.name}.yaml`);
  const reportFile = path.join(dir, `${spec.name}.report.json`);
  writeFileSync(config, YAML.stringify(spec));
  const args = [BIN, 'launch', '--config', config, '--workers', '3', '--port', '0', '--backend', 'wasm'];
  args.push('--data-dir', dir, '--report', reportFile);
  if (byzantine) args.push('--byzantine', String(byzantine.count), '--attack', byzantine.attack);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr.on('data', (b: Buffer) => (output += b.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  expect(code, `phalanx launch failed:\n${output.slice(-3000)}`).to.equal(0);
  const report = JSON.parse(readFileSync(reportFile, 'utf8')) as LaunchReport;
  expect(report.state).to.equal('completed');
  // the progress lines show the ratio
  expect(output).to.match(/sent [\d.]+ kB \([\d.]+× < fp32, plan /);
  const manifests = await listCheckpoints(path.join(dir, 'checkpoints'), report.job);
  return { params: await checkpointParams(manifests.at(-1)!), report };
}

describe('integration: compressed jobs over gRPC match simulate()', function () {
  this.timeout(180_000);
  let dir: string;
  const savedText = process.env.PHALANX_TEXT;

  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'phalanx-compressed-'));
    process.env.PHALANX_TEXT = BUNDLED_EXCERPT; // the launched processes inherit it
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    if (savedText === undefined) delete process.env.PHALANX_TEXT;
    else process.env.PHALANX_TEXT = savedText;
  });

  it('lgreco on the transformer LM: re-plans at rounds 2 and 5 from the error tables, same plans (integer-coded factors among them), bytes and parameters', async () => {
    const spec: JobSpecInput = {
      ...jobSpec('compressed-lgreco-lm', {
        kind: 'lgreco',
        compressors: ['powersgd', 'topk', 'qsgd'],
        baseline: { kind: 'powersgd', rank: 2 },
        warmup: 2,
        window: 3,
      }),
      model: { kind: 'transformer', dModel: 16, layers: 1, heads: 2, ffn: 32, context: 16 },
      data: { kind: 'text', seqLen: 16, batchSize: 4, maxTrain: 500, maxTest: 20 },
      evaluation: { every: ROUNDS },
    };
    const { params, report } = await launch(dir, spec);
    const sim = await simulate(validateJobSpec(spec), { backend: 'wasm' });
    const c = report.compression!;
    expect(c.plans.map((p) => [p.planId, p.fromRound])).to.deep.equal([
      ['baseline-r0', 0],
      ['lgreco-r3', 3],
      ['lgreco-r6', 6],
    ]);
    // every transformer tensor is a layer of the plan: matrices under PowerSGD, vectors dense in the baseline
    const layers = sim.compression!.plans[0].settings;
    expect(layers).to.have.length(4 + 12);
    expect(layers.filter((s) => s.startsWith('powersgd')).length).to.be.greaterThan(2);
    expect(sim.compression!.plans[2].settings).to.not.deep.equal(layers);
    expect(c.plans.map((p) => p.settings)).to.deep.equal(sim.compression!.plans.map((p) => p.settings));
    // the re-plans use PowerSGD factors in integer codes (the default candidates), so both paths carry them
    const coded = c.plans.slice(1).flatMap((p) => p.settings.filter((s) => / int[48]$/.test(s)));
    expect(coded.length, JSON.stringify(c.plans)).to.be.greaterThan(0);
    expect(c.bytes).to.equal(sim.compression!.bytes);
    expect(c.ratio).to.be.greaterThan(2);
    expect(maxAbsDiff(sim.params, params)).to.be.at.most(1e-6);
  });

  it('uniform topk (randk-free sparse values): one plan, same bytes and parameters', async () => {
    const spec = jobSpec('compressed-topk', {
      kind: 'uniform',
      baseline: { kind: 'topk', density: 0.05, values: 'fp32' },
    });
    const { params, report } = await launch(dir, spec);
    const sim = await simulate(validateJobSpec(spec), { backend: 'wasm' });
    const c = report.compression!;
    expect(c.plans.map((p) => p.planId)).to.deep.equal(['baseline-r0']);
    expect(c.plans[0].settings[0]).to.match(/^topk k \d+ fp32$/);
    expect(c.bytes).to.equal(sim.compression!.bytes);
    expect(c.ratio).to.be.greaterThan(5);
    expect(maxAbsDiff(sim.params, params)).to.be.at.most(1e-6);
    // compression matters: the dense run of the same spec ends elsewhere
    const dense = await simulate(validateJobSpec({ ...spec, compression: { kind: 'none' } }), {
      backend: 'wasm',
    });
    expect(maxAbsDiff(dense.params, params)).to.be.greaterThan(1e-4);
  });

  it('qsgd under the median with a label-flipping worker: the rule sees the decoded vectors, as in simulate', async () => {
    const spec = jobSpec('compressed-qsgd-labelflip', {
      kind: 'uniform',
      baseline: { kind: 'qsgd', bits: 3 },
    });
    const { params, report } = await launch(dir, spec, { count: 1, attack: 'labelflip' });
    const sim = await simulate(
      validateJobSpec({ ...spec, simulate: { byzantine: { count: 1, attack: 'labelflip' } } }),
      { backend: 'wasm' },
    );
    expect(sim.health.ranks.map((r) => r.role)).to.deep.equal(['honest', 'honest', 'data-side']);
    expect(report.compression!.bytes).to.equal(sim.compression!.bytes);
    expect(maxAbsDiff(sim.params, params)).to.be.at.most(1e-6);
  });
});
