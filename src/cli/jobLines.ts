/**
 * The human text of `phalanx status` and `phalanx watch` (header, stall and final lines), from the Jobs API's
 * messages. Pure: the clock comes in as an argument, gRPC stays in jobsClient.ts and main.ts.
 */
import type { Job__Output } from '../gen/phalanx/v1/Job.ts';
import type { JobDetail__Output } from '../gen/phalanx/v1/JobDetail.ts';
import type { LiveWorker__Output } from '../gen/phalanx/v1/LiveWorker.ts';
import type { RoundReport } from '../coordinator/roundReport.ts';
import { roundHealth } from '../coordinator/roundHealth.ts';
import { formatDuration, formatNumber, formatPercent } from './format.ts';
import { formatRoundDetails, type EvaluatedSplit } from './progress.ts';

/** Final metrics of a completed job (JobResult in coordinator/jobRuntime.ts), as stored in result_json. */
interface JobResultJson {
  rounds?: number;
  testAccuracy?: number | null;
  testLoss?: number | null;
  finalLoss?: number | null;
  wallSeconds?: number;
}

function parseResult(job: Job__Output): JobResultJson | undefined {
  if (!job.resultJson) return undefined;
  try {
    return JSON.parse(job.resultJson) as JobResultJson;
  } catch {
    return undefined;
  }
}

const num = (x: number | null | undefined) => (typeof x === 'number' ? x : NaN);

/** The evaluation.split of a job's stored spec ('test' if it cannot tell). */
export function evaluatedSplitOf(specJson: string): EvaluatedSplit {
  try {
    const spec = JSON.parse(specJson) as { evaluation?: { split?: unknown } } | null;
    return spec?.evaluation?.split === 'validation' ? 'validation' : 'test';
  } catch {
    return 'test';
  }
}

const splitWord = (job: Job__Output) => (evaluatedSplitOf(job.specJson) === 'validation' ? 'val' : 'test');

function names(workers: readonly { name: string }[]): string {
  return workers.map((w) => w.name).join(', ');
}

function departedNote(d: JobDetail__Output, limit = 3): string {
  const shown = d.departed
    .slice(-limit)
    .map((w) => `${w.name} left ${formatDuration(w.agoMs / 1000)} ago (${w.reason})`);
  const more = d.departed.length - shown.length;
  return shown.length ? `; ${shown.join('; ')}${more > 0 ? `; ${more} more left` : ''}` : '';
}

/** A running job whose coordinator reports fewer participants than workers.min: it cannot make progress. */
function waitingForWorkers(job: Job__Output): boolean {
  const d = job.detail;
  return job.state === 'running' && !!d?.live && d.participants.length < d.workersMin;
}

/**
 * The STATE column of `phalanx jobs`: the stored state, except that a running job short of workers.min says
 * `waiting 1/4` (it cannot make progress; `running` with round 0 would read as a stuck job). Needs GetJob's detail.
 */
export function jobListState(job: Job__Output): string {
  if (waitingForWorkers(job)) return `waiting ${job.detail!.participants.length}/${job.detail!.workersMin}`;
  return job.state;
}

/**
 * The job's phase in a few words: `queued`, `waiting for workers 1/4`, `running: 37/150 rounds done (25%)`,
 * `completed: 150/150 rounds`, `failed at round 12/150`, `cancelled at round 12/150`.
 */
export function jobPhase(job: Job__Output): string {
  const progress = `${job.round}/${job.totalRounds}`;
  switch (job.state) {
    case 'queued':
      return 'queued (no coordinator has started it yet)';
    case 'starting':
      return 'starting (its runtime is being built)';
    case 'running': {
      const d = job.detail;
      if (waitingForWorkers(job)) return `waiting for workers ${d!.participants.length}/${d!.workersMin}`;
      const percent = job.totalRounds > 0 ? ` (${Math.floor((job.round / job.totalRounds) * 100)}%)` : '';
      return `running: ${progress} rounds done${percent}`;
    }
    case 'completed':
      return `completed: ${progress} rounds`;
    default:
      return `${job.state} at round ${progress}`;
  }
}

