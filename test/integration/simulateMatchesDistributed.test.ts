/**
 * Simulation and the distributed run are the same pipeline. A real `phalanx launch` (coordinator + 3 worker
 * processes over loopback gRPC) and `simulate()` in this process, same spec and seed, must end with the same
 * parameters (max |Δ| ≤ 1e-6) — with no Byzantine workers and with a data-side one (label flipping), with worker
 * momentum and random flips on, under order-sensitive rules (krum, flag: a push reordered by arrival would change
 * the result), with the CNN in fp32 (its 401,536-weight dense layer spans two 1 MiB chunks) and an MLP in bf16
 * (its 548,800-weight first layer spans two bf16 chunks), and with Dirichlet shards and a validation split (the
 * coordinator then evaluates the same held-out examples as simulate). Both sides use the wasm backend.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { listCheckpoints, type CheckpointManifest } from '../../src/checkpoint/checkpoint.ts';
import { checkpointAverage, checkpointParams } from '../support/checkpoints.ts';
import { validateJobSpec, type JobSpecInput } from '../../src/config/jobSpec.ts';
import { simulate } from '../../src/simulation/simulate.ts';
import { BIN } from '../support/processes.ts';
import { maxAbsDiff } from '../support/arrays.ts';

const ROUNDS = 5;

function jobSpec(
  name: string,
  aggregation: JobSpecInput['aggregation'],
  extra: Partial<JobSpecInput> = {},
): JobSpecInput {
  return {
    name,
    seed: 11,
    model: { kind: 'mlp', hidden: [16] },
    data: { batchSize: 16, maxTrain: 3000, maxTest: 200, flip: true },
    optimizer: { kind: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 1e-4 },
    rounds: ROUNDS,
    // min = max: every round waits for all three workers (otherwise round 0 may close before all have joined).
    workers: { min: 3, max: 3, momentum: 0.9, roundTimeout: '60s' },
    aggregation,
    checkpoint: { every: ROUNDS, keep: 1 },
    evaluation: { every: ROUNDS, limit: 200 },
    ...extra,
  };
}

/** Runs `phalanx launch` as a child process; returns the parameters of its final checkpoint. */
async function launchAndReadParams(
  dir: string,
  spec: JobSpecInput,
  byzantine?: { count: number; attack: string },
): Promise<Float32Array> {
  return checkpointParams(await launch(dir, spec, byzantine));
}

