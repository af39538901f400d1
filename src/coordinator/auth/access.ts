/** The authorization checks the Jobs and Admin services call: each throws PERMISSION_DENIED with the reason. */
import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../grpcStatus.ts';
import { mayCancelJob, mayIssueTokens, mayReadJob, maySubmit, mayUseJobs, type Principal } from './roles.ts';

interface JobRef {
  id: string;
  owner?: string;
}

function deny(message: string): never {
  throw new StatusError(grpc.status.PERMISSION_DENIED, message);
}

export function requireJobsAccess(p: Principal): void {
  if (!mayUseJobs(p)) deny(`a ${p.role} credential has no access to jobs`);
}

export function requireSubmit(p: Principal): void {
  if (!maySubmit(p)) deny(`a ${p.role} credential cannot submit jobs`);
}

export function requireRead(p: Principal, job: JobRef): void {
  requireJobsAccess(p);
  if (!mayReadJob(p, job)) deny(`no access to job '${job.id}'`);
}

export function requireCancel(p: Principal, job: JobRef): void {
  requireRead(p, job);
  if (!mayCancelJob(p, job)) deny(`a ${p.role} credential cannot cancel job '${job.id}'`);
}

export function requireAdmin(p: Principal): void {
  if (!mayIssueTokens(p)) deny(`a ${p.role} credential cannot do this (admin only)`);
}
