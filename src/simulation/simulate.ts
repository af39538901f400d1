/**
 * `simulate(spec)`: the distributed round pipeline (architecture.md §6) driven in one process, no network — for
 * robustness studies (`phalanx simulate`, bench/robustness.ts).
 *
 * n = spec.workers.max simulated workers with ranks 0..n−1; the highest `spec.simulate.byzantine.count` ranks
 * are Byzantine. Each round t, at the current parameters θ_t:
 * - honest rank r: `GradientWorker.honest(θ_t, t)` — the same class a worker process uses, so the same shard,
 *   batch `batchAt(t)`, flips and worker momentum;
 * - Byzantine ranks, by kind of attack:
 *   - data-side (labelflip): a GradientWorker built with the attack config trains on its own shard with flipped
 *     labels (with worker momentum) and sends that gradient — exactly what a distributed Byzantine worker sends;
 *   - per-worker (`mode: 'own'` / `source: 'own'` options, crash, straggle): one attack instance per rank,
 *     `craft({honest: all honest vectors, own: the rank's honest gradient})`; crash sends nothing from
 *     `fromRound` on (reported missing), straggle sends on time (there is no clock here);
 *   - otherwise "omniscient": one attack instance, `craft({honest: all honest vectors of the round, n, f =
 *     byzantine count})` once per round, and every Byzantine rank sends that same vector (ByzFL's convention).
 *     The optimal* line-search attacks get `aggregate` = a copy of the job's pipeline (state synced each round).
 * The round is a RoundEngine (the coordinator's), closed when every rank has answered. Then exactly what
 * JobRuntime.closeRound does: the vectors ordered by rank go through
 * createAggregationPipeline(spec.aggregation) (createPerGroupPipeline over the expert blocks with
 * aggregation.perExpert; a failing round is skipped, 10 in a row fail the run; a non-finite update is not
 * applied), optimizer.step, evaluation on the split `evaluation.split` names (test set or validation split) after
 * every `evaluation.every`-th round and after the last one. Initial parameters:
 * opts.initialParams if given (a distributed job has no such option), else jobInitialParameters (studentInit.ts).
 *
 * Same spec and seed, no Byzantine workers or only data-side ones ⇒ the same parameters as `phalanx launch` with
 * the same tfjs backend (test/integration/simulateMatchesDistributed.test.ts). The distributed run needs
 * workers.min = workers.max for that: otherwise its first rounds may close before every worker has joined.
 */
import { fallbackAggregation, guardOptions, type JobSpec } from '../config/jobSpec.ts';
import {
  deliveredWorker,
  missingWorker,
  ruleDiagnostics,
  type RoundReport,
  type WorkerRoundHealth,
} from '../coordinator/roundReport.ts';
import { RoundEngine, type Clock } from '../core/round/roundEngine.ts';
import {
  DivergenceError,
  DivergenceGuard,
  observeClosedRound,
  type GuardState,
} from '../core/round/divergenceGuard.ts';
import { wireRoundTripInPlace } from '../core/compression/denseCodec.ts';
import { createAggregationPipeline, type AggregationPipeline } from '../core/aggregation/pipeline.ts';
import { createPerGroupPipeline } from '../core/aggregation/perGroup.ts';
import type { AggregationResult, AggregationSpec } from '../core/aggregation/types.ts';
import { moeExpertGroups } from '../models/moeSpec.ts';
import { createAttack } from '../core/attacks/registry.ts';
import type { Attack, AttackContext } from '../core/attacks/types.ts';
import { RoundStepper } from '../core/roundStep.ts';
import { createOptimizer } from '../core/optim/index.ts';
import type { Optimizer } from '../core/optim/types.ts';
import { deriveSeed, Rng } from '../core/random.ts';
import type { FashionMnist } from '../data/fashionMnist.ts';
import { loadJobData } from '../data/jobData.ts';
import { evaluationSplit } from '../data/partition.ts';
import { createTrainer, type TrainerOptions } from '../models/trainer.ts';
import { loadCheckpoint } from '../checkpoint/modelCheckpoint.ts';
import { fromNamedTensors } from '../core/layout/namedTensors.ts';
import { modelLayout } from '../models/registry.ts';
import { initialParametersLine, jobInitialParameters } from '../models/studentInit.ts';
import { teacherProblems } from '../models/teacherCompatibility.ts';
import type { Trainer } from '../models/types.ts';
import { selectBackend, type BackendPreference } from '../worker/backend.ts';
import { GradientWorker, type ByzantineConfig } from '../worker/gradientWorker.ts';
import { SimulatedWire } from './simulatedWire.ts';
import type { PlanRecord } from '../core/compression/compressionSession.ts';

