/**
 * `phalanx status`, `watch` and `submit` as a user meets them, against a coordinator and workers in their own
 * processes: a job waiting for workers.min says so and a watch shows the stall, a killed worker is named with its
 * reason, a flagged Byzantine worker comes with the rule's reason, a finished job replays with its real
 * accuracies and no rates, `submit --watch` ends with the accuracy, and a repeated submit makes no second job.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  BIN,
  startCoordinatorProcess,
  startProcess,
  startWorkerProcess,
  tmpDir,
  type Proc,
} from '../support/processes.ts';

function phalanx(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 180_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function spec(name: string, lines: string[]): string {
  return [
    `name: ${name}`,
    'model: { kind: mlp, hidden: [8] }',
    'data: { batchSize: 8, maxTrain: 400, maxTest: 100 }',
    'optimizer: { kind: sgd, lr: 0.1 }',
    ...lines,
    '',
  ].join('\n');
}

describe('integration: the CLI explains a job (status, watch, submit)', function () {
  this.timeout(300_000);
  const dir = tmpDir('cli-explains');
  let coordinator: { proc: Proc; address: string; dataDir: string };
  const procs: Proc[] = [];
  const cli = (args: string[]) =>
    phalanx([...args, '--coordinator', coordinator.address, '--data-dir', coordinator.dataDir]);
  const watcher = (args: string[]) => {
    const p = startProcess([
      ...args,
      '--coordinator',
      coordinator.address,
      '--data-dir',
      coordinator.dataDir,
    ]);
    procs.push(p);
    return p;
  };
  const worker = (name: string, extra: string[] = []) => {
    const p = startWorkerProcess(coordinator.address, name, extra);
    procs.push(p);
    return p;
  };
  const submit = async (name: string, lines: string[]) => {
    const file = path.join(dir, `${name}.yaml`);
    writeFileSync(file, spec(name, lines));
    const out = await cli(['submit', file, '-o', 'json']);
    expect(out.code, out.stderr).to.equal(0);
    return (JSON.parse(out.stdout) as { id: string }).id;
  };
  const exitOf = (p: Proc) => p.exit();

  before(async () => {
    coordinator = await startCoordinatorProcess(['--checkpoint-dir', path.join(dir, 'ckpt')]);
  });
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill('SIGKILL')));
  });
  after(async () => {
    await coordinator?.proc.kill();
  });

  it('a job waiting for workers.min: status says "waiting for workers 1/2", watch shows the stall', async () => {
    const id = await submit('cli-waiting', [
      'rounds: 50',
      'workers: { min: 2, max: 2 }',
      'aggregation: { rule: mean, f: 0 }',
    ]);
    worker('worker-0', ['--job', id]);
    await coordinator.proc.waitFor(new RegExp(`job ${id}: worker worker-0 .* joined`), 120_000);
    const status = await cli(['status', id]);
    expect(status.code, status.stderr).to.equal(0);
    expect(status.stdout).to.match(/^state +waiting for workers 1\/2$/m);
    expect(status.stdout).to.match(/^workers +1 joined, workers\.min 2, workers\.max 2: worker-0$/m);
    expect(status.stdout).to.match(/^eta +none until workers\.min workers have joined$/m);
    expect(status.stdout).not.to.match(/running/);
    const jobs = await cli(['jobs']);
    expect(jobs.code, jobs.stderr).to.equal(0);
    expect(jobs.stdout).to.match(new RegExp(`^${id} +waiting 1/2 +0/50 `, 'm'));

    const watch = watcher(['watch', id]);
    await watch.waitFor(new RegExp(`^job ${id}: waiting for workers 1/2$`, 'm'));
    await watch.waitFor(/^stalled \d+s, waiting for workers: 1\/2 joined \(workers\.min 2\)$/m, 30_000);
    const cancelled = await cli(['cancel', id]);
    expect(cancelled.code, cancelled.stderr).to.equal(0);
    expect(await exitOf(watch)).to.equal(1);
    expect(watch.output()).to.match(new RegExp(`^job ${id} cancelled at round 0/50`, 'm'));
  });

  it('watch names a killed worker as missing with its reason, and a flagged Byzantine worker with the rule’s', async () => {
    const id = await submit('cli-killed', [
      'rounds: 100000',
      // Heartbeats expire after 2 s, so the killed worker is let go soon.
      'workers: { min: 1, max: 3, heartbeatTtl: 2s }',
      'aggregation: { rule: flag, f: 1 }',
      'evaluation: { every: 0 }',
      'checkpoint: { every: 0 }',
    ]);
    worker('worker-0', ['--job', id]);
    worker('worker-1', ['--job', id, '--byzantine', 'signflip']);
    const victim = worker('worker-2', ['--job', id]);
    for (const name of ['worker-0', 'worker-1', 'worker-2']) {
      await coordinator.proc.waitFor(new RegExp(`job ${id}: worker ${name} .* joined`), 120_000);
    }
    const watch = watcher(['watch', id]);
    try {
      await watch.waitFor(/^round +\d+\/100000 .*included \d\/3/m, 60_000);
      await watch.waitFor(/^ {4}excluded worker-1 \[byzantine signflip\]: \S/m, 60_000);
      await victim.kill('SIGKILL');
      await watch.waitFor(/^round +\d+\/100000 .* {2}missing worker-2( |$)/m, 60_000);
      await watch.waitFor(/^ {4}missing {2}worker-2: heartbeat expired \(2000 ms\)$/m, 10_000);
      expect(watch.output()).not.to.match(/missing 1\b/);
    } finally {
      await cli(['cancel', id]);
    }
  });

  it('submit --watch ends with the accuracy; a replay shows real accuracies and no rates; status explains the result', async () => {
    const file = path.join(dir, 'cli-done.yaml');
    writeFileSync(
      file,
      spec('cli-done', [
        'rounds: 6',
        'workers: { min: 2, max: 2 }',
        'aggregation: { rule: median, f: 0 }',
        'evaluation: { every: 3, limit: 100 }',
      ]),
    );
    const run = watcher(['submit', file, '--watch']);
    const id = (await run.waitFor(/^submitted (\S+) /m))[1];
    worker('worker-0', ['--job', id]);
    worker('worker-1', ['--job', id]);
    expect(await exitOf(run), run.output()).to.equal(0);
    const lines = run.output().trim().split('\n');
    expect(lines.at(-1)).to.match(
      new RegExp(
        `^job ${id} completed: 6 rounds in \\S+ — test accuracy \\d+\\.\\d%, test loss \\d\\.\\d+ nats, final train loss \\d\\.\\d+$`,
      ),
    );

    const replay = await cli(['watch', id, '--from', '1']);
    expect(replay.code, replay.stderr).to.equal(0);
    const rounds = replay.stdout.split('\n').filter((l) => l.startsWith('round'));
    expect(rounds).to.have.length(6);
    expect(rounds[0]).to.match(/^round 1\/6 .*test acc – /);
    expect(rounds[2]).to.match(/^round 3\/6 .*test acc \d+\.\d% \(\d\.\d+ nats\)/);
    for (const line of rounds) expect(line).not.to.match(/acc 0\.0%|r\/s|eta/);
    expect(replay.stdout.trim().split('\n').at(-1)).to.match(new RegExp(`^job ${id} completed: 6 rounds`));

    const from4 = await cli(['watch', id, '--from', '4']);
    expect(from4.stdout.split('\n')[0]).to.match(/^round 4\/6 /);
    const from0 = await cli(['watch', id, '--from', '0']);
    expect(from0.code).to.equal(2);
    expect(from0.stderr).to.match(/^phalanx: --from must be a round number from 1/);

    const status = await cli(['status', id]);
    expect(status.code, status.stderr).to.equal(0);
    expect(status.stdout).to.match(/^state +completed: 6\/6 rounds$/m);
    expect(status.stdout).to.match(/^accuracy +\d+\.\d% test at round 6 \(test loss \d\.\d+ nats\)$/m);
    expect(status.stdout).to.match(
      /^parameters +\/\S+\/round-000006\/model\.safetensors \(the final checkpoint, round 6; safetensors\)$/m,
    );
    expect(status.stdout).to.match(
      /^result +test accuracy \d+\.\d%, test loss \d\.\d+ nats, final train loss/m,
    );
    const raw = await cli(['status', id, '--json']);
    expect(JSON.parse(raw.stdout)).to.include({ id, state: 'completed' });
  });

  // On the Redis store (the memory store's request ids are covered by the state-store contract tests).
  it('a repeated submit with one request id creates one job; another spec with it is refused (redis)', async () => {
    const own = await startCoordinatorProcess([
      '--store',
      'redis',
      '--redis-prefix',
      `phalanx-test-${randomBytes(4).toString('hex')}:`,
      '--checkpoint-dir',
      path.join(dir, 'ckpt-redis'),
    ]);
    try {
      const args = ['--coordinator', own.address, '--data-dir', own.dataDir];
      const file = path.join(dir, 'cli-once-redis.yaml');
      writeFileSync(file, spec('cli-once', ['rounds: 5', 'workers: { min: 9, max: 9 }']));
      const requestId = `req-${randomBytes(6).toString('hex')}`;
      const first = await phalanx(['submit', file, '--request-id', requestId, '-o', 'json', ...args]);
      const again = await phalanx(['submit', file, '--request-id', requestId, '-o', 'json', ...args]);
      expect(first.code, first.stderr).to.equal(0);
      expect(again.code, again.stderr).to.equal(0);
      const id = (JSON.parse(first.stdout) as { id: string }).id;
      expect((JSON.parse(again.stdout) as { id: string; requestId: string }).id).to.equal(id);
      const listed = await phalanx(['jobs', '-o', 'json', ...args]);
      expect(
        (JSON.parse(listed.stdout) as { name: string }[]).filter((j) => j.name === 'cli-once'),
      ).to.have.length(1);

      writeFileSync(file, spec('cli-once', ['rounds: 6', 'workers: { min: 9, max: 9 }']));
      const changed = await phalanx(['submit', file, '--request-id', requestId, ...args]);
      expect(changed.code).to.equal(1);
      expect(changed.stderr).to.equal(
        `phalanx: ALREADY_EXISTS: request id '${requestId}' already submitted job ${id} with a different spec: ` +
          'a retry must send the same spec (or leave out --request-id to submit a new job)\n',
      );
      // Without --request-id every submit is a new submission (a fresh UUID each time).
      const fresh = await phalanx(['submit', file, '-o', 'json', ...args]);
      expect((JSON.parse(fresh.stdout) as { id: string }).id).not.to.equal(id);
      await phalanx(['cancel', id, ...args]);
      await phalanx(['cancel', (JSON.parse(fresh.stdout) as { id: string }).id, ...args]);
    } finally {
      await own.proc.kill();
    }
  });
});
