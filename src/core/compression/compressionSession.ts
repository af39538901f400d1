/**
 * A compression session: the plan a job runs under, over time, on both sides of the wire. Used alike by the
 * coordinator (JobRuntime + the push receiver) and by `phalanx simulate`, so both follow the same plans.
 *
 * Coordinator (PlanAuthority): the current plan and its id, the byte bounds every push is checked against, the
 * shared seed of each (round, layer) and the re-plan schedule. Under `lgreco`, in every round t with
 * replanDue(t, warmup, window) each worker sends its error table (measured on its own p = g + e of round t);
 * when round t closes, the coordinate-wise median of the tables of the accepted pushes feeds the L-GreCo DP and
 * the new plan applies from round t + 1. `uniform` keeps the baseline for the whole job.
 *
 * Worker (WorkerCompressor): one error-feedback memory per layer, kept across re-plans (encodeLayer
 * re-initialises the PowerSGD factors of a layer whose rank changed), and the bytes of each layer of a push.
 *
 * Receiving (PushDecoder): one push's layers, chunk by chunk through a LayerAssembler, each validated against
 * the plan before it is decoded into the worker's dense slot.
 */
import type { PowerSgdState } from './powerSgd.ts';
import type { ParameterLayout } from '../layout/parameterLayout.ts';
import { deriveSeed } from '../random.ts';
import { CodecError } from './codecError.ts';
import { CodecWorkspace } from './codecWorkspace.ts';
import {
  checkPlan,
  describeSetting,
  layerByteBounds,
  planBytes,
  sameSetting,
  uniformPlan,
  type CompressionPlan,
  type CompressorKind,
  type FactorEncoding,
  type LayerSetting,
  type PlanBytes,
  type UniformSetting,
} from './compressionPlan.ts';
import { createErrorFeedback, type LayerMemory } from './errorFeedback.ts';
import { medianErrorTable } from './errorTableMedian.ts';
import { LayerAssembler } from './layerAssembler.ts';
import { encodeLayer, validateAndDecodeLayer } from './layerCodec.ts';
import { measureErrorTable, type ErrorModel } from './layerErrors.ts';
import {
  chooseSettings,
  planCandidates,
  planFromChoice,
  replanDue,
  sizeTable,
  splitTable,
  tableOffsets,
} from './lgrecoPlanner.ts';
import { randkSeed } from './randk.ts';

/** What the job spec says about compression, when it compresses (kind uniform or lgreco). */
export type SessionSpec =
  | { kind: 'uniform'; baseline: UniformSetting }
  | {
      kind: 'lgreco';
      baseline: UniformSetting;
      compressors: CompressorKind[];
      alpha: number;
      window: number;
      warmup: number;
      errorModel: ErrorModel;
      /** PowerSGD factor encodings of the candidates (default: the baseline's own). */
      factorValues?: FactorEncoding[];
    };

/** A compression spec that compresses, or null (kind none). */
export function sessionSpec<C extends { kind: string }>(c: C): Extract<C, SessionSpec> | null {
  return c.kind === 'uniform' || c.kind === 'lgreco' ? (c as Extract<C, SessionSpec>) : null;
}

/** The L-GreCo candidates of every layer (the baseline first), identical on every worker and the coordinator. */
export function sessionCandidates(spec: SessionSpec, layout: ParameterLayout): LayerSetting[][] {
  return spec.kind === 'lgreco'
    ? planCandidates(
        { compressors: spec.compressors, baseline: spec.baseline, factorValues: spec.factorValues },
        layout,
      )
    : uniformPlan('baseline', spec.baseline, layout).layers.map((s) => [s]);
}

/** Do workers send their error table with their push of `round`? */
export function tableDue(spec: SessionSpec, round: number): boolean {
  return spec.kind === 'lgreco' && replanDue(round, spec.warmup, spec.window);
}