export interface SimulationOptions {
  /** Called after every round (before the next starts) with the same report the coordinator produces. */
  onRound?(report: RoundReport): void;
  log?(message: string): void;
  /** tfjs backend, as `phalanx worker --backend` (default 'auto', i.e. what a worker process picks). */
  backend?: BackendPreference;
  /** Preloaded dataset (must be what loadFashionMnist gives for spec.data). */
  data?: FashionMnist;
  /**
   * Start from these parameters instead of the job's own start (jobInitialParameters: the teacher for a
   * recursive student of its teacher's unrolled shape, else the seed), e.g. another init or LoRA rank than the
   * spec's. A distributed job has no such option.
   */
  initialParams?: Float32Array;
  /**
   * Called after each round's aggregation with the vectors the rule saw (in delivery order, valid only during
   * the call), each one's role, and the rule's result (undefined for a skipped round): for per-parameter
   * studies of what the rule keeps (bench/moeSparsity.ts).
   */
  onAggregate?(round: number, vectors: Float32Array[], roles: WorkerRole[], result?: AggregationResult): void;
}

/** How a simulated worker produces its vector. */
export type WorkerRole = 'honest' | 'data-side' | 'per-worker' | 'omniscient';

export interface SimulationEvaluation {
  /** Completed rounds at evaluation time. */
  round: number;
  /** Of the delivered model: the iterate average with optimizer.ema > 0, else the live parameters. */
  accuracy: number;
  loss: number;
  /** With optimizer.ema > 0: the live parameters' accuracy and loss (the average's are above). */
  live?: { accuracy: number; loss: number };
  /** MoE models: max/mean routing assignments per expert over the evaluated tokens, worst block. */
  expertLoad?: number;
  /** Mixture-of-Recursions models: the mean number of recursions run per evaluated token. */
  meanDepth?: number;
}

export interface RankHealth {
  rank: number;
  role: WorkerRole;
  byzantine: boolean;
  /** Rounds whose aggregate included this rank's vector (weight > 0). */
  included: number;
  /** Rounds it delivered a vector (crashed ranks deliver none). */
  delivered: number;
  /** Mean trust and weight over delivered rounds. */
  meanTrust: number;
  meanWeight: number;
}

export interface RoundSummary {
  round: number;
  trainLoss: number;
  /** MoE models: the largest max/mean expert load among the honest workers' batches (worst block). */
  expertLoad?: number;
  updateNorm: number;
  /** ‖mean of the honest workers' vectors‖ this round: what a clean mean would step by (NaN without honest ones). */
  honestMeanNorm: number;
  includedHonest: number;
  includedByzantine: number;
  skipped?: string;
}

export interface HealthSummary {
  ranks: RankHealth[];
  /** Fraction of (honest rank, round) pairs included; same for Byzantine (NaN without Byzantine ranks). */
  honestInclusion: number;
  byzantineInclusion: number;
  /** Rounds in which at least one Byzantine vector was included. */
  roundsWithByzantineIncluded: number;
}

