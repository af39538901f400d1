/**
 * Live progress for long runs: on a terminal, one status line rewritten in place plus a permanent line at each
 * evaluation; elsewhere (CI, pipes), a plain line every evaluation round and every ~5% of the run.
 */
import type { RoundReport, WorkerRoundHealth } from '../coordinator/roundReport.ts';
import { roundHealth, skippedBecause } from '../coordinator/roundHealth.ts';
import { formatDuration, formatNumber, formatPercent } from './format.ts';

export class ProgressPrinter {
  private readonly tty = Boolean(process.stdout.isTTY) && !process.env['CI'];
  private readonly started = Date.now();
  private readonly every: number;
  private lastAccuracy = NaN;
  private lastEvalLoss = NaN;
  private live = false;

  constructor(
    private readonly total: number,
    private readonly write: (line: string) => void,
    /** The job's evaluation.split, which names the accuracy column. */
    private readonly split: EvaluatedSplit = 'test',
  ) {
    this.every = Math.max(1, Math.round(total / 20));
  }

  round(r: RoundReport): void {
    const done = r.round + 1;
    if (Number.isFinite(r.testAccuracy)) this.lastAccuracy = r.testAccuracy;
    if (Number.isFinite(r.testLoss)) this.lastEvalLoss = r.testLoss;
    const elapsed = (Date.now() - this.started) / 1000;
    const line = formatRound(r, {
      total: this.total,
      accuracy: this.lastAccuracy,
      evalLoss: this.lastEvalLoss,
      split: this.split,
      rate: elapsed > 0 ? done / elapsed : undefined,
    });
    const permanent =
      Number.isFinite(r.testAccuracy) ||
      done === this.total ||
      r.divergence.length > 0 ||
      (!this.tty && done % this.every === 0);
    if (this.tty) {
      process.stdout.write(`\r\x1b[2K${line}${permanent ? '\n' : ''}`);
      this.live = !permanent;
    } else if (permanent) {
      this.write(line);
    }
  }

  done(): void {
    if (this.tty && this.live) process.stdout.write('\n');
  }
}

export type EvaluatedSplit = 'test' | 'validation';

export interface RoundLineContext {
  /** The job's rounds. */
  total: number;
  /** The newest evaluation's accuracy and loss (NaN: none yet); the report's own when it has one. */
  accuracy: number;
  evalLoss?: number;
  /** The job's evaluation.split, which names the accuracy column. */
  split?: EvaluatedSplit;
  /** Rounds per second measured live; undefined (a replayed round) shows neither rate nor ETA. */
  rate?: number;
}

/**
 * One round as a line: progress, losses, accuracy, who counted (included k/n of the workers that delivered),
 * who did not (names), traffic, rate and ETA, and the divergence guard's notes. A worker with a negligible share
 * of the update counts as excluded (coordinator/roundHealth.ts); an included Byzantine-labelled worker is named.
 */
export function formatRound(r: RoundReport, ctx: RoundLineContext): string {
  const done = r.round + 1;
  const total = ctx.total;
  const health = roundHealth(r);
  const skipped = skippedBecause(r);
  const names = (ws: { worker: WorkerRoundHealth }[]) => ws.map((w) => w.worker.name).join(',');
  const evalLoss = ctx.evalLoss ?? NaN;
  const acc =
    formatPercent(ctx.accuracy) + (Number.isFinite(evalLoss) ? ` (${formatNumber(evalLoss)} nats)` : '');
  const rate = ctx.rate !== undefined && Number.isFinite(ctx.rate) && ctx.rate > 0 ? ctx.rate : undefined;
  return (
    `round ${String(done).padStart(String(total).length)}/${total}  ` +
    `loss ${formatNumber(r.trainLoss)}  ${ctx.split === 'validation' ? 'val' : 'test'} acc ${acc}  ` +
    (skipped !== undefined
      ? `skipped (${skipped})`
      : `included ${health.included.length}/${(r.workers ?? []).length}` +
        (health.byzantineIncluded.length
          ? ` (byzantine ${health.byzantineIncluded.map((w) => w.name).join(',')} among them)`
          : '') +
        (health.excluded.length ? `  excluded ${names(health.excluded)}` : '')) +
    (health.missing.length ? `  missing ${names(health.missing)}` : '') +
    compressionNote(r) +
    storeNote(r) +
    (rate !== undefined
      ? `  ${rate.toFixed(1)} r/s  eta ${formatDuration(Math.max(0, total - done) / rate)}`
      : '') +
    guardNote(r)
  );
}

/**
 * Why each excluded or missing worker of a round did not count, one indented line each (at most `limit`, then
 * how many more): `  excluded worker-5 [byzantine signflip]: flag: points against …`.
 */
export function formatRoundDetails(r: RoundReport, limit = 10): string[] {
  const health = roundHealth(r);
  const rows = [
    ...health.excluded.map((e) => ({ kind: 'excluded', ...e })),
    ...health.missing.map((e) => ({ kind: 'missing ', ...e })),
  ];
  const lines = rows
    .slice(0, limit)
    .map(
      (e) =>
        `    ${e.kind} ${e.worker.name}${e.worker.byzantine ? ` [byzantine ${e.worker.byzantine}]` : ''}: ${e.reason}`,
    );
  if (rows.length > limit) lines.push(`    … and ${rows.length - limit} more`);
  const fallbacks = r.diagnostics?.groupFallbacks ?? [];
  if (fallbacks.length) {
    const shown = fallbacks.slice(0, 3).map((g) => `${g.group} (${g.senders} senders: ${g.reason})`);
    if (fallbacks.length > 3) shown.push(`${fallbacks.length - 3} more`);
    lines.push(
      `    per-expert: ${fallbacks.length} block(s) kept the all-worker aggregate: ${shown.join('; ')}`,
    );
  }
  return lines;
}

/** The divergence guard's part of a round line: signals, and whether the round is a replay after a rollback. */
function guardNote(r: RoundReport): string {
  // Reports stored before the guard existed have none of these fields.
  const signals = r.divergence ?? [];
  const rollbacks = r.rollbacks ?? 0;
  let note = '';
  if (rollbacks > 0) note += `  [${r.replay ? 'replay, ' : ''}rule ${r.rule} after ${rollbacks} rollback(s)]`;
  if (signals.length) note += `  DIVERGENCE: ${signals.join('; ')}`;
  return note;
}

/** Under compression: "  sent 45.0 kB (27.1× < fp32, plan lgreco-r6)"; nothing for dense rounds. */
function compressionNote(r: RoundReport): string {
  const c = r.compression;
  if (!c || !(c.bytes > 0)) return '';
  return `  sent ${(c.bytes / 1e3).toFixed(1)} kB (${c.ratio.toFixed(1)}× < fp32, plan ${c.planId})`;
}

/** "  store stalled 1.5 s (3 failed attempts)" when the round's commit waited for the state store. */
function storeNote(r: RoundReport): string {
  const s = r.storeStall;
  if (!s || !(s.failedAttempts > 0)) return '';
  return `  store stalled ${(s.waitedMs / 1e3).toFixed(1)} s (${s.failedAttempts} failed attempt${s.failedAttempts === 1 ? '' : 's'})`;
}
