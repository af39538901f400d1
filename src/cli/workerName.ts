/**
 * A worker's default name from its launcher's environment, so that a restarted worker gets its rank (and data
 * shard) back: PHALANX_WORKER_NAME, else worker-$RANK (torchrun, Kubeflow's PyTorchJob, MPI launchers), else
 * worker-$JOB_COMPLETION_INDEX (a Kubernetes Indexed Job), else worker-<pid>. WORLD_SIZE, when set, bounds RANK.
 */

/** An environment variable that cannot name a worker; the message names the variable and the fix. */
export class WorkerNameError extends Error {}

const INDEX = /^\d+$/;

function index(env: NodeJS.ProcessEnv, variable: string): number | undefined {
  const text = env[variable]?.trim();
  if (text === undefined || text === '') return undefined;
  if (!INDEX.test(text))
    throw new WorkerNameError(`${variable} must be a non-negative integer (got '${env[variable]}')`);
  return Number(text);
}

export function defaultWorkerName(env: NodeJS.ProcessEnv, pid: number): string {
  const explicit = env['PHALANX_WORKER_NAME']?.trim();
  if (explicit) return explicit;
  const rank = index(env, 'RANK') ?? index(env, 'JOB_COMPLETION_INDEX');
  const worldSize = index(env, 'WORLD_SIZE');
  if (worldSize !== undefined && worldSize < 1)
    throw new WorkerNameError(`WORLD_SIZE must be at least 1 (got '${env['WORLD_SIZE']}')`);
  if (rank === undefined) return `worker-${pid}`;
  if (worldSize !== undefined && rank >= worldSize) {
    const from = index(env, 'RANK') !== undefined ? 'RANK' : 'JOB_COMPLETION_INDEX';
    throw new WorkerNameError(
      `${from}=${rank} is not below WORLD_SIZE=${worldSize}: set WORLD_SIZE to the number of workers`,
    );
  }
  return `worker-${rank}`;
}