/** Seed of the PowerSGD estimate in the error tables of `round` (shared, so honest workers agree). */
export function tableSeed(jobSeed: number, round: number): number {
  return deriveSeed(jobSeed, 0x7ab1e, round);
}

/** The plan of one stretch of rounds, for reports. */
export interface PlanRecord {
  planId: string;
  /** First round pushed under this plan. */
  fromRound: number;
  /** describeSetting of every layer. */
  settings: string[];
  /** Bytes of one push under this plan: exact for fixed-size codecs, topk's expected size otherwise. */
  expectedBytes: number;
  /** Σ E / budget of the plan on the median table it was chosen from (NaN for the baseline). */
  budgetUsed: number;
  /** Error tables the median was taken over (0 for the baseline). */
  tables: number;
  /** What an L-GreCo re-plan chose from (absent for the baseline). */
  decision?: PlanDecision;
}

/** The knapsack an L-GreCo re-plan solved: the error budget, and per layer every candidate's S and median E. */
export interface PlanDecision {
  /** α · Σ E(baseline) on the median table. */
  budget: number;
  baselineBytes: number;
  layers: {
    name: string;
    /** describeSetting of each candidate (the baseline first). */
    settings: string[];
    /** Expected wire bytes S of each candidate. */
    bytes: number[];
    /** Median squared error E of each candidate (+∞ where the median is; null once through JSON). */
    errors: number[];
    /** Index of the chosen candidate. */
    chosen: number;
  }[];
}

/**
 * What a checkpoint keeps of a PlanAuthority: the plan in force and the plans before it. Candidates, sizes and
 * the re-plan schedule follow from the spec and the layout, so this is the planner's whole state.
 */
export interface PlanAuthorityState {
  plan: CompressionPlan;
  history: PlanRecord[];
}

export class PlanAuthority {
  plan: CompressionPlan;
  bounds: PlanBytes;
  readonly history: PlanRecord[] = [];
  readonly candidates: LayerSetting[][];
  /** Length of a worker's flat error table. */
  readonly tableLength: number;
  /** The largest layer any candidate plan can send: what one push's LayerAssembler buffer must hold. */
  readonly maxLayerBytes: number;
  readonly workspace = new CodecWorkspace();
  private readonly sizes: Float64Array[];

  constructor(
    readonly spec: SessionSpec,
    readonly layout: ParameterLayout,
    readonly jobSeed: number,
    startRound = 0,
    /** Largest push a plan may ask for (bytes). */
    readonly maxPushBytes = Infinity,
  ) {
    this.candidates = sessionCandidates(spec, layout);
    this.tableLength = tableOffsets(this.candidates).at(-1)!;
    this.sizes = sizeTable(this.candidates, layout);
    let maxLayer = 0;
    this.candidates.forEach((cs, l) => {
      for (const c of cs) maxLayer = Math.max(maxLayer, layerByteBounds(c, layout.layers[l].shape).max);
    });
    this.maxLayerBytes = maxLayer;
    const base = uniformPlan(`baseline-r${startRound}`, spec.baseline, layout);
    this.bounds = planBytes(base, layout, maxPushBytes);
    this.plan = base;
    this.adopt(base, startRound, NaN, 0);
  }

  /** The plan in force and its history, for a checkpoint (a copy; the decision tables stay out, being reports). */
  saveState(): PlanAuthorityState {
    const history = this.history.map(({ decision: _, ...record }) => record);
    return structuredClone({ plan: this.plan, history });
  }

