/**
 * A distillation job resumed mid-run: a transformer student distilled from a teacher checkpoint by 2 worker
 * processes (worker momentum on) over loopback gRPC, on the Redis store; the coordinator is killed with SIGKILL
 * after its second checkpoint (at round 9 or soon after) and started again on the same port. It resumes from its
 * newest checkpoint, the workers rejoin (keeping the teacher they verified) and restore their momentum of that
 * round, and the job ends with exactly the parameters and optimizer state of the same job run without
 * interruption.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { JobsClient } from '../../src/cli/jobsClient.ts';
import { listCheckpoints, readCheckpoint } from '../../src/checkpoint/checkpoint.ts';
import { saveCheckpoint } from '../../src/checkpoint/modelCheckpoint.ts';
import { validateJobSpec, type JobSpecInput } from '../../src/config/jobSpec.ts';
import { isTerminal, type JobState } from '../../src/core/jobLifecycle.ts';
import { toNamedTensors } from '../../src/core/layout/namedTensors.ts';
import { BUNDLED_EXCERPT } from '../../src/data/text.ts';
import { modelLayout } from '../../src/models/registry.ts';
import type { ModelSpec } from '../../src/models/types.ts';
import { simulate } from '../../src/simulation/simulate.ts';
import {
  sleep,
  startCoordinatorProcess,
  startWorkerProcess,
  tmpDir,
  type Proc,
} from '../support/processes.ts';
import { dropKeys } from '../support/redisKeys.ts';

const REDIS_URL = process.env['PHALANX_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
// Long enough that the job cannot finish between the poll that sees round 9 and the kill: a tiny student on a
// fast machine runs several rounds in one poll interval, and a job that completed has nothing to resume.
const ROUNDS = 40;
const TEXT = { kind: 'text', seqLen: 16, batchSize: 4, maxTrain: 400, maxTest: 40 } as const;
const TEACHER_MODEL = { kind: 'transformer', dModel: 32, layers: 2, heads: 2, ffn: 64, context: 16 } as const;

const STUDENT: JobSpecInput = {
  name: 'distill-resume',
  seed: 5,
  model: { kind: 'transformer', dModel: 16, layers: 1, heads: 2, ffn: 32, context: 16 },
  data: TEXT,
  optimizer: { kind: 'adam', lr: 0.01 },
  rounds: ROUNDS,
  // Generous timeouts: a worker that missed a round on a busy machine would move the run off the reference.
  workers: { min: 2, max: 2, roundTimeout: '60s', heartbeatTtl: '20s', momentum: 0.9 },
  aggregation: { rule: 'median', f: 0 },
  checkpoint: { every: 4 },
  evaluation: { every: 0 },
  teacher: { checkpoint: 'teacher', alpha: 0.7, temperature: 2 },
};

async function waitFor<T>(what: string, get: () => Promise<T | undefined>, timeoutMs = 180_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const v = await get().catch(() => undefined);
    if (v !== undefined) return v;
    await sleep(200);
  }
  throw new Error(`gave up waiting: ${what}`);
}

describe('integration: a distillation job resumed after its coordinator is killed', function () {
  this.timeout(400_000);
  const procs: Proc[] = [];
  const clients: JobsClient[] = [];
  const prefix = `phalanx-test-distill-resume-${randomBytes(4).toString('hex')}:`;
  const savedText = process.env.PHALANX_TEXT;
  let teacher: Parameters<typeof saveCheckpoint>[1];

  before(async () => {
    process.env.PHALANX_TEXT = BUNDLED_EXCERPT;
    const trained = await simulate(
      validateJobSpec({
        name: 'teacher',
        seed: 9,
        model: TEACHER_MODEL,
        data: TEXT,
        optimizer: { kind: 'adam', lr: 0.01 },
        rounds: 10,
        workers: { min: 1, max: 1 },
        aggregation: { rule: 'mean' },
        evaluation: { every: 0 },
      }),
      { backend: 'wasm' },
    );
    const model = validateJobSpec({ model: TEACHER_MODEL, data: TEXT }).model as ModelSpec;
    teacher = { config: { model }, tensors: toNamedTensors(trained.params, modelLayout(model)) };
  });
  after(async () => {
    for (const c of clients.splice(0)) c.close();
    await Promise.all(procs.splice(0).map((p) => p.kill('SIGKILL')));
    await dropKeys(prefix);
    if (savedText === undefined) delete process.env.PHALANX_TEXT;
    else process.env.PHALANX_TEXT = savedText;
  });

  /** A checkpoint directory holding the teacher, as admission expects it. */
  async function checkpointDir(tag: string): Promise<string> {
    const dir = tmpDir(tag);
    await saveCheckpoint(path.join(dir, 'teacher'), teacher);
    return dir;
  }

  function workers(address: string, jobId: string, tag: string): Proc[] {
    const ws = [0, 1].map((i) =>
      startWorkerProcess(address, `${tag}-${i}`, ['--job', jobId, '--backend', 'wasm'], {
        PHALANX_TEXT: BUNDLED_EXCERPT,
      }),
    );
    procs.push(...ws);
    return ws;
  }

  async function finished(jobs: JobsClient, jobId: string) {
    return waitFor(`job ${jobId} ends`, async () => {
      const job = await jobs.get(jobId);
      return isTerminal(job.state as JobState) ? job : undefined;
    });
  }

  it('resumes from its newest checkpoint and ends exactly where the uninterrupted run ends', async () => {
    const ckpt = await checkpointDir('distill-resume');
    const args = [
      '--store',
      'redis',
      '--redis-url',
      REDIS_URL,
      '--redis-prefix',
      prefix,
      '--checkpoint-dir',
      ckpt,
    ];
    const env = { PHALANX_TEXT: BUNDLED_EXCERPT };
    const first = await startCoordinatorProcess(args, env);
    procs.push(first.proc);
    const jobs = new JobsClient(first.address, { token: first.adminToken });
    clients.push(jobs);
    const job = await jobs.submit(JSON.stringify(STUDENT));
    const ws = workers(first.address, job.id, 'kd');

    // Past the checkpoint of round 8, before the end.
    await waitFor('round 9', async () => ((await jobs.get(job.id)).round >= 9 ? true : undefined));
    await first.proc.kill('SIGKILL');
    jobs.close();

    const second = await startCoordinatorProcess([...args, '--port', String(first.port)], env);
    procs.push(second.proc);
    const m = await second.proc.waitFor(/resumed from checkpoint at round (\d+)/, 60_000);
    // The newest checkpoint at the kill: round 8, or a later one if rounds ran on while the kill was sent.
    const resumedAt = Number(m[1]);
    expect(resumedAt % 4).to.equal(0);
    expect(resumedAt).to.be.within(8, ROUNDS - 4);
    const again = new JobsClient(second.address, { token: second.adminToken });
    clients.push(again);
    const done = await finished(again, job.id);
    expect(done.state, done.error).to.equal('completed');
    expect(done.round).to.equal(ROUNDS);
    for (const w of ws)
      expect(w.output()).to.contain(
        `resumed at round ${resumedAt}: worker momentum restored from that round`,
      );

    // The same job, uninterrupted, on a coordinator of its own.
    const refDir = await checkpointDir('distill-resume-ref');
    const ref = await startCoordinatorProcess(['--checkpoint-dir', refDir], env);
    procs.push(ref.proc);
    const refJobs = new JobsClient(ref.address, { token: ref.adminToken });
    clients.push(refJobs);
    const refJob = await refJobs.submit(JSON.stringify(STUDENT));
    workers(ref.address, refJob.id, 'kd');
    expect((await finished(refJobs, refJob.id)).state).to.equal('completed');

    const resumed = await readCheckpoint((await listCheckpoints(ckpt, job.id)).at(-1)!);
    const uninterrupted = await readCheckpoint((await listCheckpoints(refDir, refJob.id)).at(-1)!);
    const names = [...resumed.tensors.keys()].sort();
    expect(names).to.deep.equal([...uninterrupted.tensors.keys()].sort());
    expect(names.some((n) => n.startsWith('optim.'))).to.equal(true);
    for (const [name, { data: a }] of resumed.tensors) {
      const b = uninterrupted.tensors.get(name)!.data;
      let diff = 0;
      for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]));
      expect(diff, `${name}: resumed vs uninterrupted`).to.equal(0);
    }
  });
});