/** Runs `phalanx launch` as a child process; returns the manifest of its final checkpoint. */
async function launch(
  dir: string,
  spec: JobSpecInput,
  byzantine?: { count: number; attack: string },
): Promise<CheckpointManifest> {
  const config = path.join(dir, `${spec.name}.yaml`);
  const reportFile = path.join(dir, `${spec.name}.report.json`);
  writeFileSync(config, YAML.stringify(spec));
  const args = [BIN, 'launch', '--config', config, '--workers', '3', '--port', '0', '--backend', 'wasm'];
  args.push('--data-dir', dir);
  args.push('--report', reportFile);
  if (byzantine) args.push('--byzantine', String(byzantine.count), '--attack', byzantine.attack);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr.on('data', (b: Buffer) => (output += b.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  expect(code, `phalanx launch failed:\n${output.slice(-3000)}`).to.equal(0);
  const report = JSON.parse(readFileSync(reportFile, 'utf8')) as {
    job: string;
    rounds: number;
    state: string;
  };
  expect(report.state).to.equal('completed');
  expect(report.rounds).to.equal(ROUNDS);
  const manifests = await listCheckpoints(path.join(dir, 'checkpoints'), report.job);
  const last = manifests.at(-1);
  expect(last?.round, 'final checkpoint').to.equal(ROUNDS);
  return last!;
}

describe('integration: simulate() matches a distributed phalanx launch', function () {
  this.timeout(120_000);
  let dir: string;

  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'phalanx-simdist-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('mean, no Byzantine workers: same parameters after 5 rounds', async () => {
    const spec = jobSpec('simdist-mean', { rule: 'mean', f: 0 });
    const distributed = await launchAndReadParams(dir, spec);
    const sim = await simulate(validateJobSpec(spec), { backend: 'wasm' });
    expect(sim.rounds).to.equal(ROUNDS);
    expect(sim.skippedRounds).to.equal(0);
    // The run trained: the parameters moved away from the initial ones.
    expect(maxAbsDiff(sim.params, distributed)).to.be.at.most(1e-6);
    expect(sim.perRound.every((r) => r.updateNorm > 0)).to.equal(true);
  });

  it('Dirichlet shards and a validation split, evaluated on it: same parameters and same accuracy', async () => {
    const spec = jobSpec(
      'simdist-dirichlet-val',
      { rule: 'mean', f: 0 },
      {
        data: {
          batchSize: 16,
          maxTrain: 3000,
          flip: true,
          shardBy: 'dirichlet',
          alpha: 0.3,
          validation: 0.2,
        },
        evaluation: { every: ROUNDS, limit: 200, split: 'validation' },
      },
    );
    const distributed = await launchAndReadParams(dir, spec);
    const sim = await simulate(validateJobSpec(spec), { backend: 'wasm' });
    expect(maxAbsDiff(sim.params, distributed)).to.be.at.most(1e-6);
    // The coordinator's model host evaluated the same validation examples as simulate.
    const report = JSON.parse(readFileSync(path.join(dir, `${spec.name}.report.json`), 'utf8')) as {
      testAccuracy: number;
    };
    expect(report.testAccuracy).to.be.closeTo(sim.finalAccuracy, 1e-9);
  });

  it('iterate average (optimizer.ema): same parameters, same average, and both evaluate the average', async () => {
    const spec = jobSpec(
      'simdist-ema',
      { rule: 'mean', f: 0 },
      { optimizer: { kind: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 1e-4, ema: 0.6 } },
    );
    const manifest = await launch(dir, spec);
    const sim = await simulate(validateJobSpec(spec), { backend: 'wasm' });
    expect(maxAbsDiff(sim.params, await checkpointParams(manifest))).to.be.at.most(1e-6);
    const average = await checkpointAverage(manifest);
    expect(average, 'the checkpoint keeps the average').to.be.instanceOf(Float32Array);
    expect(maxAbsDiff(sim.averagedParams!, average!)).to.be.at.most(1e-6);
    // The average is not the live parameters, and what both sides report is the average's accuracy.
    expect(maxAbsDiff(sim.averagedParams!, sim.params)).to.be.greaterThan(1e-4);
    const final = sim.evaluations.at(-1)!;
    expect(final.live, 'simulate reports the live accuracy beside it').to.not.equal(undefined);
    const report = JSON.parse(readFileSync(path.join(dir, `${spec.name}.report.json`), 'utf8')) as {
      testAccuracy: number;
      testLoss: number;
    };
    expect(report.testLoss).to.be.closeTo(sim.finalLoss, 1e-6);
    expect(report.testLoss).to.not.be.closeTo(final.live!.loss, 1e-6);
  });

  it('median with one label-flipping (data-side) Byzantine worker: same parameters', async () => {
    const spec = jobSpec('simdist-median', { rule: 'median', f: 1 });
    const distributed = await launchAndReadParams(dir, spec, { count: 1, attack: 'labelflip' });
    const sim = await simulate(
      validateJobSpec({ ...spec, simulate: { byzantine: { count: 1, attack: 'labelflip' } } }),
      { backend: 'wasm' },
    );
    expect(sim.health.ranks.map((r) => r.role)).to.deep.equal(['honest', 'honest', 'data-side']);
    expect(maxAbsDiff(sim.params, distributed)).to.be.at.most(1e-6);
  });

  it('krum (order-sensitive), the CNN in fp32 with a layer spanning chunks: same parameters', async function () {
    this.timeout(300_000);
    const spec = jobSpec('simdist-krum-cnn', { rule: 'krum', f: 0 }, { model: { kind: 'cnn' } });
    const distributed = await launchAndReadParams(dir, spec);
    const sim = await simulate(validateJobSpec(spec), { backend: 'wasm' });
    expect(sim.params.length).to.equal(431_080);
    expect(sim.skippedRounds).to.equal(0);
    expect(maxAbsDiff(sim.params, distributed)).to.be.at.most(1e-6);
  });

  it('flag (order-sensitive), bf16 on the wire, a layer spanning chunks: same parameters', async () => {
    const spec = jobSpec(
      'simdist-flag-bf16',
      { rule: 'flag', f: 1 },
      { model: { kind: 'mlp', hidden: [700] }, compression: { encoding: 'bf16' } },
    );
    const distributed = await launchAndReadParams(dir, spec);
    const sim = await simulate(validateJobSpec(spec), { backend: 'wasm' });
    expect(sim.skippedRounds).to.equal(0);
    expect(maxAbsDiff(sim.params, distributed)).to.be.at.most(1e-6);
    // bf16 matters: the same run without the wire's rounding ends elsewhere.
    const exact = await simulate(validateJobSpec({ ...spec, compression: { encoding: 'fp32' } }), {
      backend: 'wasm',
    });
    expect(maxAbsDiff(exact.params, distributed)).to.be.greaterThan(1e-6);
  });
});
