/**
 * The JSON report of a simulation (`phalanx simulate --report`, bench/robustness.ts) and its one-paragraph text
 * summary. Everything in it is labelled as an evaluation run: Byzantine workers here are simulated attackers.
 */
import type { JobSpec } from '../config/jobSpec.ts';
import { moeLabel } from '../models/moeSpec.ts';
import type {
  CompressionSummary,
  HealthSummary,
  SimulationEvaluation,
  SimulationResult,
} from './simulate.ts';

export interface SimulationReport {
  kind: 'simulation';
  name: string;
  seed: number;
  model: string;
  rounds: number;
  workers: number;
  rule: string;
  pre: string[];
  ruleOptions: Record<string, unknown>;
  /** Declared f of the aggregation. */
  f: number;
  byzantine: number;
  attack: string | null;
  attackOptions: Record<string, unknown>;
  optimizer: JobSpec['optimizer'];
  workerMomentum: number;
  batchSize: number;
  flip: boolean;
  /** 'iid', or 'dirichlet(α=0.3)'. */
  shards: string;
  /** Fraction of the training set held out for validation. */
  validation: number;
  /** The split `evaluations` and the accuracies are measured on. */
  evaluatedOn: 'test' | 'validation';
  backend: string;
  data: string;
  evaluations: SimulationEvaluation[];
  finalAccuracy: number;
  bestAccuracy: number;
  worstAccuracy: number;
  finalTestLoss: number;
  finalTrainLoss: number;
  skippedRounds: number;
  /** Divergence-guard rollbacks; after the first, rounds ran on `fallback`. */
  rollbacks: number;
  fallback: string | null;
  health: HealthSummary;
  /**
   * Per evaluation window (rounds after the previous evaluation up to `upToRound`): the median update norm and
   * the median of ‖update‖ / ‖mean of the honest vectors‖, i.e. how much longer a step the rule takes than a
   * clean mean of the same round would (1 = the same step).
   */
  steps: StepWindow[];
  /** compression.kind of the spec, and the gradient traffic under uniform | lgreco. */
  compressionKind: string;
  compression: CompressionSummary | null;
  wallSeconds: number;
}

export interface StepWindow {
  upToRound: number;
  updateNorm: number;
  ratioToHonestMean: number;
}

