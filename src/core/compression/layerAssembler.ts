/**
 * Incremental reception of one compressed layer whose bytes span several chunks: chunks are appended, in order,
 * into a caller-preallocated buffer, never beyond the plan's maximal size for the layer; when the last chunk has
 * arrived, `complete()` returns exactly the layer's bytes for validateAndDecodeLayer. A chunk that does not start
 * where the previous one ended, or that would exceed the planned size, is rejected on arrival — the coordinator
 * never buffers more than the plan allows, whatever a message claims.
 */
import { CodecError } from './codecError.ts';
import type { ByteBounds } from './compressionPlan.ts';

export class LayerAssembler {
  private readonly buffer: Uint8Array;
  private bounds: ByteBounds = { min: 0, max: 0 };
  private received = 0;
  private label = '';

  /** `buffer` must hold the largest layer of the plan (planBytes(...).perLayer max). */
  constructor(buffer: Uint8Array) {
    this.buffer = buffer;
  }

  /** Start a layer with the plan's byte bounds. */
  begin(bounds: ByteBounds, label = 'layer'): void {
    if (bounds.max > this.buffer.length) {
      throw new RangeError(
        `assembler: buffer of ${this.buffer.length} bytes < planned ${bounds.max} (${label})`,
      );
    }
    this.bounds = bounds;
    this.received = 0;
    this.label = label;
  }

  /** Append a chunk that starts at byte `offset` of the layer. */
  push(offset: number, data: Uint8Array): void {
    if (offset !== this.received) {
      throw new CodecError(
        'chunk-out-of-order',
        `${this.label}: chunk at byte ${offset}, expected ${this.received}`,
      );
    }
    if (data.length > this.bounds.max - this.received) {
      throw new CodecError(
        'too-large',
        `${this.label}: ${this.received + data.length} bytes, the plan allows at most ${this.bounds.max}`,
      );
    }
    this.buffer.set(data, this.received);
    this.received += data.length;
  }

  get size(): number {
    return this.received;
  }

  /** The layer's bytes (a view of the buffer); throws if fewer than the plan's minimum arrived. */
  complete(): Uint8Array {
    if (this.received < this.bounds.min) {
      throw new CodecError(
        'incomplete',
        `${this.label}: ${this.received} bytes received, the plan implies at least ${this.bounds.min}`,
      );
    }
    return this.buffer.subarray(0, this.received);
  }
}
