/**
 * Live progress for long runs: on a terminal, one status line rewritten in place plus a permanent line at each
 * evaluation; elsewhere (CI, pipes), a plain line every evaluation round and every ~5% of the run.
 */
import type { RoundReport } from '../coordinator/roundReport.ts';

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
    const line = formatRound(
      r,
      this.total,
      this.lastAccuracy,
      (Date.now() - this.started) / 1000,
      this.split,
      this.lastEvalLoss,
    );
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

export function formatRound(
  r: RoundReport,
  total: number,
  accuracy: number,
  elapsed: number,
  split: EvaluatedSplit = 'test',
  /** The evaluation's mean cross-entropy (nats per target: per character for a language model). */
  evalLoss = NaN,
): string {
  const done = r.round + 1;
  const included = r.workers.filter((w) => w.included).length;
  const flagged = r.workers.filter((w) => !w.included).map((w) => w.name);
  const rate = elapsed > 0 ? done / elapsed : 0;
  const eta = rate > 0 ? (total - done) / rate : 0;
  const acc =
    (Number.isFinite(accuracy) ? `${(accuracy * 100).toFixed(1)}%` : '  –  ') +
    (Number.isFinite(evalLoss) ? ` (${evalLoss.toFixed(3)} nats)` : '');
  return (
    `round ${String(done).padStart(String(total).length)}/${total}  ` +
    `loss ${Number.isFinite(r.trainLoss) ? r.trainLoss.toFixed(3) : '  –  '}  ${split === 'validation' ? 'val' : 'test'} acc ${acc}  ` +
    `included ${included}/${r.workers.length}${flagged.length ? ` (flagged ${flagged.join(',')})` : ''}` +
    `${r.missing.length ? `  missing ${r.missing.length}` : ''}${compressionNote(r)}  ${rate.toFixed(1)} r/s  eta ${Math.round(eta)}s` +
    guardNote(r)
  );
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