function median(xs: number[]): number {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** The step-size summary of `SimulationReport.steps`, one window per evaluation. */
export function stepWindows(result: Pick<SimulationResult, 'perRound' | 'evaluations'>): StepWindow[] {
  const out: StepWindow[] = [];
  let from = 0;
  for (const e of result.evaluations) {
    const rs = result.perRound.filter((r) => r.round >= from && r.round < e.round && !r.skipped);
    out.push({
      upToRound: e.round,
      updateNorm: median(rs.map((r) => r.updateNorm)),
      ratioToHonestMean: median(rs.map((r) => r.updateNorm / r.honestMeanNorm)),
    });
    from = e.round;
  }
  return out;
}

export function simulationReport(spec: JobSpec, result: SimulationResult): SimulationReport {
  return {
    kind: 'simulation',
    name: spec.name,
    seed: spec.seed,
    model: modelLabel(spec.model),
    rounds: result.rounds,
    workers: result.n,
    rule: spec.aggregation.rule,
    pre: spec.aggregation.pre,
    ruleOptions: spec.aggregation.options,
    f: spec.aggregation.f,
    byzantine: result.byzantine,
    attack: result.attack,
    attackOptions: result.byzantine ? (spec.simulate?.byzantine.options ?? {}) : {},
    optimizer: spec.optimizer,
    workerMomentum: spec.workers.momentum,
    batchSize: spec.data.batchSize,
    flip: spec.data.flip,
    shards: spec.data.shardBy === 'dirichlet' ? `dirichlet(α=${spec.data.alpha})` : 'iid',
    validation: spec.data.validation,
    evaluatedOn: spec.evaluation.split,
    backend: result.backend,
    data: result.dataSource,
    evaluations: result.evaluations,
    finalAccuracy: result.finalAccuracy,
    bestAccuracy: result.bestAccuracy,
    worstAccuracy: result.worstAccuracy,
    finalTestLoss: result.finalLoss,
    finalTrainLoss: result.finalTrainLoss,
    skippedRounds: result.skippedRounds,
    rollbacks: result.rollbacks,
    steps: stepWindows(result),
    fallback: result.rollbacks > 0 ? spec.guard.fallback.rule : null,
    health: result.health,
    compressionKind: spec.compression.kind,
    compression: result.compression,
    wallSeconds: result.wallSeconds,
  };
}

const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(2)}%` : '–');

/** A few lines: accuracies per evaluation, final/best/worst, inclusion of honest and Byzantine workers. */
export function formatSimulationSummary(report: SimulationReport): string {
  const rule = `${report.rule}${report.pre.length ? ` after ${report.pre.join('+')}` : ''}`;
  const attack = report.byzantine ? `${report.byzantine} × ${report.attack}` : 'no attack';
  const evals = report.evaluations.map((e) => `${e.round}: ${pct(e.accuracy)}`).join('  ');
  const evalLosses = report.evaluations.map((e) => `${e.round}: ${e.loss.toFixed(3)}`).join('  ');
  const h = report.health;
  const byz = report.byzantine
    ? `byzantine vectors included ${pct(h.byzantineInclusion)} of the time (in ${h.roundsWithByzantineIncluded} rounds)`
    : 'no byzantine workers';
  const averaged = report.evaluations.some((e) => e.live);
  const liveEvals = report.evaluations.map((e) => `${e.round}: ${pct(e.live?.accuracy ?? NaN)}`).join('  ');
  return [
    `simulation ${report.name}: ${report.rounds} rounds, ${report.workers} workers (${attack}), rule ${rule}, f = ${report.f} — ${report.wallSeconds.toFixed(1)} s`,
    `  ${report.evaluatedOn} accuracy${averaged ? ` (iterate average, ema ${report.optimizer.ema})` : ''}  ${evals}`,
    ...(averaged ? [`  ${report.evaluatedOn} accuracy (live parameters)  ${liveEvals}`] : []),
    `  ${report.evaluatedOn} loss (nats per target; per char for a language model)  ${evalLosses}`,
    `  final ${pct(report.finalAccuracy)}  best ${pct(report.bestAccuracy)}  worst ${pct(report.worstAccuracy)}  ` +
      `final train loss ${report.finalTrainLoss.toFixed(4)}${report.skippedRounds ? `  skipped rounds ${report.skippedRounds}` : ''}` +
      (report.rollbacks
        ? `  rolled back ${report.rollbacks}× by the divergence guard, then ${report.fallback}`
        : ''),
    `  honest vectors included ${pct(h.honestInclusion)} of the time; ${byz}`,
    ...(report.compression ? [compressionLine(report.compression)] : []),
    ...(report.steps.length
      ? [
          `  step / clean-mean step (median per window)  ${report.steps
            .map(
              (w) =>
                `${w.upToRound}: ${Number.isFinite(w.ratioToHonestMean) ? w.ratioToHonestMean.toFixed(2) : '–'}`,
            )
            .join('  ')}`,
        ]
      : []),
  ].join('\n');
}

/** "gradients: 12.3 MB sent (38.1× less than fp32), 3 plans: baseline-r0, lgreco-r101 (budget 97%), …". */
function compressionLine(c: CompressionSummary): string {
  const plans = c.plans
    .map((p) => (Number.isFinite(p.budgetUsed) ? `${p.planId} (budget ${pct(p.budgetUsed)})` : p.planId))
    .join(', ');
  return (
    `  gradients ${(c.bytes / 1e6).toFixed(2)} MB sent, ${c.ratio.toFixed(1)}× less than fp32; ` +
    `${c.plans.length} plan${c.plans.length === 1 ? '' : 's'}: ${plans}`
  );
}

function modelLabel(m: JobSpec['model']): string {
  if (m.kind === 'transformer')
    return `transformer d${m.dModel} L${m.layers} H${m.heads} ffn${m.ffn} ctx${m.context}${moeLabel(m.moe)}`;
  return m.kind === 'mlp' ? `mlp 784-${m.hidden.join('-')}-10` : 'cnn';
}
