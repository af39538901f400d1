/**
 * One training job of the distillation benches, on either engine:
 *   - coordinator (default): `launch()` — the gRPC coordinator in this process and one worker process per worker
 *     over loopback (memory store, wasm workers), Byzantine workers as `phalanx worker --byzantine`. The final
 *     parameters are read back from the job's checkpoint of its last round; the held-out metrics are those
 *     parameters evaluated here as simulate() evaluates (same split, limit and backend).
 *   - simulate: `simulate()`, the same worker and round code in one process (equal to a distributed run on the
 *     same backend, test/integration/simulateMatchesDistributed.test.ts), Byzantine ranks from spec.simulate.
 * The job starts where its spec says in both (src/models/studentInit.ts: a recursive student of a teacher of its
 * unrolled shape from the teacher, by recursion.init; everything else, `scratch` included, from its seed).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { listCheckpoints } from '../../src/checkpoint/checkpoint.ts';
import { loadCheckpoint } from '../../src/checkpoint/modelCheckpoint.ts';
import { launch } from '../../src/cli/launch.ts';
import type { JobSpec, JobSpecInput } from '../../src/config/jobSpec.ts';
import type { RoundReport } from '../../src/coordinator/roundReport.ts';
import { fromNamedTensors } from '../../src/core/layout/namedTensors.ts';
import { loadJobData } from '../../src/data/jobData.ts';
import { evaluationSplit } from '../../src/data/partition.ts';
import { modelLayout } from '../../src/models/registry.ts';
import { createTrainer } from '../../src/models/trainer.ts';
import type { Trainer } from '../../src/models/types.ts';
import { simulate } from '../../src/simulation/simulate.ts';
import { selectBackend } from '../../src/worker/backend.ts';

export type Engine = 'coordinator' | 'simulate';
export const ENGINES: readonly Engine[] = ['coordinator', 'simulate'];

export interface TrainJobOptions {
  engine: Engine;
  /** Byzantine workers among spec.workers.max, with this attack (coordinator: the last workers; simulate: ranks). */
  byzantine?: { count: number; attack: string };
}

export interface TrainedJob {
  /** Final parameters, flat in the model's layout order. */
  params: Float32Array;
  /** Held-out loss (nats per target) and accuracy of the final parameters. */
  finalLoss: number;
  finalAccuracy: number;
  /** MoE: max/mean expert load over the held-out tokens; MoR: mean recursions per held-out token. */
  expertLoad?: number;
  meanDepth?: number;
  /** Fraction of (Byzantine worker, round) pairs whose vector the rule included (NaN without Byzantine workers). */
  byzantineInclusion: number;
  /** Rounds in which no vector was included. */
  skippedRounds: number;
  /** The coordinator's own evaluation of the final round (the bench's check that both read the same model). */
  coordinatorTestLoss?: number;
  wallSeconds: number;
}

export async function trainJob(spec: JobSpec, o: TrainJobOptions): Promise<TrainedJob> {
  return o.engine === 'simulate' ? simulated(spec, o) : coordinated(spec, o);
}

async function simulated(spec: JobSpec, o: TrainJobOptions): Promise<TrainedJob> {
  const s = o.byzantine
    ? { ...spec, simulate: { byzantine: { ...o.byzantine, options: {} } } }
    : { ...spec, simulate: undefined };
  const r = await simulate(s, { backend: 'wasm' });
  const last = r.evaluations.at(-1);
  return {
    params: r.params,
    finalLoss: r.finalLoss,
    finalAccuracy: r.finalAccuracy,
    ...(last?.expertLoad !== undefined ? { expertLoad: last.expertLoad } : {}),
    ...(last?.meanDepth !== undefined ? { meanDepth: last.meanDepth } : {}),
    byzantineInclusion: r.health.byzantineInclusion,
    skippedRounds: r.skippedRounds,
    wallSeconds: r.wallSeconds,
  };
}

