/**
 * Compression in `phalanx simulate`, the way the distributed path does it: every simulated worker encodes its
 * vector with its own error-feedback memory (WorkerCompressor), the bytes cross to the coordinator's side in
 * chunks of at most CHUNK_BYTES and are validated and decoded there (PlanAuthority / PushDecoder), and the robust
 * rule gets the decoded vectors. Error tables are measured and the plan re-made exactly as on the coordinator.
 */
import type { JobSpec } from '../config/jobSpec.ts';
import {
  PlanAuthority,
  roundCompression,
  sessionSpec,
  WorkerCompressor,
  type PlanRecord,
} from '../core/compression/compressionSession.ts';
import { CodecError } from '../core/compression/codecError.ts';
import type { ParameterLayout } from '../core/layout/parameterLayout.ts';
import type { RoundCompression } from '../coordinator/roundReport.ts';
import { CHUNK_BYTES } from '../transport/protocol.ts';

export class SimulatedWire {
  readonly authority: PlanAuthority;
  private readonly workers = new Map<number, { compressor: WorkerCompressor; decoded: Float32Array }>();
  private readonly buffer: Uint8Array;
  private tables: Float64Array[] = [];
  private pushes: number[][] = [];

  /** null under compression.kind none. */
  static create(spec: JobSpec, layout: ParameterLayout): SimulatedWire | null {
    const s = sessionSpec(spec.compression);
    return s ? new SimulatedWire(new PlanAuthority(s, layout, spec.seed), layout, spec.seed) : null;
  }

  private constructor(
    authority: PlanAuthority,
    private readonly layout: ParameterLayout,
    private readonly jobSeed: number,
  ) {
    this.authority = authority;
    this.buffer = new Uint8Array(authority.maxLayerBytes);
  }

  /**
   * Rank `rank`'s push of `vector` in `round`: what the coordinator decodes (a per-rank buffer), or the reason it
   * is refused (a vector the codecs cannot encode, e.g. a Byzantine NaN: the coordinator rejects that push).
   */
  transmit(rank: number, round: number, vector: Float32Array): Float32Array | string {
    let w = this.workers.get(rank);
    if (!w) {
      w = {
        compressor: new WorkerCompressor(this.authority.spec, this.layout, this.jobSeed, rank),
        decoded: new Float32Array(this.layout.totalSize),
      };
      this.workers.set(rank, w);
    }
    // A worker process sends a vector of another length as a header alone, which the coordinator refuses.
    if (vector.length !== this.layout.totalSize) {
      return `incomplete: truncated push: the vector has ${vector.length} elements, the layout ${this.layout.totalSize}`;
    }
    try {
      const table = this.authority.tableDue(round) ? w.compressor.errorTable(round, vector) : undefined;
      const views = w.compressor.encode(this.authority.plan, round, vector);
      const decoder = this.authority.decoder(round, w.decoded, this.buffer);
      views.forEach((bytes, layer) => {
        for (let off = 0; off < bytes.length; off += CHUNK_BYTES)
          decoder.chunk(layer, off, bytes.subarray(off, Math.min(bytes.length, off + CHUNK_BYTES)));
      });
      decoder.finish();
      if (table) this.tables.push(table);
      this.pushes.push(decoder.layerBytes.slice());
      return w.decoded;
    } catch (e) {
      if (e instanceof CodecError) return `${e.code}: ${e.message}`;
      throw e;
    }
  }

  /** The round closed: re-plan if due; returns the round's compression report. */
  closeRound(round: number): RoundCompression {
    const record: PlanRecord = this.authority.current;
    const next = this.authority.closeRound(round, this.tables);
    const report = roundCompression(record, this.pushes, this.layout, next);
    this.tables = [];
    this.pushes = [];
    return report;
  }
}
