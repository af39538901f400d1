/**
 * Mixture-of-experts transformers, the pure part: the MoE MLP's tensors, validity of a `moe` section, total and
 * active parameter counts, and the width of the dense MLP with the same active parameters. No tfjs.
 *
 * A block's MoE MLP stores a router [d, E] (no bias) and E experts, each a dense MLP of width f = ffn:
 * fc [d, f] + [f], proj [f, d] + [d]. A token runs the router and k experts, so per block
 *   total  = d·E + E·(2df + f + d),   active = d·E + k·(2df + f + d),
 * against 2df + f + d for a dense MLP of width f.
 */
import type { ParameterGroup } from '../core/aggregation/perGroup.ts';
import type { LayerSlot, LayerSpec } from '../core/layout/parameterLayout.ts';
import type { MoeSpec, TransformerSpec } from './types.ts';

type Shape = Pick<TransformerSpec, 'dModel' | 'ffn'>;

/** The tensors of one block's MoE MLP, names relative to the block: the router, then each expert's four. */
export function moeMlpTensors({ dModel: d, ffn: f }: Shape, moe: Pick<MoeSpec, 'experts'>): LayerSpec[] {
  const out: LayerSpec[] = [{ name: 'mlp.router.weight', shape: [d, moe.experts] }];
  for (let e = 0; e < moe.experts; e++) {
    out.push(
      { name: `mlp.experts.${e}.fc.weight`, shape: [d, f] },
      { name: `mlp.experts.${e}.fc.bias`, shape: [f] },
      { name: `mlp.experts.${e}.proj.weight`, shape: [f, d] },
      { name: `mlp.experts.${e}.proj.bias`, shape: [d] },
    );
  }
  return out;
}

/** Problems with a moe section, one message each, naming the field as `moe.<field> …`. */
export function moeProblems(moe: MoeSpec): string[] {
  const problems: string[] = [];
  if (!Number.isInteger(moe.experts) || moe.experts < 2) {
    problems.push(`moe.experts must be an integer ≥ 2, got ${moe.experts}`);
  }
  if (!Number.isInteger(moe.topK) || moe.topK < 1 || moe.topK > moe.experts) {
    problems.push(`moe.topK must be an integer from 1 to experts (${moe.experts}), got ${moe.topK}`);
  }
  if (moe.capacity !== undefined && !(moe.capacity > 0 && Number.isFinite(moe.capacity))) {
    problems.push(`moe.capacity must be a positive number, got ${moe.capacity}`);
  }
  if (!(moe.auxLossWeight >= 0 && Number.isFinite(moe.auxLossWeight))) {
    problems.push(`moe.auxLossWeight must be a non-negative number, got ${moe.auxLossWeight}`);
  }
  if (moe.init !== undefined && !['scratch', 'upcycle', 'split'].includes(moe.init)) {
    problems.push(`moe.init must be 'scratch', 'upcycle' or 'split', got '${String(moe.init)}'`);
  }
  return problems;
}

/** Parameters of one dense MLP of width f on width d: 2df + f + d. */
function denseMlpParameters(d: number, f: number): number {
  return 2 * d * f + f + d;
}

/** Everything of a block but its MLP: attention 4d² + 4d, two LayerNorms 4d. */
function blockBaseParameters(d: number): number {
  return 4 * d * d + 8 * d;
}

type CountSpec = Omit<TransformerSpec, 'kind' | 'recursion'>;

function outsideBlocks(spec: CountSpec): number {
  const d = spec.dModel;
  return spec.vocab.length * d + spec.context * d + 2 * d;
}

/** Parameters stored by a transformer with a moe section: V·d + C·d + 2d + L·(4d² + 8d + d·E + E·(2df + f + d)). */
export function moeParameterCount(spec: CountSpec & { moe: MoeSpec }): number {
  const { dModel: d, ffn: f, moe } = spec;
  const perBlock = blockBaseParameters(d) + d * moe.experts + moe.experts * denseMlpParameters(d, f);
  return outsideBlocks(spec) + spec.layers * perBlock;
}

/**
 * Parameters a token uses: those of the model without its unchosen experts, V·d + C·d + 2d + L·(4d² + 8d + d·E
 * + k·(2df + f + d)). For a dense transformer (no moe section) every parameter is active.
 */
export function activeParameterCount(spec: CountSpec): number {
  const { dModel: d, ffn: f, moe } = spec;
  const mlp =
    moe === undefined ? denseMlpParameters(d, f) : d * moe.experts + moe.topK * denseMlpParameters(d, f);
  return outsideBlocks(spec) + spec.layers * (blockBaseParameters(d) + mlp);
}

/**
 * The dense transformer with (as nearly as an integer width allows) the active parameters of an MoE one: the
 * same spec without `moe`, its MLP width f' solving 2df' + f' + d = d·E + k·(2df + f + d), rounded to the nearest
 * integer (the active counts then differ by at most (2d + 1)/2 per block).
 */
export function denseEquivalent<S extends TransformerSpec>(spec: S & { moe: MoeSpec }): Omit<S, 'moe'> {
  const { moe, ...dense } = spec;
  const d = spec.dModel;
  const target = d * moe.experts + moe.topK * denseMlpParameters(d, spec.ffn);
  return { ...dense, ffn: Math.max(1, Math.round((target - d) / (2 * d + 1))) };
}

/** ' moe top<k>-of-<E>' for model descriptions, '' without moe. */
export function moeLabel(moe: MoeSpec | undefined): string {
  return moe === undefined ? '' : ` moe top${moe.topK}-of-${moe.experts}`;
}

/** One parameter group per expert of each block (its fc and proj tensors), for per-expert aggregation. */
export function moeExpertGroups(slots: readonly LayerSlot[]): ParameterGroup[] {
  const groups = new Map<string, { offset: number; size: number }[]>();
  for (const { name, offset, size } of slots) {
    const m = /^(blocks\.\d+\.mlp\.experts\.\d+)\./.exec(name);
    if (m) groups.set(m[1], [...(groups.get(m[1]) ?? []), { offset, size }]);
  }
  return [...groups].map(([name, ranges]) => ({ name, ranges }));
}
