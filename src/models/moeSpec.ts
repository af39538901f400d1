/**
 * Mixture-of-experts transformers, the pure part: the MoE MLP's tensors, validity of a `moe` section, total and
 * active parameter counts, and the width of the dense MLP with the same active parameters. No tfjs.
 *
 * A block's MoE MLP stores its router's tensors and E experts, each a dense MLP of width f = ffn:
 * fc [d, f] + [f], proj [f, d] + [d]. The router per block is R = d·E (linear: W_r [d, E], no bias) or, with
 * router rmoe and GRU width p, R = d·p + p·E (in [d, p], out [p, E]) plus one GRU cell shared by all blocks,
 * G = 2·3p² + 2·3p (rmoeRouter.ts). A token runs the router and k experts, so
 *   total  = L·(R + E·(2df + f + d)) + G,   active = L·(R + k·(2df + f + d)) + G,
 * against L·(2df + f + d) for dense MLPs of width f.
 */
import type { ParameterGroup } from '../core/aggregation/perGroup.ts';
import type { LayerSlot, LayerSpec } from '../core/layout/parameterLayout.ts';
import type { MoeSpec, TransformerSpec } from './types.ts';

/** p of an rmoe router when moe.routerHidden is absent: half the width of a d = 64 student. */
export const DEFAULT_ROUTER_HIDDEN = 32;

type Shape = Pick<TransformerSpec, 'dModel' | 'ffn'>;

/** p, the rmoe router's GRU width, or undefined for a linear router. */
export function routerHidden(moe: Pick<MoeSpec, 'router' | 'routerHidden'>): number | undefined {
  return moe.router === 'rmoe' ? (moe.routerHidden ?? DEFAULT_ROUTER_HIDDEN) : undefined;
}

/** The router's tensors in one block, names relative to the block: 1 (linear) or 2 (rmoe: in, out). */
function routerTensors(d: number, moe: Pick<MoeSpec, 'experts' | 'router' | 'routerHidden'>): LayerSpec[] {
  const p = routerHidden(moe);
  if (p === undefined) return [{ name: 'mlp.router.weight', shape: [d, moe.experts] }];
  return [
    { name: 'mlp.router.in.weight', shape: [d, p] },
    { name: 'mlp.router.out.weight', shape: [p, moe.experts] },
  ];
}

/** The tensors of one block's MoE MLP, names relative to the block: the router's, then each expert's four. */
export function moeMlpTensors(
  { dModel: d, ffn: f }: Shape,
  moe: Pick<MoeSpec, 'experts' | 'router' | 'routerHidden'>,
): LayerSpec[] {
  const out = routerTensors(d, moe);
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

/**
 * The rmoe router's GRU cell, shared by all blocks and stored after them (top-level names): input and hidden
 * weights [p, 3p] and biases [3p], each with the gates side by side in the order r, z, n (columns [0, p) r,
 * [p, 2p) z, [2p, 3p) n). Empty for a linear router.
 */
export function routerGruTensors(moe: Pick<MoeSpec, 'router' | 'routerHidden'>): LayerSpec[] {
  const p = routerHidden(moe);
  if (p === undefined) return [];
  return [
    { name: 'router.gru.ih.weight', shape: [p, 3 * p] },
    { name: 'router.gru.ih.bias', shape: [3 * p] },
    { name: 'router.gru.hh.weight', shape: [p, 3 * p] },
    { name: 'router.gru.hh.bias', shape: [3 * p] },
  ];
}

/** A router tensor (any block's, or the shared GRU's): it has no dense-teacher counterpart. */
export function isRouterTensor(name: string): boolean {
  return /^(blocks\.\d+\.mlp\.router\.|router\.)/.test(name);
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
  if (moe.router !== undefined && !['linear', 'rmoe'].includes(moe.router)) {
    problems.push(`moe.router must be 'linear' or 'rmoe', got '${String(moe.router)}'`);
  }
  if (moe.routerHidden !== undefined) {
    if (moe.router !== 'rmoe') {
      problems.push(
        "moe.routerHidden is the width of the rmoe router's GRU: set moe.router: 'rmoe' or remove routerHidden",
      );
    } else if (!Number.isInteger(moe.routerHidden) || moe.routerHidden < 1) {
      problems.push(`moe.routerHidden must be a positive integer, got ${moe.routerHidden}`);
    }
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

/** R above: the router parameters of one block, d·E (linear) or d·p + p·E (rmoe). */
function routerBlockParameters(d: number, moe: MoeSpec): number {
  const p = routerHidden(moe);
  return p === undefined ? d * moe.experts : d * p + p * moe.experts;
}

/** G above: the rmoe router's shared GRU cell, 2·3p² + 2·3p (0 for a linear router). */
function routerSharedParameters(moe: MoeSpec): number {
  const p = routerHidden(moe);
  return p === undefined ? 0 : 6 * p * p + 6 * p;
}

/** Parameters stored by a transformer with a moe section: V·d + C·d + 2d + L·(4d² + 8d + R + E·(2df + f + d)) + G. */
export function moeParameterCount(spec: CountSpec & { moe: MoeSpec }): number {
  const { dModel: d, ffn: f, moe } = spec;
  const perBlock =
    blockBaseParameters(d) + routerBlockParameters(d, moe) + moe.experts * denseMlpParameters(d, f);
  return outsideBlocks(spec) + spec.layers * perBlock + routerSharedParameters(moe);
}

/**
 * Parameters a token uses: those of the model without its unchosen experts, V·d + C·d + 2d + L·(4d² + 8d + R
 * + k·(2df + f + d)) + G (every token runs the whole router). For a dense transformer every parameter is active.
 */
export function activeParameterCount(spec: CountSpec): number {
  const { dModel: d, ffn: f, moe } = spec;
  if (moe === undefined)
    return outsideBlocks(spec) + spec.layers * (blockBaseParameters(d) + denseMlpParameters(d, f));
  const mlp = routerBlockParameters(d, moe) + moe.topK * denseMlpParameters(d, f);
  return outsideBlocks(spec) + spec.layers * (blockBaseParameters(d) + mlp) + routerSharedParameters(moe);
}

/**
 * The dense transformer with (as nearly as an integer width allows) the active parameters of an MoE one: the
 * same spec without `moe`, its MLP width f' solving L·(2df' + f' + d) = L·(R + k·(2df + f + d)) + G, rounded to
 * the nearest integer (the active counts then differ by at most (2d + 1)/2 per block).
 */
export function denseEquivalent<S extends TransformerSpec>(spec: S & { moe: MoeSpec }): Omit<S, 'moe'> {
  const { moe, ...dense } = spec;
  const d = spec.dModel;
  const target =
    routerBlockParameters(d, moe) +
    moe.topK * denseMlpParameters(d, spec.ffn) +
    routerSharedParameters(moe) / spec.layers;
  return { ...dense, ffn: Math.max(1, Math.round((target - d) / (2 * d + 1))) };
}

/** ' moe top<k>-of-<E>' (' rmoe<p>' appended with an rmoe router) for model descriptions, '' without moe. */
export function moeLabel(moe: MoeSpec | undefined): string {
  if (moe === undefined) return '';
  const p = routerHidden(moe);
  return ` moe top${moe.topK}-of-${moe.experts}${p === undefined ? '' : ` rmoe${p}`}`;
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