/** What a job that has not reported a round for a while waits for (from GetJob's live detail). */
export function waitingFor(job: Job__Output): string {
  if (job.state === 'queued') return 'the job to start (queued: no coordinator has started it yet)';
  if (job.state === 'starting') return 'the job to start (its runtime is being built)';
  const d = job.detail;
  if (!d?.live) return `round ${job.round + 1} (this coordinator does not run the job: no live detail)`;
  const joined = d.participants.length;
  if (joined < d.workersMin) {
    return `workers: ${joined}/${d.workersMin} joined (workers.min ${d.workersMin})${departedNote(d)}`;
  }
  const round = d.openRound + 1;
  const idle = d.participants.filter((w) => !w.pushed);
  const pushed = joined - idle.length;
  if (idle.length > 0) {
    const shown = idle.slice(0, 8);
    const more = idle.length > shown.length ? ` and ${idle.length - shown.length} more` : '';
    return `${names(shown)}${more} (round ${round}: ${pushed}/${joined} pushed)${departedNote(d)}`;
  }
  return `round ${round} to close (all ${joined} participants pushed)${departedNote(d)}`;
}

/** `stalled 20s, waiting for worker-3 (round 12: 3/4 pushed)`. */
export function formatStall(seconds: number, job: Job__Output): string {
  return `stalled ${formatDuration(seconds)}, waiting for ${waitingFor(job)}`;
}

/** The line `watch` starts with: `job cli-job-3fa2b1: waiting for workers 1/4`. */
export function formatJobHeader(job: Job__Output): string {
  return `job ${job.id}: ${jobPhase(job)}${job.error ? ` — error: ${job.error}` : ''}`;
}

/**
 * The line a watched job ends with: its final accuracy and losses (completed), or the error (failed), with the
 * newest accuracy seen when the job kept none.
 */
export function formatFinal(job: Job__Output, lastSeen: { accuracy: number; evalLoss: number }): string {
  const split = splitWord(job);
  const result = parseResult(job);
  if (job.state === 'completed' && result) {
    const wall = result.wallSeconds !== undefined ? ` in ${formatDuration(result.wallSeconds)}` : '';
    return (
      `job ${job.id} completed: ${result.rounds ?? job.round} rounds${wall} — ${split} accuracy ` +
      `${formatPercent(num(result.testAccuracy))}, ${split} loss ${formatNumber(num(result.testLoss))} nats, ` +
      `final train loss ${formatNumber(num(result.finalLoss))}`
    );
  }
  const seen = Number.isFinite(lastSeen.accuracy)
    ? ` — last ${split} accuracy ${formatPercent(lastSeen.accuracy)}` +
      (Number.isFinite(lastSeen.evalLoss) ? `, ${split} loss ${formatNumber(lastSeen.evalLoss)} nats` : '')
    : '';
  return `job ${job.id} ${jobPhase(job)}${seen}${job.error ? ` — error: ${job.error}` : ''}`;
}

function workersLine(d: JobDetail__Output): string[] {
  const tag = (w: LiveWorker__Output) => `${w.name}${w.byzantine ? ` [byzantine ${w.byzantine}]` : ''}`;
  const lines = [
    `${d.participants.length} joined, workers.min ${d.workersMin}, workers.max ${d.workersMax}` +
      (d.participants.length ? `: ${d.participants.map(tag).join(', ')}` : ''),
  ];
  if (d.participants.length < d.workersMin) {
    lines.push(`${d.workersMin - d.participants.length} more needed before a round can close`);
  }
  for (const w of d.departed.slice(-5)) {
    lines.push(`${w.name} left ${formatDuration(w.agoMs / 1000)} ago: ${w.reason}`);
  }
  return lines;
}

/** The newest round: who counted, then why each other worker did not (as `watch` prints it). */
function lastRoundLines(r: RoundReport): string[] {
  const h = roundHealth(r);
  return [
    `round ${r.round + 1}: included ${h.included.length}/${(r.workers ?? []).length}`,
    ...formatRoundDetails(r).map((line) => line.trimStart()),
  ];
}

/**
 * `phalanx status`: phase and progress, workers joined against workers.min (who is missing and why), the newest
 * accuracy and losses, ETA, where checkpoints go, where the trained parameters are, and the result.
 */