  /**
   * Continue under a saved plan (a resumed job keeps its plan id and settings until its next re-plan). The plan
   * must fit the layout and its push limit, and every layer's setting must be one of that layer's candidates
   * under this spec: a checkpoint of another spec or model is refused rather than half-applied.
   */
  restoreState(state: PlanAuthorityState): void {
    const { plan, history } = state;
    if (typeof plan?.planId !== 'string' || !Array.isArray(plan.layers) || !Array.isArray(history))
      throw new Error('compression state: no plan');
    checkPlan(plan, this.layout);
    plan.layers.forEach((setting, l) => {
      if (!this.candidates[l].some((c) => sameSetting(c, setting)))
        throw new Error(
          `compression state: layer ${l} '${this.layout.layers[l].name}' has ${describeSetting(setting)}, not a candidate of this job's spec`,
        );
    });
    if (history.at(-1)?.planId !== plan.planId)
      throw new Error(`compression state: plan '${plan.planId}' is not the last of its history`);
    this.bounds = planBytes(plan, this.layout, this.maxPushBytes);
    this.plan = structuredClone(plan);
    this.workspace.reserveForPlan(this.plan, this.layout);
    // JSON turns the baseline's NaN budget share into null
    const records = structuredClone(history).map((r) => ({ ...r, budgetUsed: r.budgetUsed ?? NaN }));
    this.history.splice(0, this.history.length, ...records);
  }

  /** The record of the current plan. */
  get current(): PlanRecord {
    return this.history[this.history.length - 1];
  }

  /** Seed of (round, layer): randk coordinates and the initial PowerSGD factors. */
  sharedSeed(round: number, layer: number): number {
    return randkSeed(this.jobSeed, round, layer);
  }

  tableDue(round: number): boolean {
    return tableDue(this.spec, round);
  }

  /**
   * Round `round` closed with the error tables of its accepted pushes (any order; tables of another length are
   * left out by the median). On a re-plan round with at least one table, choose and adopt the next plan, which
   * applies from round + 1; returns its record, else null.
   */
  closeRound(round: number, tables: readonly Float64Array[]): PlanRecord | null {
    if (this.spec.kind !== 'lgreco' || !this.tableDue(round)) return null;
    const valid = tables.filter((t) => t.length === this.tableLength);
    if (valid.length === 0) return null;
    const median = medianErrorTable(valid, this.tableLength);
    const errors = splitTable(median, this.candidates);
    const decision = chooseSettings(this.sizes, errors, this.spec.alpha);
    const next = planFromChoice(`lgreco-r${round + 1}`, this.candidates, decision.choice);
    try {
      this.bounds = planBytes(next, this.layout, this.maxPushBytes);
    } catch {
      return null; // above the push limit: keep the current plan
    }
    this.plan = next;
    return this.adopt(next, round + 1, decision.budgetUsed, valid.length, {
      budget: decision.budget,
      baselineBytes: decision.baselineBytes,
      layers: this.candidates.map((cs, l) => ({
        name: this.layout.layers[l].name,
        settings: cs.map(describeSetting),
        bytes: Array.from(this.sizes[l]),
        errors: Array.from(errors[l]),
        chosen: decision.choice[l],
      })),
    });
  }

  private adopt(
    plan: CompressionPlan,
    fromRound: number,
    budgetUsed: number,
    tables: number,
    decision?: PlanDecision,
  ): PlanRecord {
    this.workspace.reserveForPlan(plan, this.layout);
    const record: PlanRecord = {
      planId: plan.planId,
      fromRound,
      settings: plan.layers.map(describeSetting),
      expectedBytes: plan.layers.reduce((s, _, l) => s + this.sizes[l][this.candidateIndex(plan, l)], 0),
      budgetUsed,
      tables,
      ...(decision ? { decision } : {}),
    };
    this.history.push(record);
    return record;
  }

  private candidateIndex(plan: CompressionPlan, l: number): number {
    const i = this.candidates[l].findIndex((c) => describeSetting(c) === describeSetting(plan.layers[l]));
    return Math.max(0, i);
  }

  /** A decoder for one push of `round` under the current plan into `dst` (the worker's dense slot). */
  decoder(round: number, dst: Float32Array, buffer: Uint8Array): PushDecoder {
    return new PushDecoder(this, this.plan, this.bounds, round, dst, buffer);
  }
}

