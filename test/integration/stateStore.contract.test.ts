/**
 * One contract for every StateStore: the memory store and the Redis store (a real server at
 * PHALANX_TEST_REDIS_URL, default redis://127.0.0.1:6379) must behave the same. Time-dependent checks wait
 * past a short TTL and look at expiry only, never at how fast anything ran.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { MemoryStateStore } from '../../src/coordinator/state/memoryStore.ts';
import { RedisStateStore } from '../../src/coordinator/state/redisStore.ts';
import { createStateStore } from '../../src/coordinator/state/index.ts';
import type {
  AccessTokenRecord,
  CheckpointManifest,
  JobRecord,
  JobState,
  JobTransition,
  StateStore,
  WorkerRecord,
} from '../../src/coordinator/state/stateStore.ts';
import { StaleFenceError } from '../../src/coordinator/state/stateStore.ts';
import { dropKeys } from '../support/redisKeys.ts';

const REDIS_URL = process.env.PHALANX_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

function job(id: string, createdAt: number, extra: Partial<JobRecord> = {}): JobRecord {
  return {
    id,
    name: `name-${id}`,
    spec: JSON.stringify({ name: id, rounds: 10 }),
    state: 'queued',
    createdAt,
    updatedAt: createdAt,
    round: 0,
    ...extra,
  };
}

function worker(id: string): WorkerRecord {
  return {
    id,
    name: `w-${id}`,
    sessionHash: 'ab'.repeat(32),
    capabilities: '{"backend":"cpu"}',
    registeredAt: 1000,
  };
}

export function runStateStoreContract(name: string, makeStore: () => Promise<StateStore> | StateStore): void {
  describe(`StateStore contract: ${name}`, () => {
    let store: StateStore;

    beforeEach(async () => {
      store = await makeStore();
      await store.connect();
    });
    afterEach(async () => {
      await store?.close();
    });

    it('answers ping once connected', async () => {
      expect(await store.ping()).to.equal(true);
    });

    describe('jobs', () => {
      it('submits, gets and lists jobs newest first', async () => {
        await store.submitJob(job('a', 1000));
        await store.submitJob(job('c', 3000));
        await store.submitJob(job('b', 2000, { state: 'running' }));
        const a = await store.getJob('a');
        expect(a).to.deep.equal(job('a', 1000));
        // Submitting always stores the job as queued.
        expect((await store.getJob('b'))?.state).to.equal('queued');
        expect(await store.getJob('missing')).to.equal(undefined);
        expect((await store.listJobs()).map((j) => j.id)).to.deep.equal(['c', 'b', 'a']);
      });

      it('orders jobs with equal createdAt by id, descending', async () => {
        await store.submitJob(job('x1', 5000));
        await store.submitJob(job('x3', 5000));
        await store.submitJob(job('x2', 5000));
        expect((await store.listJobs()).map((j) => j.id)).to.deep.equal(['x3', 'x2', 'x1']);
      });

      it('round-trips optional fields', async () => {
        await store.submitJob(job('opt', 1000, { error: 'boom', result: '{"acc":0.9}' }));
        const got = await store.getJob('opt');
        expect(got?.error).to.equal('boom');
        expect(got?.result).to.equal('{"acc":0.9}');
        expect(got?.spec).to.equal(job('opt', 1000).spec);
      });

      it('rejects a duplicate submit and keeps the original', async () => {
        await store.submitJob(job('dup', 1000));
        let error: unknown;
        try {
          await store.submitJob(job('dup', 2000, { name: 'other' }));
        } catch (err) {
          error = err;
        }
        expect(error).to.be.instanceOf(Error);
        expect((error as Error).message).to.match(/already exists/);
        expect((await store.getJob('dup'))?.name).to.equal('name-dup');
        expect((await store.listJobs()).map((j) => j.id)).to.deep.equal(['dup']);
        // The duplicate did not enqueue a second entry.
        expect(await store.claimQueuedJob('c1', 60_000)).to.equal('dup');
        await store.ackQueuedJob('c1', 'dup');
        expect(await store.claimQueuedJob('c1', 60_000)).to.equal(undefined);
      });

      it('a request id creates one job: a repeated submit returns the first job and stores nothing', async () => {
        const first = await store.submitJob(job('r1', 1000, { owner: 'token:t-a', requestId: 'req-1' }));
        expect(first.created).to.equal(true);
        expect(first.job).to.deep.include({ id: 'r1', requestId: 'req-1', state: 'queued' });
        // The retry of the same request (a new job id, as the coordinator makes one per call) finds the first.
        const retry = await store.submitJob(job('r2', 2000, { owner: 'token:t-a', requestId: 'req-1' }));
        expect(retry.created).to.equal(false);
        expect(retry.job.id).to.equal('r1');
        // Whatever its spec: the caller compares them.
        const other = await store.submitJob(
          job('r3', 3000, { owner: 'token:t-a', requestId: 'req-1', spec: '{"rounds":99}' }),
        );
        expect(other).to.deep.include({ created: false });
        expect(other.job.spec).to.equal(job('r1', 1000).spec);
        expect(await store.getJob('r2')).to.equal(undefined);
        expect((await store.listJobs()).map((j) => j.id)).to.deep.equal(['r1']);
        expect(await store.claimQueuedJob('c1', 60_000)).to.equal('r1');
        await store.ackQueuedJob('c1', 'r1');
        expect(await store.claimQueuedJob('c1', 60_000)).to.equal(undefined);
        // The first job, once it has moved on, is still what a retry gets.
        await store.transitionJob('r1', 'start');
        expect(
          (await store.submitJob(job('r4', 4000, { owner: 'token:t-a', requestId: 'req-1' }))).job,
        ).to.deep.include({ id: 'r1', state: 'starting' });
      });

      it('request ids belong to their owner, and a submit without one is never deduplicated', async () => {
        await store.submitJob(job('o1', 1000, { owner: 'token:t-a', requestId: 'same' }));
        const b = await store.submitJob(job('o2', 2000, { owner: 'token:t-b', requestId: 'same' }));
        expect(b).to.deep.include({ created: true });
        await store.submitJob(job('n1', 3000));
        expect((await store.submitJob(job('n2', 4000))).created).to.equal(true);
        expect((await store.listJobs()).map((j) => j.id)).to.deep.equal(['n2', 'n1', 'o2', 'o1']);
      });

      it('transitionJob is a compare-and-set that applies the patch', async () => {
        await store.submitJob(job('t', 1000));
        expect(await store.transitionJob('t', 'complete')).to.equal(undefined);
        expect(await store.transitionJob('missing', 'start')).to.equal(undefined);
        const starting = await store.transitionJob('t', 'start');
        expect(starting?.state).to.equal('starting');
        expect(starting?.updatedAt).to.be.at.least(1000);
        expect((await store.transitionJob('t', 'run'))?.state).to.equal('running');
        const done = await store.transitionJob('t', 'complete', {
          round: 10,
          result: '{"testAccuracy":0.91}',
        });
        expect(done).to.include({ state: 'completed', round: 10, result: '{"testAccuracy":0.91}' });
        expect(done?.error).to.equal(undefined);
        expect(await store.getJob('t')).to.deep.equal(done);
        expect(await store.transitionJob('t', 'fail', { error: 'late' })).to.equal(undefined);
        expect((await store.getJob('t'))?.error).to.equal(undefined);
      });

      describe('enforces the job lifecycle: every allowed transition applies, every other is refused', () => {
        // Written out here, independently of core/jobLifecycle.ts, so a wrong table fails this suite.
        const ALLOWED: Record<string, string> = {
          'queued start': 'starting',
          'queued cancel': 'cancelled',
          'starting run': 'running',
          'starting fail': 'failed',
          'starting cancel': 'cancelled',
          'running resume': 'starting',
          'running complete': 'completed',
          'running fail': 'failed',
          'running cancel': 'cancelled',
        };
        const PATH: Record<JobState, JobTransition[]> = {
          queued: [],
          starting: ['start'],
          running: ['start', 'run'],
          completed: ['start', 'run', 'complete'],
          failed: ['start', 'fail'],
          cancelled: ['cancel'],
        };
        const TRANSITIONS: JobTransition[] = ['start', 'run', 'resume', 'complete', 'fail', 'cancel'];
        for (const from of Object.keys(PATH) as JobState[]) {
          for (const transition of TRANSITIONS) {
            const to = ALLOWED[`${from} ${transition}`];
            it(`${from} --${transition}--> ${to ?? 'refused'}`, async () => {
              await store.submitJob(job('lc', 1000));
              for (const step of PATH[from])
                expect(await store.transitionJob('lc', step)).to.not.equal(undefined);
              const before = await store.getJob('lc');
              expect(before?.state).to.equal(from);
              const after = await store.transitionJob('lc', transition, { error: 'why' });
              if (to === undefined) {
                expect(after).to.equal(undefined);
                expect(await store.getJob('lc')).to.deep.equal(before);
              } else {
                expect(after).to.include({ state: to, error: 'why' });
                expect(await store.getJob('lc')).to.deep.equal(after);
              }
            });
          }
        }
      });

      it('lets exactly one of 10 concurrent transitions win', async () => {
        await store.submitJob(job('race', 1000));
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            store.transitionJob('race', i % 2 ? 'start' : 'cancel', { round: i }),
          ),
        );
        const winners = results.filter((r) => r !== undefined);
        // start then cancel is a legal sequence, so allow a cancel after the winning start; never two starts.
        expect(winners.filter((w) => w.state === 'starting').length).to.be.at.most(1);
        expect(winners.filter((w) => w.state === 'cancelled')).to.have.length(1);
        expect((await store.getJob('race'))?.state).to.equal('cancelled');
      });

      it('cancel wins over run: once cancelled, a starting job can no longer run', async () => {
        await store.submitJob(job('cr', 1000));
        await store.transitionJob('cr', 'start');
        const [cancelled, ran] = await Promise.all([
          store.transitionJob('cr', 'cancel'),
          store.transitionJob('cr', 'run'),
        ]);
        expect(cancelled?.state).to.equal('cancelled');
        expect(ran).to.equal(undefined);
        expect(await store.transitionJob('cr', 'run')).to.equal(undefined);
        expect((await store.getJob('cr'))?.state).to.equal('cancelled');
      });

      it('setJobRound records progress without changing state', async () => {
        await store.submitJob(job('p', 1000));
        await store.transitionJob('p', 'start');
        await store.transitionJob('p', 'run');
        await store.setJobRound('p', 42);
        const got = await store.getJob('p');
        expect(got).to.include({ state: 'running', round: 42 });
        let error: unknown;
        try {
          await store.setJobRound('missing', 1);
        } catch (err) {
          error = err;
        }
        expect((error as Error | undefined)?.message).to.match(/unknown job 'missing'/);
      });
    });

    describe('queue', () => {
      it('hands out queued jobs FIFO, once each', async () => {
        await store.submitJob(job('q1', 3000));
        await store.submitJob(job('q2', 1000));
        await store.submitJob(job('q3', 2000));
        expect(await store.claimQueuedJob('c1', 60_000)).to.equal('q1');
        expect(await store.claimQueuedJob('c2', 60_000)).to.equal('q2');
        expect(await store.claimQueuedJob('c1', 60_000)).to.equal('q3');
        expect(await store.claimQueuedJob('c2', 60_000)).to.equal(undefined);
      });

      it('lets a second consumer take over an unacknowledged claim after claimTimeoutMs', async () => {
        await store.submitJob(job('slow', 1000));
        expect(await store.claimQueuedJob('c1', 60_000)).to.equal('slow');
        // Not stale yet for a long timeout.
        expect(await store.claimQueuedJob('c2', 60_000)).to.equal(undefined);
        await sleep(250);
        expect(await store.claimQueuedJob('c2', 100)).to.equal('slow');
        // The old owner's ack no longer counts; the new owner's does.
        await store.ackQueuedJob('c1', 'slow');
        await sleep(250);
        expect(await store.claimQueuedJob('c3', 100)).to.equal('slow');
        await store.ackQueuedJob('c3', 'slow');
        await sleep(250);
        expect(await store.claimQueuedJob('c4', 0)).to.equal(undefined);
      });

      it('does not redeliver an acknowledged job', async () => {
        await store.submitJob(job('j1', 1000));
        await store.submitJob(job('j2', 2000));
        expect(await store.claimQueuedJob('c1', 60_000)).to.equal('j1');
        await store.ackQueuedJob('c1', 'j1');
        await sleep(250);
        // Even with a claim timeout of 0 the acked job stays gone; the next one comes out.
        expect(await store.claimQueuedJob('c2', 0)).to.equal('j2');
        await store.ackQueuedJob('c2', 'j2');
        expect(await store.claimQueuedJob('c2', 0)).to.equal(undefined);
        // Acknowledging something unknown is harmless.
        await store.ackQueuedJob('c2', 'nope');
      });

      it('skips jobs that were cancelled while queued', async () => {
        await store.submitJob(job('gone', 1000));
        await store.submitJob(job('next', 2000));
        expect(await store.transitionJob('gone', 'cancel')).to.not.equal(undefined);
        expect(await store.claimQueuedJob('c1', 60_000)).to.equal('next');
        await store.ackQueuedJob('c1', 'next');
        expect(await store.claimQueuedJob('c1', 0)).to.equal(undefined);
      });
    });

    describe('workers', () => {
      it('puts, gets, replaces and removes workers', async () => {
        await store.putWorker(worker('w1'));
        expect(await store.getWorker('w1')).to.deep.equal(worker('w1'));
        expect(await store.getWorker('w2')).to.equal(undefined);
        await store.putWorker({ ...worker('w1'), name: 'renamed' });
        expect((await store.getWorker('w1'))?.name).to.equal('renamed');
        await store.touchWorker('w1', 60_000);
        await store.removeWorker('w1');
        expect(await store.getWorker('w1')).to.equal(undefined);
        expect(await store.liveWorkers(Date.now())).to.deep.equal([]);
      });

      it('reports live workers until their heartbeat expires', async () => {
        for (const id of ['w3', 'w1', 'w2']) await store.putWorker(worker(id));
        await store.touchWorker('w1', 60_000);
        await store.touchWorker('w2', 150);
        await store.touchWorker('w3', 60_000);
        const t0 = Date.now();
        // Far in the future every heartbeat has expired.
        expect(await store.liveWorkers(t0 + 10 * 60_000)).to.deep.equal([]);
        await sleep(300);
        expect(await store.liveWorkers(Date.now())).to.deep.equal(['w1', 'w3']);
        // A heartbeat brings w2 back.
        await store.touchWorker('w2', 60_000);
        expect(await store.liveWorkers(Date.now())).to.deep.equal(['w1', 'w2', 'w3']);
      });

      it('ignores heartbeats of unknown or removed workers', async () => {
        await store.touchWorker('ghost', 60_000);
        await store.putWorker(worker('w1'));
        await store.removeWorker('w1');
        await store.touchWorker('w1', 60_000);
        expect(await store.liveWorkers(Date.now())).to.deep.equal([]);
      });
    });

    describe('round reports', () => {
      const report = (jobId: string, round: number) => ({
        jobId,
        round,
        report: JSON.stringify({ round, loss: 1 / (round + 1) }),
      });

      it('appends and lists oldest first with fromRound and limit', async () => {
        for (let r = 0; r < 6; r++) await store.appendRoundReport(report('j', r), 100);
        await store.appendRoundReport(report('other', 0), 100);
        expect(await store.listRoundReports('j', 0, 100)).to.deep.equal(
          [0, 1, 2, 3, 4, 5].map((r) => report('j', r)),
        );
        expect(await store.listRoundReports('j', 3, 100)).to.deep.equal([3, 4, 5].map((r) => report('j', r)));
        expect(await store.listRoundReports('j', 1, 2)).to.deep.equal([1, 2].map((r) => report('j', r)));
        expect(await store.listRoundReports('j', 9, 10)).to.deep.equal([]);
        expect(await store.listRoundReports('j', 0, 0)).to.deep.equal([]);
        expect(await store.listRoundReports('none', 0, 10)).to.deep.equal([]);
      });

      it('caps the history at maxLen, dropping the oldest', async () => {
        for (let r = 0; r < 10; r++) await store.appendRoundReport(report('j', r), 4);
        expect((await store.listRoundReports('j', 0, 100)).map((r) => r.round)).to.deep.equal([6, 7, 8, 9]);
      });

      it('rewrites history from a round that is appended again (resume from checkpoint)', async () => {
        for (let r = 0; r < 6; r++) await store.appendRoundReport(report('j', r), 100);
        const again = { jobId: 'j', round: 3, report: '{"resumed":true}' };
        await store.appendRoundReport(again, 100);
        expect(await store.listRoundReports('j', 0, 100)).to.deep.equal([
          report('j', 0),
          report('j', 1),
          report('j', 2),
          again,
        ]);
        await store.appendRoundReport(report('j', 4), 100);
        expect((await store.listRoundReports('j', 3, 100)).map((r) => r.round)).to.deep.equal([3, 4]);
      });
    });

    describe('checkpoint manifests', () => {
      it('stores the latest manifest per job', async () => {
        const m = (round: number): CheckpointManifest => ({
          jobId: 'j',
          round,
          path: `/ckpt/j/round-${String(round).padStart(6, '0')}.safetensors`,
          sha256: 'f'.repeat(64),
          bytes: 1234,
          createdAt: 1700000000000 + round,
        });
        expect(await store.getCheckpointManifest('j')).to.equal(undefined);
        await store.putCheckpointManifest(m(100));
        expect(await store.getCheckpointManifest('j')).to.deep.equal(m(100));
        await store.putCheckpointManifest(m(200));
        expect(await store.getCheckpointManifest('j')).to.deep.equal(m(200));
        expect(await store.getCheckpointManifest('k')).to.equal(undefined);
      });
    });

    describe('leases', () => {
      it('grants a lease to one owner at a time; renew and release are owner-only', async () => {
        const t1 = await store.acquireLease('leader', 'a', 60_000);
        expect(t1).to.be.a('number');
        expect(await store.acquireLease('leader', 'b', 60_000)).to.equal(undefined);
        // Re-acquiring our own lease keeps the token.
        expect(await store.acquireLease('leader', 'a', 60_000)).to.equal(t1);
        expect(await store.renewLease('leader', 'a', 60_000)).to.equal(true);
        expect(await store.renewLease('leader', 'b', 60_000)).to.equal(false);
        await store.releaseLease('leader', 'b');
        expect(await store.acquireLease('leader', 'b', 60_000)).to.equal(undefined);
        await store.releaseLease('leader', 'a');
        expect(await store.renewLease('leader', 'a', 60_000)).to.equal(false);
        const t2 = await store.acquireLease('leader', 'b', 60_000);
        expect(t2).to.be.greaterThan(t1!);
        // Leases are independent by name.
        expect(await store.acquireLease('other', 'a', 60_000)).to.be.a('number');
      });

      it('issues a larger fencing token after the lease expires', async () => {
        const t1 = await store.acquireLease('l', 'a', 150);
        expect(t1).to.be.a('number');
        await sleep(300);
        expect(await store.renewLease('l', 'a', 60_000)).to.equal(false);
        const t2 = await store.acquireLease('l', 'b', 60_000);
        expect(t2).to.be.greaterThan(t1!);
        const t3 = await store.acquireLease('l', 'a', 60_000);
        expect(t3).to.equal(undefined);
        await store.releaseLease('l', 'b');
        expect(await store.acquireLease('l', 'a', 60_000)).to.be.greaterThan(t2!);
      });
    });

    describe('fencing', () => {
      const manifest = (round: number): CheckpointManifest => ({
        jobId: 'f',
        round,
        path: `/ckpt/f/round-${round}.safetensors`,
        sha256: 'ef'.repeat(32),
        bytes: 64,
        createdAt: 5,
      });
      const report = (round: number) => ({ jobId: 'f', round, report: `{"round":${round}}` });
      async function refused(write: Promise<unknown>, token: number, current: number): Promise<void> {
        const err = await write.then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, 'the stale write was accepted').to.be.instanceOf(StaleFenceError);
        expect(err).to.include({ jobId: 'f', token, current });
      }

      it('commits a round atomically: report, round counter and commit log', async () => {
        await store.submitJob(job('f', 1));
        await store.commitRound(report(0), 100, 3);
        await store.commitRound(report(1), 100, 3);
        expect((await store.getJob('f'))!.round).to.equal(2);
        expect((await store.listRoundReports('f', 0, 10)).map((r) => r.round)).to.deep.equal([0, 1]);
        expect(await store.listRoundCommits('f')).to.deep.equal([
          { round: 0, fence: 3 },
          { round: 1, fence: 3 },
        ]);
        expect(await store.jobFence('f')).to.equal(3);
        // A new leader resumes from round 1: the reports are rewritten, the commit log only grows.
        await store.commitRound(report(1), 100, 4);
        expect((await store.listRoundReports('f', 0, 10)).map((r) => r.round)).to.deep.equal([0, 1]);
        expect((await store.listRoundCommits('f')).map((c) => c.fence)).to.deep.equal([3, 3, 4]);
      });

      it('a commit repeated with the id of the newest commit (its answer was lost) changes nothing', async () => {
        await store.submitJob(job('f', 1));
        await store.commitRound(report(0), 100, 3, 'c0');
        await store.commitRound(report(1), 100, 3, 'c1');
        await store.commitRound(report(1), 100, 3, 'c1');
        expect(await store.listRoundCommits('f')).to.deep.equal([
          { round: 0, fence: 3 },
          { round: 1, fence: 3 },
        ]);
        // Another id is another commit, even of the same round (a replay after a rollback).
        await store.commitRound(report(1), 100, 3, 'c1-replay');
        expect((await store.listRoundCommits('f')).map((c) => c.round)).to.deep.equal([0, 1, 1]);
        expect((await store.getJob('f'))!.round).to.equal(2);
      });

      it('refuses every job write with a token below the highest the job has seen, writing nothing', async () => {
        await store.submitJob(job('f', 1));
        await store.transitionJob('f', 'start', {}, 1);
        await store.commitRound(report(0), 100, 1);
        await store.putCheckpointManifest(manifest(1), 1);
        // A new leader takes the job over.
        await store.fenceJob('f', 2);
        expect(await store.jobFence('f')).to.equal(2);
        const before = {
          job: await store.getJob('f'),
          reports: await store.listRoundReports('f', 0, 10),
          commits: await store.listRoundCommits('f'),
          manifest: await store.getCheckpointManifest('f'),
        };
        await refused(store.commitRound(report(1), 100, 1), 1, 2);
        await refused(store.putCheckpointManifest(manifest(2), 1), 1, 2);
        await refused(store.setJobRound('f', 7, 1), 1, 2);
        await refused(store.transitionJob('f', 'run', {}, 1), 1, 2);
        await refused(store.fenceJob('f', 1), 1, 2);
        expect({
          job: await store.getJob('f'),
          reports: await store.listRoundReports('f', 0, 10),
          commits: await store.listRoundCommits('f'),
          manifest: await store.getCheckpointManifest('f'),
        }).to.deep.equal(before);
        expect(await store.jobFence('f')).to.equal(2);
        // The current token, and a later one, go through.
        await store.commitRound(report(1), 100, 2);
        await store.putCheckpointManifest(manifest(2), 3);
        expect(await store.jobFence('f')).to.equal(3);
        await refused(store.commitRound(report(2), 100, 2), 2, 3);
        expect((await store.getCheckpointManifest('f'))!.round).to.equal(2);
        expect((await store.listRoundCommits('f')).map((c) => c.fence)).to.deep.equal([1, 2]);
      });

      it('keeps fences per job, and unfenced writes leave them alone', async () => {
        await store.submitJob(job('f', 1));
        await store.submitJob(job('g', 2));
        await store.fenceJob('f', 5);
        expect(await store.jobFence('g')).to.equal(0);
        await store.commitRound({ ...report(0), jobId: 'g' }, 100, 1);
        await store.commitRound(report(0), 100);
        expect(await store.jobFence('f')).to.equal(5);
        expect(await store.listRoundCommits('f')).to.deep.equal([{ round: 0, fence: 0 }]);
      });

      it('names the lease holder and its token', async () => {
        expect(await store.getLease('leader')).to.equal(undefined);
        const t = await store.acquireLease('leader', 'a@host:1', 60_000);
        expect(await store.getLease('leader')).to.deep.equal({ owner: 'a@host:1', token: t });
        await store.releaseLease('leader', 'a@host:1');
        expect(await store.getLease('leader')).to.equal(undefined);
      });
    });

    describe('access tokens and worker-name bindings', () => {
      const token = (id: string, extra: Partial<AccessTokenRecord> = {}): AccessTokenRecord => ({
        id,
        hash: 'cd'.repeat(32),
        role: 'worker',
        count: 2,
        createdAt: 1000,
        ...extra,
      });

      it('stores token records (hash, role, job, count, expiry) and forgets unknown ids', async () => {
        const t = token('t-1', { jobId: 'job-a', expiresAt: Date.now() + 60_000 });
        await store.putAccessToken(t);
        await store.putAccessToken(token('t-admin', { role: 'admin', count: 1 }));
        expect(await store.getAccessToken('t-1')).to.deep.equal(t);
        expect(await store.getAccessToken('t-admin')).to.deep.equal(
          token('t-admin', { role: 'admin', count: 1 }),
        );
        expect(await store.getAccessToken('t-missing')).to.equal(undefined);
      });

      it('revokes a token at once, and says whether it existed', async () => {
        await store.putAccessToken(token('t-r'));
        expect(await store.revokeAccessToken('t-r')).to.equal(true);
        expect(await store.getAccessToken('t-r')).to.equal(undefined);
        expect(await store.revokeAccessToken('t-r')).to.equal(false);
        expect(await store.revokeAccessToken('t-never')).to.equal(false);
      });

      it('drops a token at its expiry', async () => {
        await store.putAccessToken(token('t-short', { expiresAt: Date.now() + 150 }));
        expect(await store.getAccessToken('t-short')).to.not.equal(undefined);
        await sleep(300);
        expect(await store.getAccessToken('t-short')).to.equal(undefined);
      });

      it('binds at most `limit` names per credential, keeps each name with its credential', async () => {
        expect(await store.bindWorkerName('w-a', 'token:t-1', 'id-1', 2)).to.deep.equal({ status: 'bound' });
        expect(await store.bindWorkerName('w-b', 'token:t-1', 'id-2', 2)).to.deep.equal({ status: 'bound' });
        expect(await store.bindWorkerName('w-c', 'token:t-1', 'id-3', 2)).to.deep.equal({
          status: 'exhausted',
        });
        // The same credential may register a bound name again: the new worker supersedes the old one.
        expect(await store.bindWorkerName('w-a', 'token:t-1', 'id-4', 2)).to.deep.equal({
          status: 'rebound',
          previousWorker: 'id-1',
        });
        expect(await store.bindWorkerName('w-a', 'token:t-1', 'id-5', 2)).to.deep.equal({
          status: 'rebound',
          previousWorker: 'id-4',
        });
        // Another credential can neither take a bound name nor is it limited by the first one's count.
        expect(await store.bindWorkerName('w-a', 'token:t-2', 'id-6', 5)).to.deep.equal({ status: 'taken' });
        expect(await store.bindWorkerName('w-c', 'token:t-2', 'id-7', 5)).to.deep.equal({ status: 'bound' });
        expect(await store.bindWorkerName('w-c', 'token:t-1', 'id-8', 2)).to.deep.equal({ status: 'taken' });
      });

      it('lets exactly `limit` of 10 concurrent bindings of distinct names win', async () => {
        const results = await Promise.all(
          [...Array(10).keys()].map((i) => store.bindWorkerName(`n-${i}`, 'token:race', `id-${i}`, 3)),
        );
        expect(results.filter((r) => r.status === 'bound')).to.have.length(3);
        expect(results.filter((r) => r.status === 'exhausted')).to.have.length(7);
      });

      it("frees an expired credential's names and count", async () => {
        const soon = Date.now() + 150;
        expect(await store.bindWorkerName('w-x', 'token:old', 'id-1', 1, soon)).to.deep.equal({
          status: 'bound',
        });
        expect(await store.bindWorkerName('w-x', 'token:new', 'id-2', 1)).to.deep.equal({ status: 'taken' });
        await sleep(300);
        expect(await store.bindWorkerName('w-x', 'token:new', 'id-3', 1)).to.deep.equal({ status: 'bound' });
      });
    });
  });
}

runStateStoreContract('memory', () => new MemoryStateStore());

describe('StateStore: redis', () => {
  const runPrefix = `phalanx-test-${randomBytes(6).toString('hex')}:`;
  let admin: Redis;
  let n = 0;

  before(async () => {
    admin = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
    admin.on('error', () => {});
    try {
      await admin.connect();
    } catch (err) {
      throw new Error(
        `The Redis contract suite needs a Redis server at ${REDIS_URL} (CI starts one; locally run ` +
          `\`redis-server --save '' --appendonly no\` or set PHALANX_TEST_REDIS_URL): ${(err as Error).message}`,
        { cause: err },
      );
    }
  });

  after(async () => {
    if (admin?.status !== 'ready') return;
    await dropKeys(runPrefix, admin);
    expect(await admin.scan('0', 'MATCH', `${runPrefix}*`, 'COUNT', 10_000)).to.have.nested.property(
      '[1].length',
      0,
    );
    await admin.quit();
  });

  // Each test gets its own key space under the run's prefix.
  runStateStoreContract('redis', () => new RedisStateStore(REDIS_URL, { keyPrefix: `${runPrefix}${++n}:` }));

  it('connect() rejects with a message naming the URL when Redis is unreachable', async () => {
    const store = new RedisStateStore('redis://:secret@127.0.0.1:1/0');
    let error: unknown;
    try {
      await store.connect();
    } catch (err) {
      error = err;
    }
    expect((error as Error | undefined)?.message).to.match(
      /cannot connect to Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1\/0/,
    );
    expect(await store.ping()).to.equal(false);
    await store.close();
  });

  it('completes a submit that stopped between storing the job and enqueueing it', async () => {
    const prefix = `${runPrefix}${++n}:`;
    const store = new RedisStateStore(REDIS_URL, { keyPrefix: prefix });
    await store.connect();
    try {
      const record = job('half', 1000);
      // Simulate the first step having landed alone.
      await admin.hset(`${prefix}{job:half}`, { ...record });
      await store.submitJob(record);
      expect((await store.listJobs()).map((j) => j.id)).to.deep.equal(['half']);
      expect(await store.claimQueuedJob('c', 60_000)).to.equal('half');
      let error: unknown;
      try {
        await store.submitJob(record);
      } catch (err) {
        error = err;
      }
      expect((error as Error | undefined)?.message).to.match(/already exists/);
    } finally {
      await store.close();
    }
  });

  it('a retried request completes a first submit that stopped after claiming its request id', async () => {
    const prefix = `${runPrefix}${++n}:`;
    const store = new RedisStateStore(REDIS_URL, { keyPrefix: prefix });
    await store.connect();
    try {
      const first = job('claimed', 1000, { owner: 'token:t-a', requestId: 'req-x' });
      // The first submit claimed the request (its whole record) and stopped before storing the job.
      await store.submitJob(first);
      await admin.del(
        `${prefix}{job:claimed}`,
        `${prefix}{jobs}:index`,
        `${prefix}{jobs}:queue`,
        `${prefix}{jobs}:queue:entries`,
      );
      expect(await admin.keys(`${prefix}{request:*}`)).to.have.length(1);
      const retry = await store.submitJob(job('second', 2000, { owner: 'token:t-a', requestId: 'req-x' }));
      expect(retry).to.deep.include({ created: false });
      expect(retry.job).to.deep.include({ id: 'claimed', createdAt: 1000 });
      expect((await store.listJobs()).map((j) => j.id)).to.deep.equal(['claimed']);
      expect(await store.getJob('second')).to.equal(undefined);
      expect(await store.claimQueuedJob('c', 60_000)).to.equal('claimed');
      await store.ackQueuedJob('c', 'claimed');
      expect(await store.claimQueuedJob('c', 60_000)).to.equal(undefined);
    } finally {
      await store.close();
    }
  });

  it('creates no keys when claiming from or acknowledging on an empty queue', async () => {
    const prefix = `${runPrefix}${++n}:`;
    const store = new RedisStateStore(REDIS_URL, { keyPrefix: prefix });
    await store.connect();
    try {
      expect(await store.claimQueuedJob('c', 0)).to.equal(undefined);
      await store.ackQueuedJob('c', 'x');
      expect(await admin.keys(`${prefix}*`)).to.deep.equal([]);
    } finally {
      await store.close();
    }
  });

  it('keeps the keys of one job in one Cluster slot', async () => {
    const prefix = `${runPrefix}${++n}:`;
    const store = new RedisStateStore(REDIS_URL, { keyPrefix: prefix });
    await store.connect();
    try {
      await store.submitJob(job('slot', 1000));
      await store.appendRoundReport({ jobId: 'slot', round: 0, report: '{}' }, 10);
      await store.putCheckpointManifest({
        jobId: 'slot',
        round: 0,
        path: 'p',
        sha256: 's',
        bytes: 1,
        createdAt: 1,
      });
      const keys = (await admin.keys(`${prefix}{job:slot}*`)).sort();
      expect(keys).to.have.length(3);
      const slots = new Set(
        await Promise.all(keys.map((k) => admin.call('CLUSTER', 'KEYSLOT', k).catch(() => 'n/a'))),
      );
      // CLUSTER KEYSLOT works on a standalone server too; if it is disabled, the key names still share the tag.
      expect(slots.size).to.equal(1);
    } finally {
      await store.close();
    }
  });
});

describe('createStateStore', () => {
  it('builds the store of the requested kind', async () => {
    expect(createStateStore({ kind: 'memory' }).kind).to.equal('memory');
    const redis = createStateStore({ kind: 'redis', url: REDIS_URL, keyPrefix: 'unused:' });
    expect(redis.kind).to.equal('redis');
    await redis.close();
  });
});