export function formatStatus(job: Job__Output): string[] {
  const out: [string, string][] = [];
  const d = job.detail;
  const split = splitWord(job);
  const result = parseResult(job);
  const running = job.state === 'running' || job.state === 'starting' || job.state === 'queued';
  out.push(['job', `${job.id}${job.owner ? ` (submitted by ${job.owner})` : ''}`]);
  out.push(['state', jobPhase(job)]);
  if (job.error) out.push(['error', job.error]);
  if (d?.live) {
    for (const [i, line] of workersLine(d).entries()) out.push([i === 0 ? 'workers' : '', line]);
    if (d.participants.length >= d.workersMin) {
      out.push([
        'round',
        `${d.openRound + 1} open for ${formatDuration(d.openForMs / 1000)}, waiting for ${waitingFor(job)}`,
      ]);
    }
  } else if (job.state === 'running') {
    out.push(['workers', 'no live detail (another coordinator runs the job)']);
  }
  const last = d?.lastRound ? (d.lastRound as unknown as RoundReport) : undefined;
  if (last)
    for (const [i, line] of lastRoundLines(last).entries()) out.push([i === 0 ? 'last round' : '', line]);
  if (d && d.evalRound > 0) {
    out.push([
      'accuracy',
      `${formatPercent(d.evalAccuracy)} ${split} at round ${d.evalRound}` +
        (Number.isFinite(d.evalLoss) ? ` (${split} loss ${formatNumber(d.evalLoss)} nats)` : ''),
    ]);
  }
  if (d && Number.isFinite(d.trainLoss) && last) {
    out.push(['train loss', `${formatNumber(d.trainLoss)} at round ${last.round + 1}`]);
  }
  if (running && d) {
    const left = Math.max(0, job.totalRounds - job.round);
    out.push([
      'eta',
      waitingForWorkers(job)
        ? 'none until workers.min workers have joined'
        : Number.isFinite(d.secondsPerRound)
          ? `${formatDuration(left * d.secondsPerRound)} (${formatNumber(d.secondsPerRound)} s/round over the newest rounds)`
          : 'not known yet (fewer than two rounds reported)',
    ]);
  }
  if (d?.checkpointDir) {
    out.push([
      'checkpoints',
      `${d.checkpointDir}/${job.id}/` +
        (d.hasCheckpoint ? ` (newest: round ${d.checkpointRound})` : ' (none written yet)'),
    ]);
  }
  if (d) out.push(['parameters', parametersLine(job, d)]);
  if (result && job.state === 'completed') {
    out.push([
      'result',
      `${split} accuracy ${formatPercent(num(result.testAccuracy))}, ${split} loss ${formatNumber(num(result.testLoss))} nats, ` +
        `final train loss ${formatNumber(num(result.finalLoss))}, ${result.rounds ?? job.round} rounds in ${formatDuration(result.wallSeconds ?? NaN)}`,
    ]);
  }
  const width = Math.max(...out.map(([k]) => k.length)) + 2;
  return out.map(([k, v]) => `${k.padEnd(width)}${v}`);
}

/** Where the trained parameters are: the final checkpoint, or what exists while the job runs or after it failed. */
function parametersLine(job: Job__Output, d: JobDetail__Output): string {
  const atEnd = d.hasCheckpoint && d.checkpointRound === job.round;
  if (job.state === 'completed') {
    return atEnd
      ? `${d.checkpointPath} (the final checkpoint, round ${d.checkpointRound}; safetensors)`
      : `not in a checkpoint of the final round${d.hasCheckpoint ? `; the newest is round ${d.checkpointRound}: ${d.checkpointPath}` : ''}`;
  }
  if (job.state === 'running' || job.state === 'starting') {
    return `in the coordinator's memory until the job ends${d.hasCheckpoint ? `; newest checkpoint round ${d.checkpointRound}` : ''}`;
  }
  if (job.state === 'queued') return 'none yet';
  return d.hasCheckpoint
    ? `the newest checkpoint, round ${d.checkpointRound}: ${d.checkpointPath}`
    : 'no checkpoint was written';
}