async function coordinated(spec: JobSpec, o: TrainJobOptions): Promise<TrainedJob> {
  const started = Date.now();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'phalanx-bench-job-'));
  // The coordinator admits a teacher only below its checkpoint directory: the teacher's parent, if any.
  const checkpointDir = spec.teacher
    ? path.dirname(path.resolve(spec.teacher.checkpoint))
    : path.join(dataDir, 'checkpoints');
  const workers = spec.workers.max;
  const reports: RoundReport[] = [];
  try {
    const { simulate: _, ...rest } = spec;
    const report = await launch({
      spec: {
        ...rest,
        // On a loaded shared machine a worker's wasm step can block its heartbeats for longer than the default
        // TTL (6 s); the coordinator would drop every worker and skip the round, which simulate() never does.
        // Liveness is not what these benches measure.
        workers: { ...spec.workers, heartbeatTtl: Math.max(spec.workers.heartbeatTtl, HEARTBEAT_TTL_MS) },
        // The last round always writes a checkpoint; keep only that one.
        checkpoint: { ...spec.checkpoint, every: spec.rounds, keep: 1 },
      } as JobSpecInput,
      workers,
      byzantine: o.byzantine?.count ?? 0,
      attack: o.byzantine?.attack ?? 'none',
      store: { kind: 'memory' },
      port: 0,
      dataDir,
      checkpointDir,
      backend: 'wasm',
      quiet: true,
      onRound: (r) => reports.push(r),
    });
    if (report.state !== 'completed')
      throw new Error(`job ${report.job} ${report.state}${report.error ? `: ${report.error}` : ''}`);
    const last = (await listCheckpoints(checkpointDir, report.job)).at(-1);
    if (last?.round !== spec.rounds)
      throw new Error(`job ${report.job}: no checkpoint of its last round ${spec.rounds}`);
    const loaded = await loadCheckpoint(path.dirname(last.path));
    const params = fromNamedTensors(loaded.tensors, modelLayout(loaded.config.model));
    rmSync(path.join(checkpointDir, report.job), { recursive: true, force: true });
    const ev = await evaluateHeldOut(spec, params);
    // The coordinator evaluated the same parameters on the same split (its own tfjs backend): a cross-check.
    if (!(Math.abs(report.testLoss - ev.loss) <= 1e-4))
      console.warn(`job ${report.job}: coordinator's held-out loss ${report.testLoss}, here ${ev.loss}`);
    const skippedRounds = reports.filter((r) => !r.workers.some((w) => w.included)).length;
    if (skippedRounds > 0)
      console.warn(`job ${report.job}: ${skippedRounds} rounds skipped (no vector included)`);
    const byzantine = reports.flatMap((r) => [...r.workers, ...r.missing].filter((w) => w.byzantine !== ''));
    return {
      params,
      finalLoss: ev.loss,
      finalAccuracy: ev.accuracy,
      ...(ev.expertLoad !== undefined ? { expertLoad: ev.expertLoad } : {}),
      ...(ev.meanDepth !== undefined ? { meanDepth: ev.meanDepth } : {}),
      byzantineInclusion: byzantine.length
        ? byzantine.filter((w) => w.included).length / byzantine.length
        : NaN,
      skippedRounds,
      coordinatorTestLoss: report.testLoss,
      wallSeconds: (Date.now() - started) / 1000,
    };
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const HEARTBEAT_TTL_MS = 120_000;

const trainers = new Map<string, Trainer>();
let wasm: Promise<unknown> | undefined;

/** simulate()'s final evaluation of `params`: the split evaluation.split names, its limit, wasm. */
async function evaluateHeldOut(spec: JobSpec, params: Float32Array) {
  await (wasm ??= selectBackend('wasm'));
  const key = JSON.stringify(spec.model);
  let trainer = trainers.get(key);
  if (trainer === undefined) {
    trainer = await createTrainer(spec.model);
    trainers.set(key, trainer);
  }
  const data = await loadJobData(spec, { maxTrain: spec.data.maxTrain, maxTest: spec.data.maxTest });
  return trainer.evaluate(params, evaluationSplit(data, spec), spec.evaluation.limit);
}
