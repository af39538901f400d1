import { expect } from 'chai';
import {
  mayCancelJob,
  mayEnrollWorkers,
  mayIssueTokens,
  mayJoinJob,
  mayReadJob,
  maySubmit,
  mayUseJobs,
  type Principal,
} from '../../../src/coordinator/auth/roles.ts';
import { TokenRequestError, validateTokenRequest } from '../../../src/coordinator/auth/tokens.ts';

const admin: Principal = { id: 'token:t-a', role: 'admin' };
const alice: Principal = { id: 'token:t-alice', role: 'submitter' };
const bob: Principal = { id: 'token:t-bob', role: 'submitter' };
const viewer: Principal = { id: 'token:t-v', role: 'viewer' };
const scopedViewer: Principal = { id: 'token:t-sv', role: 'viewer', jobId: 'job-1' };
const worker: Principal = { id: 'token:t-w', role: 'worker' };
const alicesJob = { id: 'job-1', owner: alice.id };
const unowned = { id: 'job-2' };

describe('roles', () => {
  it('admin may do everything', () => {
    expect([maySubmit(admin), mayReadJob(admin, alicesJob), mayCancelJob(admin, unowned)]).to.deep.equal([
      true,
      true,
      true,
    ]);
    expect([mayIssueTokens(admin), mayEnrollWorkers(admin), mayUseJobs(admin)]).to.deep.equal([
      true,
      true,
      true,
    ]);
  });

  it('a submitter sees and cancels only its own jobs', () => {
    expect([maySubmit(alice), mayReadJob(alice, alicesJob), mayCancelJob(alice, alicesJob)]).to.deep.equal([
      true,
      true,
      true,
    ]);
    expect([mayReadJob(bob, alicesJob), mayCancelJob(bob, alicesJob)]).to.deep.equal([false, false]);
    // A job without a recorded owner belongs to no submitter.
    expect([mayReadJob(alice, unowned), mayCancelJob(alice, unowned)]).to.deep.equal([false, false]);
    expect([mayIssueTokens(alice), mayEnrollWorkers(alice)]).to.deep.equal([false, false]);
  });

  it('a viewer reads (its job only, if scoped) and never changes anything', () => {
    expect([mayReadJob(viewer, alicesJob), mayReadJob(viewer, unowned)]).to.deep.equal([true, true]);
    expect([mayReadJob(scopedViewer, alicesJob), mayReadJob(scopedViewer, unowned)]).to.deep.equal([
      true,
      false,
    ]);
    expect([maySubmit(viewer), mayCancelJob(viewer, alicesJob), mayIssueTokens(viewer)]).to.deep.equal([
      false,
      false,
      false,
    ]);
  });

  it('a worker credential enrolls workers and has no access to jobs', () => {
    expect([mayEnrollWorkers(worker), mayUseJobs(worker), mayReadJob(worker, alicesJob)]).to.deep.equal([
      true,
      false,
      false,
    ]);
    expect([
      mayJoinJob(undefined, 'job-1'),
      mayJoinJob('job-1', 'job-1'),
      mayJoinJob('job-1', 'job-2'),
    ]).to.deep.equal([true, true, false]);
  });
});

describe('token requests', () => {
  it('fills defaults and refuses what makes no sense, naming the field', () => {
    expect(validateTokenRequest({ role: 'worker', count: 4, ttlMs: 3_600_000, jobId: 'j-1' })).to.deep.equal({
      role: 'worker',
      jobId: 'j-1',
      count: 4,
      ttlMs: 3_600_000,
    });
    expect(validateTokenRequest({ role: 'viewer' }).count).to.equal(1);
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ role: 'root' }, /role/],
      [{ role: 'submitter', count: 2 }, /count/],
      [{ role: 'submitter', jobId: 'j' }, /job/],
      [{ role: 'worker', count: 1e6 }, /count/],
      [{ role: 'worker', ttlMs: 1e15 }, /ttl/],
      [{ role: 'worker', jobId: '../x y' }, /job/],
    ];
    for (const [req, field] of bad)
      expect(() => validateTokenRequest(req as never), JSON.stringify(req))
        .to.throw(TokenRequestError)
        .with.property('message')
        .that.matches(field);
  });
});
