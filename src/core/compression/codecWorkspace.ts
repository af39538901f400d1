/**
 * Scratch buffers for the codecs, grown on demand and reused across layers and rounds. Every size requested is
 * a function of a plan setting and a layer shape — never of a received message — so a hostile message cannot
 * make the coordinator allocate; sizing a workspace from the plan up front (reserveForPlan) removes allocation
 * from the hot path entirely.
 */
import type { ParameterLayout } from '../layout/parameterLayout.ts';
import { matrixShape, type CompressionPlan } from './compressionPlan.ts';

export class CodecWorkspace {
  private f32 = new Float32Array(0);
  private u32 = new Uint32Array(0);
  private bits = new Uint32Array(0);
  private p64 = new Float64Array(0);
  private q0 = new Float64Array(0);
  private q64 = new Float64Array(0);
  /** Random-K coordinates of the last (seed, numel, k), reused by every worker's message of that layer. */
  private randk = { seed: -1, numel: -1, k: -1 };

  /** Float32 scratch of at least n elements (topk magnitudes, powersgd factors). */
  floats(n: number): Float32Array {
    if (this.f32.length < n) this.f32 = new Float32Array(n);
    return this.f32;
  }

  /** Uint32 scratch of at least n elements (topk indices). */
  indices(n: number): Uint32Array {
    if (this.u32.length < n) this.u32 = new Uint32Array(n);
    this.randk.seed = -1;
    return this.u32;
  }

  /** A zeroed bitset of at least n bits (randk sampling leaves it zeroed). */
  bitset(n: number): Uint32Array {
    const words = (n + 31) >>> 5;
    if (this.bits.length < words) this.bits = new Uint32Array(words);
    return this.bits;
  }

  /** Float64 scratch for PowerSGD encoding: P, Q' and a copy of Q'. */
  powerSgd(pSize: number, qSize: number): { p: Float64Array; q: Float64Array; q0: Float64Array } {
    if (this.p64.length < pSize) this.p64 = new Float64Array(pSize);
    if (this.q64.length < qSize) this.q64 = new Float64Array(qSize);
    if (this.q0.length < qSize) this.q0 = new Float64Array(qSize);
    return { p: this.p64, q: this.q64, q0: this.q0 };
  }

  /** The randk coordinates for (seed, numel, k), computing them with `fill` unless they are the last ones. */
  randkIndices(seed: number, numel: number, k: number, fill: (out: Uint32Array) => void): Uint32Array {
    if (this.u32.length < k) this.u32 = new Uint32Array(k);
    const c = this.randk;
    if (c.seed !== seed || c.numel !== numel || c.k !== k) {
      fill(this.u32);
      c.seed = seed;
      c.numel = numel;
      c.k = k;
    }
    return this.u32;
  }

  /** Grow every buffer to what decoding any layer of `plan` needs. */
  reserveForPlan(plan: CompressionPlan, layout: ParameterLayout): void {
    plan.layers.forEach((s, i) => {
      const slot = layout.layers[i];
      if (s.kind === 'topk' || s.kind === 'randk') {
        this.indices(s.k);
        if (s.kind === 'randk') this.bitset(slot.size);
      } else if (s.kind === 'powersgd') {
        const m = matrixShape(slot.shape);
        if (m !== null) this.floats(s.rank * (m.rows + m.cols));
      }
    });
  }
}
