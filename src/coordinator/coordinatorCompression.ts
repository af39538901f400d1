/**
 * A job's compression on the coordinator (compression.kind uniform | lgreco): the PlanAuthority of the pure core,
 * the plan as GetRound sends it, the byte buffers pushes assemble their layers in (one per push in flight, each
 * the size of the largest layer any candidate plan can send), and the round's traffic for its report. The plan
 * and its history go into the job's checkpoints (`saveState`), so a resumed job continues under the same plan.
 */
import type { JobSpec } from '../config/jobSpec.ts';
import {
  PlanAuthority,
  roundCompression,
  sessionSpec,
  type PlanAuthorityState,
} from '../core/compression/compressionSession.ts';
import type { ParameterLayout } from '../core/layout/parameterLayout.ts';
import type { CompressionPlan as WirePlan } from '../gen/phalanx/v1/CompressionPlan.ts';
import { planToWire } from '../transport/planWire.ts';
import type { RoundCompression } from './roundReport.ts';

/** What a compressed push brought besides its decoded vector. */
export interface PushWire {
  layerBytes: number[];
  /** The worker's error table (re-plan rounds only). */
  table?: Float64Array;
}

export class CoordinatorCompression {
  private readonly pool: Uint8Array[] = [];
  private wire: WirePlan | undefined;

  /**
   * undefined under compression.kind none. Without `saved` the job starts from the baseline plan; with the JSON
   * of a checkpoint's `saveState()` it continues under that plan (throws if it does not fit this spec and model).
   */
  static create(
    spec: JobSpec,
    layout: ParameterLayout,
    startRound: number,
    saved?: string,
  ): CoordinatorCompression | undefined {
    const s = sessionSpec(spec.compression);
    if (!s) return undefined;
    const authority = new PlanAuthority(s, layout, spec.seed, startRound);
    if (saved !== undefined) authority.restoreState(JSON.parse(saved) as PlanAuthorityState);
    return new CoordinatorCompression(authority, spec.workers.max);
  }

  /** The plan and its history as JSON text, for the job's checkpoint. */
  saveState(): string {
    return JSON.stringify(this.authority.saveState());
  }

  private constructor(
    readonly authority: PlanAuthority,
    private readonly workers: number,
  ) {}

  /** The current plan as GetRound carries it. */
  wirePlan(): WirePlan {
    if (this.wire?.planId !== this.authority.plan.planId) this.wire = planToWire(this.authority.plan);
    return this.wire;
  }

  acquireAssembly(): Uint8Array {
    return this.pool.pop() ?? new Uint8Array(this.authority.maxLayerBytes);
  }

  releaseAssembly(buffer: Uint8Array): void {
    if (this.pool.length < this.workers * 2 + 4) this.pool.push(buffer);
  }

  /**
   * Round `round` closed with these accepted pushes: its traffic report, and — on a re-plan round — the next plan
   * from the median of their error tables (call before the next round opens).
   */
  closeRound(round: number, pushes: readonly (PushWire | undefined)[]): RoundCompression {
    const record = this.authority.current;
    const tables: Float64Array[] = [];
    const bytes: number[][] = [];
    for (const p of pushes) {
      if (!p) continue;
      bytes.push(p.layerBytes);
      if (p.table) tables.push(p.table);
    }
    const next = this.authority.closeRound(round, tables);
    return roundCompression(record, bytes, this.authority.layout, next);
  }
}
