/**
 * The language-model task through the unchanged runtime: a real `phalanx launch` (coordinator + 3 worker
 * processes over loopback gRPC) and `simulate()` in this process train the same tiny transformer on the same
 * text with the same seed, and must end with the same parameters (max |Δ| ≤ 1e-6) and the same held-out
 * nats/char. Both sides use the wasm backend and read the same text (PHALANX_TEXT → the bundled excerpt).
 * Done for a dense transformer and for a mixture-of-experts one (its router, top-k choice and load-balancing
 * loss run in every worker).
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { listCheckpoints } from '../../src/checkpoint/checkpoint.ts';
import { checkpointParams } from '../support/checkpoints.ts';
import { validateJobSpec, type JobSpecInput } from '../../src/config/jobSpec.ts';
import { BUNDLED_EXCERPT } from '../../src/data/text.ts';
import { simulate } from '../../src/simulation/simulate.ts';
import { BIN } from '../support/processes.ts';
import { maxAbsDiff } from '../support/arrays.ts';

const ROUNDS = 4;

const spec: JobSpecInput = {
  name: 'lm-simdist',
  seed: 5,
  model: { kind: 'transformer', dModel: 16, layers: 1, heads: 2, ffn: 32, context: 16 },
  data: { kind: 'text', seqLen: 16, batchSize: 4, maxTrain: 500, maxTest: 20 },
  optimizer: { kind: 'adam', lr: 0.01 },
  rounds: ROUNDS,
  workers: { min: 3, max: 3, roundTimeout: '60s' },
  aggregation: { rule: 'median', f: 1 },
  checkpoint: { every: ROUNDS, keep: 1 },
  evaluation: { every: ROUNDS },
};

describe('integration: the language-model task, distributed and simulated', function () {
  this.timeout(120_000);
  let dir: string;
  const savedText = process.env.PHALANX_TEXT;

  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'phalanx-lm-'));
    process.env.PHALANX_TEXT = BUNDLED_EXCERPT;
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    if (savedText === undefined) delete process.env.PHALANX_TEXT;
    else process.env.PHALANX_TEXT = savedText;
  });

  const cases: [string, JobSpecInput][] = [
    ['a transformer', spec],
    [
      'an MoE transformer (top-2 of 3 experts)',
      {
        ...spec,
        name: 'lm-moe-simdist',
        model: { ...spec.model, ffn: 8, moe: { experts: 3, topK: 2, auxLossWeight: 0.1 } },
      } as JobSpecInput,
    ],
  ];
  for (const [what, spec] of cases)
    it(`phalanx launch with 3 workers ends where simulate() ends for ${what}: same parameters and held-out nats/char`, async () => {
      const config = path.join(dir, `${spec.name}.yaml`);
      const reportFile = path.join(dir, `${spec.name}.report.json`);
      writeFileSync(config, YAML.stringify(spec));
      const args = [BIN, 'launch', '--config', config, '--workers', '3', '--port', '0', '--backend', 'wasm'];
      args.push('--data-dir', dir, '--report', reportFile);
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
      let output = '';
      child.stdout.on('data', (b: Buffer) => (output += b.toString()));
      child.stderr.on('data', (b: Buffer) => (output += b.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      expect(code, `phalanx launch failed:\n${output.slice(-3000)}`).to.equal(0);
      const report = JSON.parse(readFileSync(reportFile, 'utf8')) as {
        job: string;
        state: string;
        testLoss: number;
      };
      expect(report.state).to.equal('completed');
      const last = (await listCheckpoints(path.join(dir, 'checkpoints'), report.job)).at(-1);
      expect(last?.round).to.equal(ROUNDS);
      const distributed = await checkpointParams(last!);

      const sim = await simulate(validateJobSpec(spec), { backend: 'wasm' });
      if (spec.model?.kind === 'transformer' && spec.model.moe) {
        // max/mean expert load over the held-out tokens: 1 (balanced) to E = 3 (one expert takes all)
        expect(sim.evaluations.at(-1)?.expertLoad).to.be.within(1, 3);
        // and per round, on the honest workers' training batches
        for (const r of sim.perRound) expect(r.expertLoad, `round ${r.round}`).to.be.within(1, 3);
      }
      const diff = maxAbsDiff(sim.params, distributed);
      expect(diff).to.be.at.most(1e-6);
      expect(sim.perRound.every((r) => r.updateNorm > 0)).to.equal(true);
      // evaluated on the held-out end of the text, in nats/char, by the coordinator's model host and by simulate
      expect(report.testLoss).to.be.closeTo(sim.finalLoss, 1e-5);
      expect(sim.finalLoss).to.be.below(Math.log(63));
    });
});
