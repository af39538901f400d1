/**
 * Distillation through the coordinator: a transformer teacher checkpoint (trained a few rounds in-process, saved
 * with saveCheckpoint inside the coordinator's checkpoint directory), a smaller transformer student trained by
 * 4 worker processes over loopback gRPC. Every worker pulls the teacher exactly once and verifies its sha256, the
 * student's held-out loss goes down, and a teacher file tampered with after admission is refused by every
 * worker (which leaves the job and stops) instead of being trained on. PullTeacher answers like the other
 * worker RPCs to callers without a credential, for unknown jobs and for workers that have not joined.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { openSync, readSync, writeSync, closeSync, statSync } from 'node:fs';
import path from 'node:path';
import { JobsClient } from '../../src/cli/jobsClient.ts';
import { saveCheckpoint, TENSORS_FILE } from '../../src/checkpoint/modelCheckpoint.ts';
import { validateJobSpec, type JobSpecInput } from '../../src/config/jobSpec.ts';
import { toNamedTensors } from '../../src/core/layout/namedTensors.ts';
import { isTerminal, type JobState } from '../../src/core/jobLifecycle.ts';
import type { RoundReport } from '../../src/coordinator/roundReport.ts';
import { BUNDLED_EXCERPT } from '../../src/data/text.ts';
import { modelLayout } from '../../src/models/registry.ts';
import type { ModelSpec } from '../../src/models/types.ts';
import { simulate } from '../../src/simulation/simulate.ts';
import { authMetadata } from '../../src/transport/protocol.ts';
import type { CoordinatorClient as RawCoordinatorClient } from '../../src/gen/phalanx/v1/Coordinator.ts';
import {
  logLines,
  sleep,
  startCoordinatorProcess,
  startWorkerProcess,
  tmpDir,
  type Proc,
} from '../support/processes.ts';
import { rawCoordinator, register } from '../security/support.ts';

const WORKERS = 4;
const ROUNDS = 6;
const TEXT = { kind: 'text', seqLen: 16, batchSize: 4, maxTrain: 400, maxTest: 40 } as const;
const TEACHER_MODEL = { kind: 'transformer', dModel: 32, layers: 2, heads: 2, ffn: 64, context: 16 } as const;

function studentSpec(name: string): JobSpecInput {
  return {
    name,
    seed: 3,
    model: { kind: 'transformer', dModel: 16, layers: 1, heads: 2, ffn: 32, context: 16 },
    data: TEXT,
    optimizer: { kind: 'adam', lr: 0.01 },
    rounds: ROUNDS,
    workers: { min: WORKERS, max: WORKERS, roundTimeout: '60s' },
    aggregation: { rule: 'median', f: 1 },
    checkpoint: { every: 0 },
    evaluation: { every: 1, limit: 40 },
    teacher: { checkpoint: 'teacher', alpha: 0.7, temperature: 2 },
  };
}

/** Pull the teacher until the stream ends; the number of messages and the final status. */
function pullTeacher(
  c: RawCoordinatorClient,
  token: string | undefined,
  jobId: string,
): Promise<{ messages: number; code: number; details: string }> {
  return new Promise((resolve) => {
    let messages = 0;
    const md = token === undefined ? new grpc.Metadata() : authMetadata(token);
    const call = c.PullTeacher({ jobId }, md, { deadline: Date.now() + 30_000 });
    call.on('data', () => messages++);
    call.on('status', (s: grpc.StatusObject) => resolve({ messages, code: s.code, details: s.details }));
    call.on('error', () => {});
  });
}

