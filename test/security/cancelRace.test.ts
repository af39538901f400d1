/**
 * Cancel wins every race: a job cancelled right after it was submitted ends `cancelled`, and no runtime of it is
 * ever published or accepts a JoinJob — whether the cancel lands while the job is queued or while the scheduler is
 * building its runtime. Runs the real scheduler on both stores, in process (typed events show every runtime that
 * started) and against a coordinator in its own process over gRPC.
 */
import { DEFAULT_MEMORY_BUDGET_BYTES, SYSTEM_DATA_ROOT } from '../../src/coordinator/admission.ts';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { JobManager } from '../../src/coordinator/jobManager.ts';
import {
  createStateStore,
  type JobRecord,
  type StateStoreConfig,
} from '../../src/coordinator/state/index.ts';
import { startCoordinatorProcess, tmpDir, type Proc } from '../support/processes.ts';
import {
  IDLE_SPEC,
  cancelJob,
  getJob,
  joinJob,
  rawCoordinator,
  rawJobs,
  register,
  submitJob,
} from './support.ts';
import { dropKeys } from '../support/redisKeys.ts';

const REDIS_URL = process.env.PHALANX_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const ROUNDS = 4;
const SPEC = { ...IDLE_SPEC, name: 'cancel-race', workers: { ...IDLE_SPEC.workers, min: 1, max: 1 } };

function untilIdle(manager: JobManager): Promise<void> {
  return new Promise((resolve) => {
    const check = () => (manager.idle ? resolve() : setTimeout(check, 20));
    check();
  });
}

describe('security: cancel right after submit wins the race', function () {
  this.timeout(240_000);

  const stores: [string, () => StateStoreConfig][] = [
    ['memory', () => ({ kind: 'memory' })],
    [
      'redis',
      () => ({
        kind: 'redis',
        url: REDIS_URL,
        keyPrefix: `phalanx-test-race-${randomBytes(4).toString('hex')}:`,
      }),
    ],
  ];

  for (const [kind, config] of stores) {
    it(`in process, real scheduler, ${kind} store: no runtime of a cancelled job ever starts`, async () => {
      const cfg = config();
      const store = createStateStore(cfg);
      await store.connect();
      const manager = new JobManager(store, {
        consumerId: `race-${kind}`,
        admission: {
          checkpointRoot: tmpDir('race'),
          dataRoots: [SYSTEM_DATA_ROOT],
          memoryBudgetBytes: DEFAULT_MEMORY_BUDGET_BYTES,
        },
      });
      const started: string[] = [];
      const discarded: string[] = [];
      manager.on('runtimeStarted', (id) => started.push(id));
      manager.on('runtimeDiscarded', (id) => discarded.push(id));
      await manager.start();
      try {
        const ids: string[] = [];
        for (let i = 0; i < ROUNDS; i++) {
          // Even rounds cancel at once; odd ones the moment the scheduler claimed the job (queued → starting).
          let claimed: Promise<void> = Promise.resolve();
          if (i % 2 === 1) {
            claimed = new Promise((resolve) => {
              const onJob = (j: JobRecord) => {
                if (j.name !== SPEC.name || j.state !== 'starting') return;
                manager.off('job', onJob);
                resolve();
              };
              manager.on('job', onJob);
            });
          }
          const job = await manager.submit(JSON.stringify(SPEC));
          await claimed;
          const cancelled = await manager.cancel(job.id);
          expect(cancelled?.state).to.equal('cancelled');
          ids.push(job.id);
          await untilIdle(manager);
        }
        expect(started, 'runtimes published for cancelled jobs').to.deep.equal([]);
        // The race was really run: some cancels landed while the runtime was being built.
        expect(discarded.length).to.be.greaterThan(0);
        for (const id of ids) {
          expect(manager.runtime(id)).to.equal(undefined);
          expect((await store.getJob(id))?.state).to.equal('cancelled');
        }
      } finally {
        await manager.stop();
        await store.close();
        if (cfg.kind === 'redis') await dropKeys(cfg.keyPrefix!);
      }
    });

    it(`coordinator process, ${kind} store: a cancelled job never accepts a JoinJob`, async () => {
      const prefix = `phalanx-test-race-${randomBytes(4).toString('hex')}:`;
      const args = ['--checkpoint-dir', tmpDir('race')];
      if (kind === 'redis') args.push('--store', 'redis', '--redis-url', REDIS_URL, '--redis-prefix', prefix);
      const coordinator: { proc: Proc; address: string } = await startCoordinatorProcess(args);
      coordinator.proc.child.setMaxListeners(0); // one 'exit' listener per waitFor
      const jobs = rawJobs(coordinator.address);
      const coord = rawCoordinator(coordinator.address);
      try {
        const token = await register(coord, 'race-worker');
        const ids: string[] = [];
        let whileStarting = 0;
        for (let i = 0; i < ROUNDS; i++) {
          const id = (await submitJob(jobs, SPEC)).value!.id;
          // Even rounds cancel at once; odd ones the moment the coordinator says it is building the runtime, so
          // the race is run on every machine, fast or slow.
          if (i % 2 === 1) await coordinator.proc.waitFor(new RegExp(`job ${id}: building its runtime`));
          const cancelled = await cancelJob(jobs, id);
          expect(cancelled.value?.state).to.equal('cancelled');
          ids.push(id);
          // A join right after the cancel must fail too.
          expect((await joinJob(coord, token, id)).code).to.equal(grpc.status.NOT_FOUND);
          const m = await coordinator.proc.waitFor(new RegExp(`job ${id} cancelled( while (\\w+))?["\\n]`));
          if (m[2] === 'starting') {
            whileStarting++;
            await coordinator.proc.waitFor(new RegExp(`job ${id}: runtime (discarded|started)`));
          }
        }
        // The scheduler runs jobs in order: once a later job's runtime started, every cancelled one was settled.
        const sentinel = (await submitJob(jobs, { ...SPEC, name: 'race-sentinel' })).value!.id;
        await coordinator.proc.waitFor(new RegExp(`job ${sentinel}: runtime started`));
        expect(whileStarting).to.be.greaterThan(0);
        for (const id of ids) {
          expect(coordinator.proc.output()).to.not.match(new RegExp(`job ${id}: runtime started`));
          expect((await getJob(jobs, id)).value?.state).to.equal('cancelled');
          const join = await joinJob(coord, token, id);
          expect(join.code, join.details).to.equal(grpc.status.NOT_FOUND);
        }
        expect((await joinJob(coord, token, sentinel)).code).to.equal(grpc.status.OK);
        await cancelJob(jobs, sentinel);
      } finally {
        jobs.close();
        coord.close();
        await coordinator.proc.kill();
        if (kind === 'redis') await dropKeys(prefix);
      }
    });
  }
});
