/**
 * Who really counted in a round, from its report: the rule's `included` flag alone says a worker's vector was in
 * the linear combination, not that it mattered. A worker whose share of the update is negligible is counted as
 * excluded, with the share as its reason. Pure.
 *
 * A worker's share is the size of its term in the update: |weight| · ‖gᵢ‖ for rules whose weight multiplies the
 * gradient itself, |weight| for the Flag Aggregator, whose weight multiplies the normalised gradient gᵢ/‖gᵢ‖
 * (docs/aggregation.md). Comparing sizes of terms, not bare weights, keeps a far-off worker that a geometric
 * median gives a tiny coefficient counted: its small coefficient times its large norm still moves the update.
 * Negligible: a share below NEGLIGIBLE_SHARE of the round's largest, i.e. under 0.1 % of the pull of the worker
 * that pulls hardest, below what float32 training noise hides.
 */
import { resolveRuleName } from '../core/aggregation/registry.ts';
import { wireReason, type RoundReport, type WorkerRoundHealth } from './roundReport.ts';

export const NEGLIGIBLE_SHARE = 1e-3;

export interface ExcludedWorker {
  worker: WorkerRoundHealth;
  reason: string;
}

export interface RoundHealth {
  /** Workers whose gradient counted in the update. */
  included: WorkerRoundHealth[];
  /** Delivered but left out by the rule, or with a negligible share of the update. */
  excluded: ExcludedWorker[];
  /** Participants that delivered no usable gradient (late, rejected, left). */
  missing: ExcludedWorker[];
  /** Included workers that declared a Byzantine behaviour (evaluation runs): the rule let an attacker in. */
  byzantineIncluded: WorkerRoundHealth[];
}

/** |weight| · (‖g‖ unless the rule weights normalised gradients). */
function share(rule: string, w: WorkerRoundHealth): number {
  const normalised = resolveRuleName(rule) === 'flag';
  return Math.abs(w.weight) * (normalised ? 1 : Math.abs(w.norm));
}

export function roundHealth(r: RoundReport): RoundHealth {
  const delivered = r.workers ?? [];
  let largest = 0;
  for (const w of delivered) if (w.included) largest = Math.max(largest, share(r.rule, w));
  const included: WorkerRoundHealth[] = [];
  const excluded: ExcludedWorker[] = [];
  for (const w of delivered) {
    if (!w.included) {
      excluded.push({ worker: w, reason: w.reason || 'excluded by the rule' });
      continue;
    }
    const relative = largest > 0 ? share(r.rule, w) / largest : 1;
    if (relative < NEGLIGIBLE_SHARE) {
      excluded.push({
        worker: w,
        reason: `negligible weight ${compact(w.weight)} (its share of the update is ${compact(relative)} of the largest)`,
      });
    } else {
      included.push(w);
    }
  }
  const missing = (r.missing ?? []).map((w) => ({ worker: w, reason: w.reason || 'no gradient' }));
  return { included, excluded, missing, byzantineIncluded: included.filter((w) => w.byzantine !== '') };
}

/** Two significant digits, exponent form below 0.01 (8.0e-5). */
function compact(x: number): string {
  if (x === 0 || !Number.isFinite(x)) return String(x);
  return Math.abs(x) < 0.01 ? x.toExponential(1) : x.toPrecision(2);
}

/**
 * Why the round applied no update, when it was skipped (no quorum, a rule precondition, the compute deadline):
 * every delivered worker then carries the round-skipped code and the reason. Undefined for an aggregated round.
 */
export function skippedBecause(r: RoundReport): string | undefined {
  const delivered = r.workers ?? [];
  const code = wireReason('round-skipped');
  if (delivered.length === 0 || !delivered.every((w) => w.reasonCode === code)) return undefined;
  return delivered[0].reason.replace(/^round skipped: /, '');
}