describe('integration: a distillation job over loopback gRPC', function () {
  this.timeout(300_000);
  const procs: Proc[] = [];
  let jobs: JobsClient | undefined;
  let coord: RawCoordinatorClient | undefined;
  let address = '';
  let checkpoints = '';
  let teacherSha = '';
  const savedText = process.env.PHALANX_TEXT;

  before(async () => {
    process.env.PHALANX_TEXT = BUNDLED_EXCERPT;
    checkpoints = tmpDir('distill');
    // The teacher: a bigger transformer trained a few rounds in this process, saved where admission finds it.
    const trained = await simulate(
      validateJobSpec({
        name: 'teacher',
        seed: 9,
        model: TEACHER_MODEL,
        data: TEXT,
        optimizer: { kind: 'adam', lr: 0.01 },
        rounds: 15,
        workers: { min: 1, max: 1 },
        aggregation: { rule: 'mean' },
        evaluation: { every: 0 },
      }),
      { backend: 'wasm' },
    );
    const model = validateJobSpec({ model: TEACHER_MODEL, data: TEXT }).model as ModelSpec;
    const saved = await saveCheckpoint(path.join(checkpoints, 'teacher'), {
      config: { model },
      tensors: toNamedTensors(trained.params, modelLayout(model)),
    });
    teacherSha = saved.sha256;
    const coordinator = await startCoordinatorProcess(['--checkpoint-dir', checkpoints], {
      PHALANX_TEXT: BUNDLED_EXCERPT,
    });
    procs.push(coordinator.proc);
    address = coordinator.address;
    jobs = new JobsClient(address, { token: coordinator.adminToken });
    coord = rawCoordinator(address);
  });
  after(async () => {
    jobs?.close();
    coord?.close();
    await Promise.all(procs.map((p) => p.kill('SIGKILL')));
    if (savedText === undefined) delete process.env.PHALANX_TEXT;
    else process.env.PHALANX_TEXT = savedText;
  });

  async function waitTerminal(jobId: string): Promise<string> {
    for (;;) {
      const state = (await jobs!.get(jobId)).state;
      if (isTerminal(state as JobState)) return state;
      await sleep(300);
    }
  }

  it('admission pins the teacher: the stored spec names its real directory and sha256', async () => {
    const job = await jobs!.submit(
      JSON.stringify({
        ...studentSpec('pinned'),
        rounds: 1,
        workers: { min: 2, max: 2 },
        aggregation: { rule: 'mean' },
      }),
    );
    const spec = JSON.parse(job.specJson) as { teacher: { checkpoint: string; sha256: string } };
    expect(spec.teacher.sha256).to.equal(teacherSha);
    expect(spec.teacher.checkpoint).to.equal(path.join(checkpoints, 'teacher'));
    await jobs!.cancel(job.id);
  });

  it('4 workers each pull the teacher once, verify it, and the student learns', async () => {
    const job = await jobs!.submit(JSON.stringify(studentSpec('distill')));
    const workers = Array.from({ length: WORKERS }, (_, i) =>
      startWorkerProcess(address, `kd-${i}`, ['--job', job.id, '--backend', 'wasm'], {
        PHALANX_LOG_FORMAT: 'json',
      }),
    );
    procs.push(...workers);

    // While it runs: PullTeacher refuses what other worker RPCs refuse.
    await procs[0].waitFor(new RegExp(`job ${job.id}: runtime started`));
    const none = await pullTeacher(coord!, undefined, job.id);
    expect(none.code, none.details).to.equal(grpc.status.UNAUTHENTICATED);
    const token = await register(coord!, 'kd-outsider');
    const unknown = await pullTeacher(coord!, token, 'no-such-job');
    expect(unknown.code, unknown.details).to.equal(grpc.status.NOT_FOUND);
    const outsider = await pullTeacher(coord!, token, job.id);
    expect(outsider.code, outsider.details).to.equal(grpc.status.FAILED_PRECONDITION);
    expect(outsider.details).to.match(/JoinJob/);
    expect(none.messages + unknown.messages + outsider.messages).to.equal(0);

    expect(await waitTerminal(job.id)).to.equal('completed');
    await Promise.all(workers.map((w) => w.exit()));
    for (const w of workers) {
      const pulls = logLines(w.output()).filter((l) => l.msg.startsWith('teacher: '));
      expect(pulls, w.output().slice(-2000)).to.have.length(1);
      expect(pulls[0]['teacherSha256']).to.equal(teacherSha);
      expect(pulls[0]['teacherBytes']).to.equal(
        statSync(path.join(checkpoints, 'teacher', TENSORS_FILE)).size,
      );
    }
    const served = procs[0]
      .output()
      .match(new RegExp(`job ${job.id}: worker kd-\\d \\([^)]*\\) pulled the teacher`, 'g'));
    expect(served ?? []).to.have.length(WORKERS);

    const reports: RoundReport[] = [];
    await jobs!.watch(job.id, 0, (e) => {
      if (e.round) reports.push(e.round as unknown as RoundReport);
    });
    expect(reports).to.have.length(ROUNDS);
    const first = reports[0].testLoss;
    const last = reports[ROUNDS - 1].testLoss;
    expect(last, `held-out nats/char ${first} → ${last}`).to.be.below(first);
  });

  it('a teacher file tampered with after admission is refused by every worker, which never trains on it', async () => {
    const job = await jobs!.submit(JSON.stringify(studentSpec('tampered')));
    // Flip one byte of the last tensor's data: config.json (and the pinned sha256) still describe the original.
    const file = path.join(checkpoints, 'teacher', TENSORS_FILE);
    const fd = openSync(file, 'r+');
    const at = statSync(file).size - 3;
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, at);
    byte[0] ^= 0x40;
    writeSync(fd, byte, 0, 1, at);
    closeSync(fd);

    const workers = Array.from({ length: WORKERS }, (_, i) =>
      startWorkerProcess(address, `bad-${i}`, ['--job', job.id, '--backend', 'wasm']),
    );
    procs.push(...workers);
    const codes = await Promise.all(workers.map((w) => w.exit()));
    for (const [i, w] of workers.entries()) {
      expect(codes[i], w.output().slice(-2000)).to.equal(1);
      expect(w.output()).to.match(/teacher refused: checksum mismatch/);
      expect(w.output()).not.to.match(/teacher: \d+ bytes/);
    }
    await procs[0].waitFor(
      new RegExp(`job ${job.id}: worker bad-0 \\([^)]*\\) left: teacher refused: checksum mismatch`),
    );
    const state = await jobs!.get(job.id);
    expect(state.round).to.equal(0);
    await jobs!.cancel(job.id);
  });
});