/** A CodecError whose message names the layer it happened in. */
function inLayer(e: unknown, layer: number, name: string): unknown {
  if (!(e instanceof CodecError) || e.message.startsWith(`layer ${layer} `)) return e;
  return new CodecError(e.code, `layer ${layer} '${name}': ${e.message}`);
}

/**
 * One push being received: layers in layout order, each in chunks at increasing byte offsets. A layer is
 * validated and decoded when the next one starts or the push ends; nothing is kept beyond the plan's bounds.
 */
export class PushDecoder {
  private layer = -1;
  private readonly assembler: LayerAssembler;
  readonly layerBytes: number[];
  bytes = 0;

  constructor(
    private readonly authority: PlanAuthority,
    readonly plan: CompressionPlan,
    private readonly bounds: PlanBytes,
    readonly round: number,
    private readonly dst: Float32Array,
    buffer: Uint8Array,
  ) {
    this.assembler = new LayerAssembler(buffer);
    this.layerBytes = plan.layers.map(() => 0);
  }

  /** A chunk of layer `layer` starting at byte `offset` of that layer. Throws CodecError. */
  chunk(layer: number, offset: number, data: Uint8Array): void {
    const layers = this.authority.layout.layers;
    if (layer !== this.layer) {
      if (layer !== this.layer + 1 || layer >= layers.length) {
        const expected =
          this.layer < 0
            ? '0'
            : this.layer + 1 < layers.length
              ? `${this.layer} or ${this.layer + 1}`
              : `${this.layer}`;
        throw new CodecError(
          'chunk-out-of-order',
          `chunk for layer ${layer}, expected layer ${expected} (layers in layout order)`,
        );
      }
      if (this.layer >= 0) this.completeLayer();
      this.layer = layer;
      this.assembler.begin(this.bounds.perLayer[layer], `layer ${layer} '${layers[layer].name}'`);
    }
    if (data.length === 0) throw new CodecError('wrong-length', `layer ${layer}: empty chunk`);
    this.assembler.push(offset, data);
  }

  /** The push ended: decode the last layer; every layer must have come. Returns the bytes received. */
  finish(): number {
    const layers = this.authority.layout.layers;
    if (this.layer >= 0) this.completeLayer();
    if (this.layer !== layers.length - 1) {
      const next = this.layer + 1;
      throw new CodecError(
        'incomplete',
        `truncated push: layer ${next} '${layers[next].name}' and later never arrived`,
      );
    }
    return this.bytes;
  }

  private completeLayer(): void {
    const l = this.layer;
    const slot = this.authority.layout.layers[l];
    try {
      const bytes = this.assembler.complete();
      validateAndDecodeLayer(
        this.plan.layers[l],
        slot.shape,
        bytes,
        this.dst.subarray(slot.offset, slot.offset + slot.size),
        this.authority.sharedSeed(this.round, l),
        this.authority.workspace,
      );
      this.layerBytes[l] = bytes.length;
      this.bytes += bytes.length;
    } catch (e) {
      throw inLayer(e, l, slot.name);
    }
  }
}

/** A worker's side: error-feedback memories (kept for the whole job) and the bytes of each push. */
/** What a worker's compressor carries from round to round: per layer, e and the PowerSGD warm start. */
export type WorkerCompressorState = { error: Float32Array; powerSgd: PowerSgdState | null }[];

export class WorkerCompressor {
  readonly memories: LayerMemory[];
  private readonly ws = new CodecWorkspace();
  private out = new Uint8Array(0);
  private readonly p: Float32Array;

  constructor(
    readonly spec: SessionSpec,
    readonly layout: ParameterLayout,
    readonly jobSeed: number,
    readonly rank: number,
  ) {
    this.memories = createErrorFeedback(layout);
    this.p = new Float32Array(layout.totalSize);
  }

