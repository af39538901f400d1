/**
 * Who may do what. A principal is the authenticated caller (an access token, a client certificate, or the
 * anonymous caller of a coordinator started with --insecure-open); the rules here are pure functions of the
 * principal and the job.
 *
 *   admin      everything: every job, token issuance, worker enrollment
 *   submitter  submit jobs; read, watch and cancel the jobs it submitted
 *   viewer     read and watch jobs (only its job if the credential names one); never changes anything
 *   worker     enroll as a worker (RegisterWorker); no access to the Jobs service
 */
import type { AccessRole } from '../state/stateStore.ts';

export type Role = AccessRole;
export const ROLES: readonly Role[] = ['admin', 'submitter', 'viewer', 'worker'];

export interface Principal {
  /** Stable id, recorded as a job's owner: `token:<id>`, `cert:<CN>` or `anonymous`. */
  id: string;
  role: Role;
  /** The only job this principal may touch (viewer and worker credentials may name one). */
  jobId?: string;
}

interface JobRef {
  id: string;
  owner?: string;
}

export function parseRole(text: string | undefined): Role | undefined {
  return ROLES.find((r) => r === text);
}

export function maySubmit(p: Principal): boolean {
  return p.role === 'admin' || p.role === 'submitter';
}

export function mayReadJob(p: Principal, job: JobRef): boolean {
  switch (p.role) {
    case 'admin':
      return true;
    case 'submitter':
      return job.owner !== undefined && job.owner === p.id;
    case 'viewer':
      return p.jobId === undefined || p.jobId === job.id;
    default:
      return false;
  }
}

export function mayCancelJob(p: Principal, job: JobRef): boolean {
  if (p.role === 'admin') return true;
  return p.role === 'submitter' && job.owner !== undefined && job.owner === p.id;
}

/** May this principal read anything through the Jobs service at all (ListJobs filters the rest)? */
export function mayUseJobs(p: Principal): boolean {
  return p.role !== 'worker';
}

export function mayIssueTokens(p: Principal): boolean {
  return p.role === 'admin';
}

export function mayEnrollWorkers(p: Principal): boolean {
  return p.role === 'admin' || p.role === 'worker';
}

/** A worker enrolled for one job may only join that one. */
export function mayJoinJob(jobScope: string | undefined, jobId: string): boolean {
  return jobScope === undefined || jobScope === jobId;
}