export interface SimulationResult {
  /** The live parameters (what workers would pull next). */
  params: Float32Array;
  /** With optimizer.ema > 0: the iterate average, the model the job delivers (a copy). */
  averagedParams?: Float32Array;
  rounds: number;
  n: number;
  byzantine: number;
  attack: string | null;
  backend: string;
  dataSource: string;
  evaluations: SimulationEvaluation[];
  finalAccuracy: number;
  finalLoss: number;
  bestAccuracy: number;
  worstAccuracy: number;
  /** Mean honest training loss of the last round. */
  finalTrainLoss: number;
  skippedRounds: number;
  /** Rollbacks the divergence guard made (guard.rollback); rounds after one are replayed, in perRound too. */
  rollbacks: number;
  perRound: RoundSummary[];
  health: HealthSummary;
  /** Gradient traffic under compression.kind uniform | lgreco (null under none). */
  compression: CompressionSummary | null;
  wallSeconds: number;
}

export interface CompressionSummary {
  /** Compressed gradient bytes of all pushes of the run. */
  bytes: number;
  /** The same pushes in fp32. */
  fp32Bytes: number;
  ratio: number;
  /** Every plan of the run, in order (the baseline first): id, first round, per-layer settings, budget used. */
  plans: PlanRecord[];
  /** Per round: the plan, bytes per layer and in total (all pushes), ratio against fp32. */
  perRound: { round: number; planId: string; bytes: number; layerBytes: number[]; ratio: number }[];
}

interface SimWorker {
  rank: number;
  name: string;
  role: WorkerRole;
  /** Computes the rank's own (honest, or flipped-label for data-side) vector; absent for omniscient ranks. */
  gradient?: GradientWorker;
  /** Per-worker attack instance and randomness. */
  attack?: Attack;
  rng?: Rng;
  /** This round's vector (owned copy). */
  buffer: Float32Array;
  loss: number;
  stats: { included: number; delivered: number; trust: number; weight: number };
}

/**
 * What the divergence guard rolls back to (the in-memory counterpart of the coordinator's newest good checkpoint,
 * taken at the checkpoint rounds whose state the guard judges good): parameters, optimizer and rule state, the
 * detector's state and each simulated worker's momentum.
 */
interface Snapshot {
  round: number;
  params: Float32Array;
  optimizer: ReturnType<Optimizer['saveState']>;
  aggregation: Record<string, unknown>;
  guard: GuardState | undefined;
  momentum: (Float32Array | undefined)[];
  /** Taken after a rollback: the rule state is the fallback's. */
  fallback: boolean;
}

/** Seed stream of the shared (omniscient) attack's randomness. */
const OMNISCIENT_STREAM = 0x5e1a;

/** Per-worker attacks: those that transform the attacker's own gradient, and runtime behaviours. */
function roleOf(attack: Attack, options: Record<string, unknown>): WorkerRole {
  if (attack.dataSide) return 'data-side';
  if (attack.behaviour !== undefined || options['mode'] === 'own' || options['source'] === 'own') {
    return 'per-worker';
  }
  return 'omniscient';
}

/**
 * A distillation job's teacher read straight from its checkpoint (simulation runs in one process: the path is
 * local, as given; its sha256 must match teacher.sha256 when the spec pins one).
 */
async function localTeacher(spec: JobSpec, log: (line: string) => void): Promise<TrainerOptions> {
  if (!spec.teacher) return {};
  const loaded = await loadCheckpoint(spec.teacher.checkpoint);
  if (spec.teacher.sha256 !== undefined && loaded.config.sha256 !== spec.teacher.sha256) {
    throw new Error(
      `teacher.sha256: the checkpoint has sha256 ${loaded.config.sha256}, the spec pins ${spec.teacher.sha256}`,
    );
  }
  const problems = teacherProblems(loaded.config.model, spec.model, spec.data);
  if (problems.length > 0) throw new Error(`teacher.checkpoint: ${problems.join('; ')}`);
  log(`teacher: ${loaded.config.model.kind} from ${loaded.dir} (sha256 ${loaded.config.sha256})`);
  return {
    teacher: {
      spec: loaded.config.model,
      params: fromNamedTensors(loaded.tensors, modelLayout(loaded.config.model)),
      weights: { alpha: spec.teacher.alpha, temperature: spec.teacher.temperature },
    },
  };
}

