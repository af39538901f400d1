/** The `phalanx` command as a user runs it: separate processes, real gRPC. */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BIN, startCoordinatorProcess, startWorkerProcess, tmpDir, type Proc } from '../support/processes.ts';

const VECTORS = JSON.parse(
  readFileSync(
    fileURLToPath(new URL('../fixtures/robust-aggregation-vectors.json', import.meta.url)),
    'utf8',
  ),
) as { input: { X_rows_are_workers: number[][]; f: number }; byzfl_aggregators: Record<string, number[]> };

function phalanx(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('integration: phalanx CLI', function () {
  this.timeout(180_000);
  const dir = tmpDir('cli');

  describe('aggregate', () => {
    const input = path.join(dir, 'vectors.json');
    before(() => {
      writeFileSync(input, JSON.stringify({ vectors: VECTORS.input.X_rows_are_workers, f: VECTORS.input.f }));
    });

    it('runs a rule on vectors from a file and prints JSON', async () => {
      const { code, stdout } = await phalanx([
        'aggregate',
        '--rule',
        'median',
        '--input',
        input,
        '-o',
        'json',
      ]);
      expect(code).to.equal(0);
      const out = JSON.parse(stdout) as { rule: string; update: number[]; workers: { index: number }[] };
      expect(out.rule).to.equal('median');
      const expected = VECTORS.byzfl_aggregators['Median'];
      out.update.forEach((v, i) =>
        expect(v).to.be.closeTo(expected[i], 1e-5 * Math.max(1, Math.abs(expected[i]))),
      );
      expect(out.workers.map((w) => w.index)).to.deep.equal([0, 1, 2, 3, 4, 5, 6]);
    });

    it('lets flags override the file (f) and reports an unmet precondition in one line, exit 2', async () => {
      const { code, stderr } = await phalanx(['aggregate', '--rule', 'krum', '--f', '3', '--input', input]);
      expect(code).to.equal(2);
      expect(stderr.trim().split('\n')).to.have.length(1);
      expect(stderr).to.match(/krum/i);
    });

    it('rejects ragged input with a message naming the problem', async () => {
      const bad = path.join(dir, 'ragged.json');
      writeFileSync(bad, JSON.stringify({ vectors: [[1, 2], [3]], f: 0 }));
      const { code, stderr } = await phalanx(['aggregate', '--rule', 'mean', '--input', bad]);
      expect(code).to.equal(2);
      expect(stderr).to.match(/length|ragged/i);
    });
  });

  describe('submit, jobs, status, watch against a coordinator', () => {
    let coordinator: { proc: Proc; address: string; dataDir: string };
    // The CLI finds the coordinator's admin token in its data directory, as on the coordinator's own machine.
    const admin = (args: string[]) => phalanx([...args, '--data-dir', coordinator.dataDir]);
    const workers: Proc[] = [];
    after(async () => {
      await Promise.all(workers.map((w) => w.kill('SIGKILL')));
      await coordinator?.proc.kill();
    });

    it('rejects an invalid job file locally, naming the field (exit 2)', async () => {
      const file = path.join(dir, 'bad.yaml');
      writeFileSync(file, 'name: Bad Name\noptimizer: { kind: sgd, lr: -1 }\n');
      const { code, stderr } = await phalanx(['submit', file, '--coordinator', '127.0.0.1:1']);
      expect(code).to.equal(2);
      expect(stderr).to.match(/name:/);
      expect(stderr).to.match(/optimizer\.lr/);
    });

    it('launch: a job that fails still writes its report, with the last measured accuracy and the error', async () => {
      const config = path.join(dir, 'failing.yaml');
      // signThreshold 1 excludes every worker (no gradient has cosine 1 to the robust direction): every round is
      // skipped, and the job fails after ten. (A rule whose precondition workers.max cannot meet, such as krum with
      // 3 workers and f = 1, is refused at submission: test/security/admission.test.ts.)
      writeFileSync(
        config,
        [
          'name: cli-failing',
          'model: { kind: mlp, hidden: [8] }',
          'data: { batchSize: 8, maxTrain: 300, maxTest: 100 }',
          'optimizer: { kind: sgd, lr: 0.1 }',
          'rounds: 30',
          'workers: { min: 3, max: 3 }',
          'aggregation: { rule: flag, f: 1, options: { signThreshold: 1 } }',
          'evaluation: { every: 2, limit: 100 }',
          'checkpoint: { every: 0 }',
          '',
        ].join('\n'),
      );
      const reportFile = path.join(dir, 'failing-report.json');
      const run = await phalanx([
        'launch',
        '--config',
        config,
        '--workers',
        '3',
        '--port',
        '0',
        '--backend',
        'wasm',
        '--report',
        reportFile,
      ]);
      expect(run.code, run.stderr).to.equal(1);
      const report = JSON.parse(readFileSync(reportFile, 'utf8')) as {
        state: string;
        error?: string;
        testAccuracy: number | null;
        finalLoss: number | null;
        rounds: number;
      };
      expect(report.state).to.equal('failed');
      expect(report.error).to.match(/flag/);
      expect(report.testAccuracy).to.be.a('number').within(0, 1);
      expect(report.rounds).to.be.below(30);
    });

    it('submits a job, lists it, watches it to completion and shows its status', async () => {
      coordinator = await startCoordinatorProcess(['--checkpoint-dir', path.join(dir, 'ckpt')]);
      const file = path.join(dir, 'job.yaml');
      writeFileSync(
        file,
        [
          'name: cli-job',
          'model: { kind: mlp, hidden: [8] }',
          'data: { batchSize: 8, maxTrain: 400, maxTest: 100 }',
          'optimizer: { kind: sgd, lr: 0.1 }',
          'rounds: 6',
          'workers: { min: 2, max: 2 }',
          'aggregation: { rule: median, f: 0 }',
          'evaluation: { every: 3, limit: 100 }',
          '',
        ].join('\n'),
      );
      const submitted = await admin(['submit', file, '--coordinator', coordinator.address, '-o', 'json']);
      expect(submitted.code, submitted.stderr).to.equal(0);
      const job = JSON.parse(submitted.stdout) as { id: string; state: string };
      expect(job.state).to.equal('queued');

      const listed = await admin(['jobs', '--coordinator', coordinator.address, '-o', 'json']);
      expect((JSON.parse(listed.stdout) as { id: string }[]).map((j) => j.id)).to.include(job.id);

      workers.push(
        startWorkerProcess(coordinator.address, 'worker-0'),
        startWorkerProcess(coordinator.address, 'worker-1'),
      );
      const watched = await admin(['watch', job.id, '--coordinator', coordinator.address, '--from', '1']);
      expect(watched.code, watched.stderr).to.equal(0);
      expect(watched.stdout).to.match(/round 6\/6/);
      expect(watched.stdout).to.match(/completed/);

      const status = await admin(['status', job.id, '--coordinator', coordinator.address, '-o', 'json']);
      const final = JSON.parse(status.stdout) as { state: string; round: number; resultJson: string };
      expect(final.state).to.equal('completed');
      expect(final.round).to.equal(6);
      expect(JSON.parse(final.resultJson)).to.have.property('testAccuracy');

      const missing = await admin(['status', 'no-such-job', '--coordinator', coordinator.address]);
      expect(missing.code).to.equal(3);
      expect(missing.stderr).to.match(/NOT_FOUND/);
    });

    it('cancels a running job; cancelling an ended or unknown job says so', async () => {
      coordinator ??= await startCoordinatorProcess(['--checkpoint-dir', path.join(dir, 'ckpt')]);
      const file = path.join(dir, 'long.yaml');
      writeFileSync(
        file,
        [
          'name: cli-long',
          'model: { kind: mlp, hidden: [8] }',
          'data: { batchSize: 8, maxTrain: 100, maxTest: 50 }',
          'optimizer: { kind: sgd, lr: 0.1 }',
          'rounds: 100000',
          'workers: { min: 1, max: 1 }',
          'aggregation: { rule: mean, f: 0 }',
          '',
        ].join('\n'),
      );
      const submitted = await admin(['submit', file, '--coordinator', coordinator.address, '-o', 'json']);
      expect(submitted.code, submitted.stderr).to.equal(0);
      const { id } = JSON.parse(submitted.stdout) as { id: string };
      const cancelled = await admin(['cancel', id, '--coordinator', coordinator.address, '-o', 'json']);
      expect(cancelled.code, cancelled.stderr).to.equal(0);
      expect((JSON.parse(cancelled.stdout) as { state: string }).state).to.equal('cancelled');
      const status = await admin(['status', id, '--coordinator', coordinator.address]);
      expect(status.stdout).to.match(/state\s+cancelled/);
      const again = await admin(['cancel', id, '--coordinator', coordinator.address]);
      expect(again.code).to.equal(0);
      expect(again.stdout).to.match(/cancelled at round/);
      const missing = await admin(['cancel', 'no-such-job', '--coordinator', coordinator.address]);
      expect(missing.code).to.equal(3);
    });
  });
});
