/**
 * Worker-side error feedback, one memory per layer: p = g + e is what gets compressed, and after encoding
 * e ← p − decode(sent bytes). The memory is computed from the worker's own transmitted bytes (never from the
 * aggregate, which under a robust rule is not a mean), so Σ_t decoded_t + e_T = Σ_t g_t exactly in real
 * arithmetic: nothing a worker computed is lost, only delayed. Memories are sized by the layer, not by the
 * setting, so they survive re-plans; PowerSGD's warm-start factor does not survive a rank change.
 */
import type { ParameterLayout } from '../layout/parameterLayout.ts';
import type { PowerSgdState } from './powerSgd.ts';

export class LayerMemory {
  /** e: what earlier rounds computed but did not send. */
  readonly error: Float32Array;
  /** p = g + e of the current round. */
  readonly compensated: Float32Array;
  /** decode(sent bytes) of the current round. */
  readonly decoded: Float32Array;
  /** PowerSGD warm start (null until the layer is first sent with powersgd). */
  powerSgd: PowerSgdState | null = null;

  constructor(numel: number) {
    this.error = new Float32Array(numel);
    this.compensated = new Float32Array(numel);
    this.decoded = new Float32Array(numel);
  }

  /** p ← g + e. */
  compensate(gradient: Float32Array): Float32Array {
    const p = this.compensated;
    const e = this.error;
    for (let i = 0; i < p.length; i++) p[i] = gradient[i] + e[i];
    return p;
  }

  /** e ← p − decoded. */
  absorbResidual(): void {
    const p = this.compensated;
    const d = this.decoded;
    const e = this.error;
    for (let i = 0; i < e.length; i++) e[i] = p[i] - d[i];
  }

  reset(): void {
    this.error.fill(0);
    this.powerSgd = null;
  }
}

/** One LayerMemory per layer of a layout. */
export function createErrorFeedback(layout: ParameterLayout): LayerMemory[] {
  return layout.layers.map((slot) => new LayerMemory(slot.size));
}