export async function simulate(spec: JobSpec, opts: SimulationOptions = {}): Promise<SimulationResult> {
  const started = performance.now();
  const log = opts.log ?? (() => {});
  const n = spec.workers.max;
  const byz = spec.simulate?.byzantine ?? { count: 0, attack: 'signflip', options: {} };
  const count = byz.count;
  if (count > n) throw new Error(`simulate.byzantine.count (${count}) exceeds workers.max (${n})`);
  const attackName = count > 0 ? byz.attack : null;
  const byzConfig: ByzantineConfig | undefined = attackName
    ? { attack: attackName, options: byz.options }
    : undefined;
  const probe = byzConfig ? createAttack(byzConfig.attack, byzConfig.options) : undefined;
  const byzRole: WorkerRole = probe ? roleOf(probe, byzConfig!.options) : 'honest';
  if (count === n && byzRole !== 'data-side') {
    throw new Error(
      `simulate: attack '${attackName}' needs at least one honest worker (count = workers.max = ${n})`,
    );
  }

  const selection = await selectBackend(opts.backend ?? 'auto');
  log(`tfjs backend: ${selection.backend} — ${selection.reason}`);
  const trainerOptions = await localTeacher(spec, log);
  const trainer: Trainer = await createTrainer(spec.model, trainerOptions);
  try {
    const data =
      opts.data ?? (await loadJobData(spec, { maxTrain: spec.data.maxTrain, maxTest: spec.data.maxTest }));
    log(`data: ${data.train.count} training / ${data.test.count} test examples from ${data.source}`);
    const evaluated = evaluationSplit(data, spec);
    if (spec.evaluation.split === 'validation') {
      log(`evaluating on ${evaluated.count} validation examples held out of the training set`);
    }
    const d = trainer.layout.totalSize;

    const workers: SimWorker[] = [];
    for (let rank = 0; rank < n; rank++) {
      const isByz = rank >= n - count;
      const role: WorkerRole = isByz ? byzRole : 'honest';
      const w: SimWorker = {
        rank,
        name: `worker-${rank}`,
        role,
        buffer: new Float32Array(d),
        loss: NaN,
        stats: { included: 0, delivered: 0, trust: 0, weight: 0 },
      };
      if (role === 'honest' || role === 'per-worker') {
        w.gradient = new GradientWorker(trainer, data.train, spec, rank, n);
      } else if (role === 'data-side') {
        w.gradient = new GradientWorker(trainer, data.train, spec, rank, n, byzConfig);
      }
      if (role === 'per-worker') {
        w.attack = createAttack(byzConfig!.attack, byzConfig!.options);
        w.rng = new Rng(deriveSeed(spec.seed, 0xa77a, rank));
      }
      workers.push(w);
    }
    const honest = workers.filter((w) => w.role === 'honest');
    const omniscient = workers.filter((w) => w.role === 'omniscient');
    const shared =
      omniscient.length > 0
        ? {
            attack: probe!,
            rng: new Rng(deriveSeed(spec.seed, OMNISCIENT_STREAM, count)),
            buffer: new Float32Array(d),
          }
        : undefined;

    let aggregationSpec = {
      rule: spec.aggregation.rule,
      f: spec.aggregation.f,
      pre: spec.aggregation.pre,
      options: spec.aggregation.options,
    };
    // aggregation.perExpert: each expert block aggregated over the workers that routed tokens to it, as the
    // coordinator's round-compute thread does (under the guard's fallback rule too).
    const expertGroups = spec.aggregation.perExpert ? moeExpertGroups(trainer.layout.layers) : [];
    const buildPipeline = (s: AggregationSpec): AggregationPipeline =>
      expertGroups.length ? createPerGroupPipeline(s, expertGroups) : createAggregationPipeline(s);
    let pipeline = buildPipeline(aggregationSpec);
    // The line-search attacks probe the aggregation: give them a copy so the job's stateful rules stay untouched.
    let shadow: AggregationPipeline | undefined;
    if (shared && shared.attack.name.startsWith('optimal')) shadow = buildPipeline(aggregationSpec);
    let optimizer = createOptimizer(spec.optimizer, d);
    let params: Float32Array;
    if (opts.initialParams) params = opts.initialParams.slice();
    else {
      const start = jobInitialParameters(spec.model, spec.seed, trainer, trainerOptions.teacher);
      params = start.params;
      const line = initialParametersLine(spec.model, start.from, trainerOptions.teacher?.spec);
      if (line) log(line);
    }
    if (params.length !== d)
      throw new Error(`simulate: initialParams has ${params.length} numbers, the model ${d}`);
    log(
      `simulating ${spec.rounds} rounds: ${n} workers (${count} byzantine: ${attackName ?? 'none'}${count ? `, ${byzRole}` : ''}), ` +
        `rule ${spec.aggregation.rule}${spec.aggregation.pre.length ? ` after ${spec.aggregation.pre.join('+')}` : ''}, f = ${spec.aggregation.f}, ${d} parameters`,
    );

    const evaluations: SimulationEvaluation[] = [];
    const perRound: RoundSummary[] = [];
    const honestMean = new Float64Array(d);
    let stepper = new RoundStepper(pipeline, optimizer, log);
    const guard = spec.guard.enabled ? new DivergenceGuard(guardOptions(spec)) : undefined;
    const rollingBack = guard !== undefined && spec.guard.rollback;
    let rollbacks = 0;
    let reportedUpTo = -1;
    const takeSnapshot = (round: number): Snapshot => ({
      round,
      params: params.slice(),
      optimizer: optimizer.saveState(),
      aggregation: structuredClone(pipeline.saveState()),
      guard: guard?.save(),
      momentum: workers.map((w) => w.gradient?.momentumState()),
      fallback: rollbacks > 0,
    });
    // The rollback target: the newest checkpoint round whose state the guard judged good (the initial state is).
    let lastGood = rollingBack ? takeSnapshot(0) : undefined;
    let skippedRounds = 0;
    let lastTrainLoss = NaN;
    // The same round engine as the coordinator, on a clock that only moves when every rank has answered and
    // the round still cannot close (then it jumps past roundTimeout, as a distributed round would time out).
    const clock = new SteppedClock();
    const engine = new RoundEngine<{ w: SimWorker; vector: Float32Array; loss: number }>(
      { min: spec.workers.min, max: n, roundTimeoutMs: spec.workers.roundTimeout },
      clock,
    );
    for (const w of workers) engine.join(w.name, w.name, w.role === 'honest' ? '' : attackName!);
    const encoding = spec.compression.encoding;
    const pulled = encoding === 'fp32' ? params : new Float32Array(params.length);
    // compression.kind uniform | lgreco: every push is encoded, chunked, validated and decoded as on the wire.
    const wire = SimulatedWire.create(spec, trainer.layout);
    const traffic = { bytes: 0, fp32Bytes: 0, perRound: [] as CompressionSummary['perRound'] };

    for (let round = 0; round < spec.rounds; round++) {
      const tOpen = performance.now();
      engine.open(round);
      // The parameters as workers receive them: a pull in bf16 rounds them too.
      if (encoding !== 'fp32') {
        pulled.set(params);
        wireRoundTripInPlace(pulled, encoding);
      }
      // Honest vectors first: the omniscient and per-worker attacks see all of them.
      let roundExpertLoad: number | undefined;
      for (const w of honest) {
        const { vector, loss, expertLoad } = await w.gradient!.honest(pulled, round);
        w.buffer.set(vector);
        w.loss = loss;
        if (expertLoad !== undefined) roundExpertLoad = Math.max(roundExpertLoad ?? 1, expertLoad);
      }
      const honestVectors = honest.map((w) => w.buffer);
      const baseCtx = (rng: Rng): AttackContext => ({ honest: honestVectors, n, f: count, rng, round });

      let sharedVector: Float32Array | undefined;
      if (shared) {
        const ctx = baseCtx(shared.rng);
        if (shadow) {
          shadow.loadState(pipeline.saveState());
          const ids = Array.from({ length: honestVectors.length + count }, (_, i) => `probe-${i}`);
          ctx.aggregate = (vectors) => shadow!.aggregate(vectors, ids.slice(0, vectors.length)).update;
        }
        sharedVector = shared.attack.craft(ctx, shared.buffer);
      }
      const deliver = (w: SimWorker, vector: Float32Array, loss: number) => {
        const sent = wire ? wire.transmit(w.rank, round, vector) : vector;
        if (typeof sent === 'string') engine.fail(w.name, round, { kind: 'rejected', reason: sent });
        else engine.deliver(w.name, round, { w, vector: sent, loss });
      };
      for (const w of workers) {
        if (w.role === 'honest') {
          deliver(w, w.buffer, w.loss);
        } else if (w.role === 'data-side') {
          const { vector, loss } = await w.gradient!.honest(pulled, round);
          w.buffer.set(vector);
          w.loss = loss;
          deliver(w, w.buffer, loss);
        } else if (w.role === 'per-worker') {
          const attack = w.attack!;
          if (attack.behaviour === 'crash' && round >= (attack.fromRound ?? 0)) {
            engine.fail(w.name, round, {
              kind: 'absent',
              reason: `byzantine behaviour: ${attack.behaviour}`,
            });
            continue;
          }
          const { vector, loss } = await w.gradient!.honest(pulled, round);
          w.loss = loss;
          // `vector` stays valid until the next gradient call; craft writes into the rank's own buffer.
          const crafted = attack.craft({ ...baseCtx(w.rng!), own: vector }, w.buffer);
          if (crafted !== w.buffer) w.buffer.set(crafted);
          deliver(w, w.buffer, loss);
        } else {
          deliver(w, sharedVector!, NaN);
        }
      }
      // What crossing the wire does to each distinct vector (bf16 rounds; fp32 is exact).
      if (encoding !== 'fp32' && !wire) {
        const seen = new Set<Float32Array>();
        for (const w of workers) {
          if (w.role === 'omniscient') seen.add(sharedVector!);
          else seen.add(w.buffer);
        }
        for (const v of seen) wireRoundTripInPlace(v, encoding);
      }
      let why = engine.decide();
      if (!why) {
        clock.advance(spec.workers.roundTimeout);
        why = engine.decide();
      }
      if (!why) throw new Error(`simulate: round ${round} cannot close (no worker answered)`);
      const closed = engine.close(why);
      const delivered = closed.deliveries.map((d) => d.payload);
      const compression = wire?.closeRound(round);
      if (compression) {
        traffic.bytes += compression.bytes;
        traffic.fp32Bytes += 4 * d * compression.pushes;
        const { planId, bytes, layerBytes, ratio } = compression;
        traffic.perRound.push({ round, planId, bytes, layerBytes, ratio });
      }
      const tCollect = performance.now() - tOpen;

      // --- what JobRuntime does with a closed round, in the same order (by rank) ---
      const { result, skipReason, updateNorm, aggregateMs, optimizeMs } =
        why === 'no-quorum'
          ? stepper.skip(
              round,
              `quorum not met: ${delivered.length} of workers.min = ${spec.workers.min} gradients accepted`,
            )
          : stepper.step(
              round,
              params,
              delivered.map((e) => e.vector),
              delivered.map((e) => e.w.name),
            );
      if (skipReason) skippedRounds++;
      opts.onAggregate?.(
        round,
        delivered.map((e) => e.vector),
        delivered.map((e) => e.w.role),
        result,
      );

      const health: WorkerRoundHealth[] = closed.deliveries.map((d, i) =>
        deliveredWorker({ ...d.participant, loss: d.payload.loss }, result?.workers[i], skipReason),
      );
      let includedHonest = 0;
      let includedByzantine = 0;
      delivered.forEach((e, i) => {
        const s = e.w.stats;
        const h = health[i];
        s.delivered++;
        s.trust += h.trust;
        s.weight += h.weight;
        if (h.included) {
          s.included++;
          if (e.w.role === 'honest') includedHonest++;
          else includedByzantine++;
        }
      });
      const missing = closed.missing.map((m) => missingWorker(m.participant, m.reason, m.code));
      const honestMeanNorm = meanNorm(
        delivered.filter((e) => e.w.role === 'honest').map((e) => e.vector),
        honestMean,
      );
      // Training loss: mean over the honest workers (what the model actually achieves on its data).
      let lossSum = 0;
      for (const w of honest) lossSum += w.loss;
      if (honest.length > 0) lastTrainLoss = lossSum / honest.length;

      const completed = round + 1;
      const isLast = completed >= spec.rounds;
      const every = spec.evaluation.every;
      let testAccuracy = NaN;
      let testLoss = NaN;
      let evaluateMs = 0;
      if (isLast || (every > 0 && completed % every === 0)) {
        const evaluating = performance.now();
        const averaged = optimizer.averaged?.();
        const ev = await trainer.evaluate(averaged ?? params, evaluated, spec.evaluation.limit);
        const live = averaged && (await trainer.evaluate(params, evaluated, spec.evaluation.limit));
        evaluateMs = performance.now() - evaluating;
        testAccuracy = ev.accuracy;
        testLoss = ev.loss;
        evaluations.push({
          round: completed,
          accuracy: ev.accuracy,
          loss: ev.loss,
          ...(live ? { live: { accuracy: live.accuracy, loss: live.loss } } : {}),
          ...(ev.expertLoad === undefined ? {} : { expertLoad: ev.expertLoad }),
          ...(ev.meanDepth === undefined ? {} : { meanDepth: ev.meanDepth }),
        });
      }
      const signals = observeClosedRound(guard, {
        round,
        aggregated: result !== undefined,
        workers: health,
        updateNorm: result ? updateNorm : undefined,
        testAccuracy,
        testLoss,
      });
      perRound.push({
        round,
        trainLoss: lastTrainLoss,
        ...(roundExpertLoad === undefined ? {} : { expertLoad: roundExpertLoad }),
        updateNorm,
        honestMeanNorm,
        includedHonest,
        includedByzantine,
        ...(skipReason ? { skipped: skipReason } : {}),
      });
      opts.onRound?.({
        jobId: `simulate-${spec.name}`,
        round,
        rule: aggregationSpec.rule,
        workers: health,
        missing,
        updateNorm,
        trainLoss: lastTrainLoss,
        testAccuracy,
        testLoss,
        timings: {
          collectMs: tCollect,
          aggregateMs,
          optimizeMs,
          totalMs: performance.now() - tOpen,
          evaluateMs,
        },
        bytesReceived: compression?.bytes ?? 0,
        diagnostics: ruleDiagnostics(aggregationSpec.rule, result?.diagnostics, health),
        finishedAtMs: Date.now(),
        divergence: signals.map((sig) => sig.message),
        rollbacks,
        replay: round <= reportedUpTo,
        ...(compression ? { compression } : {}),
      });
      reportedUpTo = Math.max(reportedUpTo, round);

      // --- the divergence guard: what JobRuntime does on a signal, with in-memory snapshots for checkpoints ---
      if (signals.length) log(`round ${round}: ${signals.map((sig) => sig.message).join('; ')}`);
      if (!lastGood) continue;
      if (signals.length) {
        if (rollbacks >= spec.guard.maxRollbacks) throw new DivergenceError(round, rollbacks, signals);
        rollbacks++;
        const back = lastGood;
        aggregationSpec = fallbackAggregation(spec);
        pipeline = buildPipeline(aggregationSpec);
        // The snapshot's rule state is the fallback's only if it was taken after an earlier rollback.
        if (back.fallback) pipeline.loadState(structuredClone(back.aggregation));
        if (shadow) shadow = buildPipeline(aggregationSpec);
        optimizer = createOptimizer(spec.optimizer, d);
        optimizer.loadState(back.optimizer);
        stepper = new RoundStepper(pipeline, optimizer, log);
        params.set(back.params);
        if (back.guard) guard!.load(back.guard);
        workers.forEach((w, i) => w.gradient?.restoreMomentum(back.momentum[i]));
        log(
          `round ${round}: rollback ${rollbacks}/${spec.guard.maxRollbacks} to round ${back.round}, continuing with ${aggregationSpec.rule}`,
        );
        round = back.round - 1;
        continue;
      }
      // A checkpoint round: only a good state (DivergenceGuard.health) becomes the rollback target.
      const checkpointEvery = spec.checkpoint.every;
      if (checkpointEvery > 0 && completed % checkpointEvery === 0) {
        const health = guard!.health();
        if (health.good) lastGood = takeSnapshot(completed);
        else log(`round ${round}: checkpoint of round ${completed} is not good: ${health.reason}`);
      }
    }

    const ranks: RankHealth[] = workers.map((w) => ({
      rank: w.rank,
      role: w.role,
      byzantine: w.role !== 'honest',
      included: w.stats.included,
      delivered: w.stats.delivered,
      meanTrust: w.stats.delivered ? w.stats.trust / w.stats.delivered : 0,
      meanWeight: w.stats.delivered ? w.stats.weight / w.stats.delivered : 0,
    }));
    const fraction = (rs: RankHealth[]) =>
      rs.length ? rs.reduce((s, r) => s + r.included, 0) / (rs.length * perRound.length) : NaN;
    const accuracies = evaluations.map((e) => e.accuracy);
    const final = evaluations.at(-1);
    const averagedParams = optimizer.averaged?.()?.slice();
    return {
      params,
      ...(averagedParams ? { averagedParams } : {}),
      rounds: spec.rounds,
      n,
      byzantine: count,
      attack: attackName,
      backend: selection.backend,
      dataSource: data.source,
      evaluations,
      finalAccuracy: final?.accuracy ?? NaN,
      finalLoss: final?.loss ?? NaN,
      bestAccuracy: accuracies.length ? Math.max(...accuracies) : NaN,
      worstAccuracy: accuracies.length ? Math.min(...accuracies) : NaN,
      finalTrainLoss: lastTrainLoss,
      skippedRounds,
      rollbacks,
      perRound,
      health: {
        ranks,
        honestInclusion: fraction(ranks.filter((r) => !r.byzantine)),
        byzantineInclusion: fraction(ranks.filter((r) => r.byzantine)),
        roundsWithByzantineIncluded: perRound.filter((r) => r.includedByzantine > 0).length,
      },
      compression: wire
        ? { ...traffic, ratio: traffic.fp32Bytes / traffic.bytes, plans: wire.authority.history }
        : null,
      wallSeconds: (performance.now() - started) / 1000,
    };
  } finally {
    trainer.dispose();
  }
}

/** ‖(1/m)·Σ vᵢ‖, accumulated in float64 in `scratch` (length d); NaN for no vectors. */
function meanNorm(vectors: Float32Array[], scratch: Float64Array): number {
  if (vectors.length === 0) return NaN;
  scratch.fill(0);
  for (const v of vectors) for (let j = 0; j < scratch.length; j++) scratch[j] += v[j];
  let s = 0;
  for (let j = 0; j < scratch.length; j++) s += scratch[j] * scratch[j];
  return Math.sqrt(s) / vectors.length;
}

/** Simulated time: stands still until a round has to time out. */
class SteppedClock implements Clock {
  private t = 0;
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}