  /** A copy of the error-feedback memories (e per layer, PowerSGD warm starts), for a checkpoint round. */
  saveState(): WorkerCompressorState {
    return this.memories.map((m) => ({
      error: m.error.slice(),
      powerSgd: m.powerSgd && { rank: m.powerSgd.rank, q: m.powerSgd.q.slice(), rng: m.powerSgd.rng.clone() },
    }));
  }

  /** Put back a saved state; undefined: empty memories, as at the start of a job. */
  restoreState(state: WorkerCompressorState | undefined): void {
    this.memories.forEach((m, l) => {
      const saved = state?.[l];
      if (saved) m.error.set(saved.error);
      else m.error.fill(0);
      m.powerSgd = saved?.powerSgd
        ? { rank: saved.powerSgd.rank, q: saved.powerSgd.q.slice(), rng: saved.powerSgd.rng.clone() }
        : null;
    });
  }

  /**
   * Encode `gradient` under `plan` for `round`, updating the memories. Returns one view per layer into an
   * internal buffer (valid until the next call).
   */
  encode(plan: CompressionPlan, round: number, gradient: Float32Array): Uint8Array[] {
    checkPlan(plan, this.layout);
    const total = planBytes(plan, this.layout).total.max;
    if (this.out.length < total) this.out = new Uint8Array(total);
    const views: Uint8Array[] = [];
    let at = 0;
    this.layout.layers.forEach((slot, l) => {
      const setting = plan.layers[l];
      const max = layerByteBounds(setting, slot.shape).max;
      let n: number;
      try {
        n = encodeLayer(
          setting,
          slot.shape,
          gradient.subarray(slot.offset, slot.offset + slot.size),
          this.memories[l],
          this.out.subarray(at, at + max),
          {
            sharedSeed: randkSeed(this.jobSeed, round, l),
            privateSeed: deriveSeed(this.jobSeed, 0x9517, this.rank, round, l),
          },
          this.ws,
        );
      } catch (e) {
        throw inLayer(e, l, slot.name);
      }
      views.push(this.out.subarray(at, at + n));
      at += n;
    });
    return views;
  }

  /**
   * This round's error table (the memories are not changed): under the step model on p = g + e (before
   * encoding), under the feedback model on the gradient g alone.
   */
  errorTable(round: number, gradient: Float32Array): Float64Array {
    const model = this.spec.kind === 'lgreco' ? this.spec.errorModel : 'step';
    let measured = gradient;
    if (model === 'step') {
      measured = this.p;
      for (const [l, slot] of this.layout.layers.entries()) {
        const e = this.memories[l].error;
        for (let i = 0; i < slot.size; i++) measured[slot.offset + i] = gradient[slot.offset + i] + e[i];
      }
    }
    return measureErrorTable(measured, this.layout, sessionCandidates(this.spec, this.layout), {
      seed: tableSeed(this.jobSeed, round),
      model,
    });
  }
}

/** What one round's accepted pushes sent under `record`'s plan (the round report's compression part). */
export function roundCompression(
  record: PlanRecord,
  pushLayerBytes: readonly (readonly number[])[],
  layout: ParameterLayout,
  next: PlanRecord | null,
): {
  planId: string;
  settings: string[];
  layerBytes: number[];
  bytes: number;
  pushes: number;
  ratio: number;
  budgetUsed: number;
  nextPlanId: string;
} {
  const layerBytes = layout.layers.map(() => 0);
  for (const push of pushLayerBytes) push.forEach((b, l) => (layerBytes[l] += b));
  const bytes = layerBytes.reduce((a, b) => a + b, 0);
  const dense = 4 * layout.totalSize * pushLayerBytes.length;
  return {
    planId: record.planId,
    settings: record.settings,
    layerBytes,
    bytes,
    pushes: pushLayerBytes.length,
    ratio: bytes > 0 ? dense / bytes : NaN,
    budgetUsed: record.budgetUsed,
    nextPlanId: next?.planId ?? '',
  };
}
