/**
 * A decoder-only character transformer (GPT-2 shape): token + learned position embeddings, `layers` pre-LN
 * blocks  h ← h + Attn(LN₁ h);  h ← h + MLP(LN₂ h),  a final LayerNorm, and logits = LN(h) · Eᵀ with the
 * input embedding E reused as the output projection (tied: one tensor, its gradient is the sum of both uses).
 *
 * Attention is multi-head causal self-attention: per head, softmax(q kᵀ / √d_head + M) v with M[i][j] = −1e9
 * for j > i (a constant built outside the gradient tape), so position i only sees positions ≤ i.
 * MLP: GELU (exact, 0.5·x·(1 + erf(x/√2))) between two dense layers.
 *
 * Written for the tfjs wasm backend: the embedding lookup is oneHot(ids) · E (the gradient of tf.gather needs
 * UnsortedSegmentSum, which wasm lacks) and every matMul goes through ModelOps, whose gradients use explicit
 * transposes (transpose flags are ~10× slower on wasm).
 *
 * Layout (dense weights [in, out]): embed.weight [V, d], pos.weight [context, d]; per block b:
 * blocks.b.ln1.{gain,bias} [d], blocks.b.attn.qkv.{weight [d, 3d], bias [3d]} (q, k, v side by side, heads
 * contiguous within each), blocks.b.attn.proj.{weight [d, d], bias [d]}, blocks.b.ln2.{gain,bias} [d],
 * blocks.b.mlp.fc.{weight [d, ffn], bias [ffn]}, blocks.b.mlp.proj.{weight [ffn, d], bias [d]};
 * then lnf.{gain,bias} [d]. No output bias.
 *
 * With a `moe` section each block's MLP is a mixture of experts (moe.ts): the four mlp tensors are replaced by
 * blocks.b.mlp.router.weight [d, E] and blocks.b.mlp.experts.e.{fc.weight [d, ffn], fc.bias [ffn],
 * proj.weight [ffn, d], proj.bias [d]} for e < E. With moe.router rmoe (rmoeRouter.ts) the router weight is
 * replaced by blocks.b.mlp.router.{in.weight [d, p], out.weight [p, E]}, and the GRU cell shared by all blocks
 * follows lnf: router.gru.{ih.weight [p, 3p], ih.bias [3p], hh.weight [p, 3p], hh.bias [3p]} (gates r, z, n).
 */
import { buildLayout, layerView, type LayerSpec } from '../core/layout/parameterLayout.ts';
import { deriveSeed, Rng } from '../core/random.ts';
import type { Model, ModelOutput } from './model.ts';
import { moeMlp, routedExperts } from './moe.ts';
import { moeMlpTensors, routerGruTensors, routerHidden } from './moeSpec.ts';
import type { ModelOps } from './ops.ts';
import { rmoeRouter, type RouterGru, type RouterStep } from './rmoeRouter.ts';
import { tf } from './tf.ts';
import { blockTensors } from './recursion.ts';
import { transformerSpecProblems } from './transformerSpec.ts';
import type { TransformerSpec } from './types.ts';

const INIT_STREAM = 0x7f0e;
const LN_EPS = 1e-5;
const MASKED = -1e9;

function layerSpecs(spec: TransformerSpec): LayerSpec[] {
  const { dModel: d } = spec;
  const layers: LayerSpec[] = [
    { name: 'embed.weight', shape: [spec.vocab.length, d] },
    { name: 'pos.weight', shape: [spec.context, d] },
  ];
  const block = blockTensors(spec);
  const perBlock = spec.moe === undefined ? block : [...block.slice(0, 8), ...moeMlpTensors(spec, spec.moe)];
  for (let b = 0; b < spec.layers; b++) {
    for (const t of perBlock) layers.push({ name: `blocks.${b}.${t.name}`, shape: t.shape });
  }
  layers.push({ name: 'lnf.gain', shape: [d] }, { name: 'lnf.bias', shape: [d] });
  if (spec.moe !== undefined) layers.push(...routerGruTensors(spec.moe));
  return layers;
}

/** Exact GELU: 0.5·x·(1 + erf(x/√2)). */
export function gelu<T extends tf.Tensor>(x: T): T {
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
}

/** Causal additive mask [T, T]: 0 on and below the diagonal, −1e9 above. */
export function causalMask(t: number): Float32Array {
  const m = new Float32Array(t * t);
  for (let i = 0; i < t; i++) for (let j = i + 1; j < t; j++) m[i * t + j] = MASKED;
  return m;
}

/**
 * Tensors of one block in layout order (blockTensors): ln1 gain, bias, qkv W, b, proj W, b, ln2 gain, bias, then
 * the MLP: fc W, b, proj W, b, or with moe the router and the experts' tensors (moeMlpTensors).
 */
export type BlockTensors = readonly tf.Tensor[];

/** What a forward pass needs besides the blocks. */
export interface TransformerWeights {
  embed: tf.Tensor2D;
  pos: tf.Tensor2D;
  /** The block each layer runs, in depth order (a recursive student repeats blocks here). */
  layers: readonly BlockTensors[];
  lnfGain: tf.Tensor;
  lnfBias: tf.Tensor;
  /** The rmoe router's shared GRU cell (routerGruTensors); absent for a linear router or a dense model. */
  routerGru?: RouterGru;
}

/**
 * Sees each sub-layer's input X and output f(LN X) (both [N·T, d]) during a forward pass; the residual stream
 * continues with X + f(LN X). Used by the teacher report's layer-importance scores.
 */
export type SublayerProbe = (
  layer: number,
  sublayer: 'attn' | 'mlp',
  x: tf.Tensor2D,
  fx: tf.Tensor2D,
) => void;

/** The embedded input of a forward pass: the residual stream [N·T, d] and what every block needs. */
export interface Embedded {
  hidden: tf.Tensor2D;
  n: number;
  t: number;
  /** causalMask(t) as a tensor. */
  mask: tf.Tensor;
  /** The rmoe router's shared GRU cell (w.routerGru), which every block's router steps. */
  routerGru?: RouterGru;
}

/** What a block may take besides its tensors and the residual stream. */
export interface BlockOptions {
  probe?: SublayerProbe;
  /** The rmoe router's state h_{i−1} [N·T, p] from the block before (absent for the first block: h_0 = 0). */
  routerState?: tf.Tensor2D;
}

/**
 * One block's result: the residual stream after it and, with moe, its load-balancing loss, expert load and
 * router logits [N·T, E], and with an rmoe router its state h_i for the next block.
 */
export interface BlockOutput {
  hidden: tf.Tensor2D;
  aux?: tf.Scalar;
  load?: tf.Tensor1D;
  routerLogits?: tf.Tensor2D;
  routerState?: tf.Tensor2D;
}

/**
 * The pre-LN forward pass of a transformer of this shape over any sequence of blocks (pure tfjs). run() is
 * embed, block for each of w.layers in order, then head; the parts serve students that route between blocks.
 */
export interface TransformerForward {
  input(x: Float32Array, n: number): tf.Tensor2D;
  embed(w: TransformerWeights, ids: tf.Tensor, ops: ModelOps): Embedded;
  block(
    hidden: tf.Tensor2D,
    p: BlockTensors,
    layer: number,
    at: Embedded,
    ops: ModelOps,
    options?: BlockOptions,
  ): BlockOutput;
  /** Final LayerNorm and the tied output projection: logits [N·T, V]. */
  head(w: TransformerWeights, hidden: tf.Tensor2D, ops: ModelOps): tf.Tensor2D;
  logits(w: TransformerWeights, ids: tf.Tensor, ops: ModelOps, probe?: SublayerProbe): tf.Tensor2D;
  /** The logits and, with moe, the weighted mean load-balancing loss and the expert load per block. */
  run(w: TransformerWeights, ids: tf.Tensor, ops: ModelOps, probe?: SublayerProbe): ModelOutput;
}

/** Tensors per block in the layout: 12, or 8 + 1 + 4E with moe (8 + 2 + 4E with an rmoe router). */
export function tensorsPerBlock(spec: TransformerSpec): number {
  if (spec.moe === undefined) return 12;
  return (routerHidden(spec.moe) === undefined ? 9 : 10) + 4 * spec.moe.experts;
}

export function transformerForward(spec: TransformerSpec): TransformerForward {
  const { dModel: d, heads: h } = spec;
  const v = spec.vocab.length;
  const dHead = d / h;
  const masks = new Map<number, Float32Array>();

  function input(x: Float32Array, n: number): tf.Tensor2D {
    const t = x.length / n;
    if (!Number.isInteger(t) || t <= 0)
      throw new Error(`transformer: ${x.length} ids are not ${n} sequences`);
    if (t > spec.context)
      throw new Error(`transformer: sequences of ${t} exceed the context ${spec.context}`);
    const ids = new Int32Array(n * t);
    for (let i = 0; i < ids.length; i++) {
      const id = x[i];
      if (!(Number.isInteger(id) && id >= 0 && id < v)) {
        throw new Error(`transformer: token id ${id} at ${i} is outside the vocabulary (size ${v})`);
      }
      ids[i] = id;
    }
    return tf.tensor2d(ids, [n, t], 'int32');
  }

  function layerNorm(x: tf.Tensor2D, gain: tf.Tensor, bias: tf.Tensor): tf.Tensor2D {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, LN_EPS))), gain), bias);
  }

  /** [N·T, d] → [N·H, T, d_head]. */
  function splitHeads(x: tf.Tensor2D, n: number, t: number): tf.Tensor3D {
    return tf.reshape(tf.transpose(tf.reshape(x, [n, t, h, dHead]), [0, 2, 1, 3]), [n * h, t, dHead]);
  }

  function attention(
    x: tf.Tensor2D,
    p: readonly tf.Tensor[],
    n: number,
    t: number,
    ops: ModelOps,
    mask: tf.Tensor,
  ) {
    const [wQkv, bQkv, wProj, bProj] = p;
    const qkv = tf.add(ops.matMul(x, wQkv as tf.Tensor2D, false), bQkv);
    const [q, k, val] = tf.split(qkv, 3, 1) as tf.Tensor2D[];
    const qh = splitHeads(q, n, t);
    const kT = tf.transpose(splitHeads(k, n, t), [0, 2, 1]);
    const scores = tf.add(tf.mul(ops.batchMatMul(qh, kT), 1 / Math.sqrt(dHead)), mask);
    const out = ops.batchMatMul(tf.softmax(scores) as tf.Tensor3D, splitHeads(val, n, t)); // [N·H, T, d_head]
    const merged = tf.reshape(tf.transpose(tf.reshape(out, [n, h, t, dHead]), [0, 2, 1, 3]), [n * t, d]);
    return tf.add(ops.matMul(merged as tf.Tensor2D, wProj as tf.Tensor2D, false), bProj) as tf.Tensor2D;
  }

  function embed(w: TransformerWeights, ids: tf.Tensor, ops: ModelOps): Embedded {
    const [n, t] = ids.shape as [number, number];
    const pos = tf.slice(w.pos, [0, 0], [t, d]);
    const oneHot = tf.oneHot(tf.reshape(ids, [n * t]) as tf.Tensor1D, v) as tf.Tensor2D;
    const hidden = tf.reshape(tf.add(tf.reshape(ops.matMul(oneHot, w.embed, true), [n, t, d]), pos), [
      n * t,
      d,
    ]) as tf.Tensor2D;
    let maskValues = masks.get(t);
    if (maskValues === undefined) masks.set(t, (maskValues = causalMask(t)));
    return { hidden, n, t, mask: tf.tensor2d(maskValues, [t, t]), routerGru: w.routerGru };
  }

  function block(
    hidden: tf.Tensor2D,
    p: BlockTensors,
    layer: number,
    at: Embedded,
    ops: ModelOps,
    { probe, routerState }: BlockOptions = {},
  ): BlockOutput {
    const attn = attention(layerNorm(hidden, p[0], p[1]), p.slice(2, 6), at.n, at.t, ops, at.mask);
    probe?.(layer, 'attn', hidden, attn);
    const mid = tf.add(hidden, attn) as tf.Tensor2D;
    const normed = layerNorm(mid, p[6], p[7]);
    if (spec.moe === undefined) {
      const fc = tf.add(ops.matMul(normed, p[8] as tf.Tensor2D, false), p[9]);
      const mlp = tf.add(
        ops.matMul(gelu(fc as tf.Tensor2D), p[10] as tf.Tensor2D, false),
        p[11],
      ) as tf.Tensor2D;
      probe?.(layer, 'mlp', mid, mlp);
      return { hidden: tf.add(mid, mlp) as tf.Tensor2D };
    }
    let router: RouterStep | undefined;
    if (routerHidden(spec.moe) !== undefined) {
      if (at.routerGru === undefined)
        throw new Error('transformer: an rmoe router needs the shared GRU cell');
      router = rmoeRouter(normed, p[8] as tf.Tensor2D, p[9] as tf.Tensor2D, at.routerGru, routerState, ops);
    }
    const moe = router
      ? routedExperts(normed, router.logits, p.slice(10), spec.moe, ops)
      : moeMlp(normed, p.slice(8), spec.moe, ops);
    probe?.(layer, 'mlp', mid, moe.out);
    return {
      hidden: tf.add(mid, moe.out) as tf.Tensor2D,
      aux: moe.aux,
      load: moe.load,
      routerLogits: moe.logits,
      ...(router ? { routerState: router.state } : {}),
    };
  }

  function head(w: TransformerWeights, hidden: tf.Tensor2D, ops: ModelOps): tf.Tensor2D {
    const final = layerNorm(hidden, w.lnfGain, w.lnfBias);
    return ops.matMul(final, tf.transpose(w.embed), false); // tied output projection: logits [N·T, V]
  }

  function run(w: TransformerWeights, ids: tf.Tensor, ops: ModelOps, probe?: SublayerProbe): ModelOutput {
    const at = embed(w, ids, ops);
    let hidden = at.hidden;
    const auxes: tf.Scalar[] = [];
    const loads: tf.Tensor1D[] = [];
    let routerState: tf.Tensor2D | undefined;
    w.layers.forEach((p, layer) => {
      const out = block(hidden, p, layer, at, ops, { probe, routerState });
      hidden = out.hidden;
      routerState = out.routerState;
      if (out.aux) auxes.push(out.aux);
      if (out.load) loads.push(out.load);
    });
    const logits = head(w, hidden, ops);
    if (spec.moe === undefined) return { logits };
    return {
      logits,
      auxLoss: tf.mul(tf.mean(tf.stack(auxes)), spec.moe.auxLossWeight) as tf.Scalar,
      expertLoad: tf.stack(loads) as tf.Tensor2D,
    };
  }

  return { input, embed, block, head, run, logits: (w, ids, ops, probe) => run(w, ids, ops, probe).logits };
}

/**
 * A transformer's layout tensors as forward weights: each block is `perBlock` consecutive tensors (12 for dense
 * MLPs, tensorsPerBlock) after embed and pos; after lnf, the rmoe router's four GRU tensors if there are any.
 */
export function transformerWeights(
  params: readonly tf.Tensor[],
  numLayers: number,
  perBlock = 12,
): TransformerWeights {
  const last = 2 + perBlock * numLayers;
  return {
    embed: params[0] as tf.Tensor2D,
    pos: params[1] as tf.Tensor2D,
    layers: Array.from({ length: numLayers }, (_, b) =>
      params.slice(2 + perBlock * b, 2 + perBlock * (b + 1)),
    ),
    lnfGain: params[last],
    lnfBias: params[last + 1],
    routerGru: params.length > last + 2 ? params.slice(last + 2) : undefined,
  };
}

/**
 * The standard deviation a weight starts with: 0.02, 0.02/√(2L) for the residual projections. The rmoe router's
 * input projection and GRU weights are fan-in scaled, 1/√(rows), so its state is O(1) at the start (at 0.02 the
 * three small matrices in a row would leave h, and every gradient through it, near zero); its output projection
 * keeps 0.02, so routing starts near uniform like the linear router's.
 */
function initStd(name: string, shape: readonly number[], layers: number): number {
  if (name.endsWith('.proj.weight')) return 0.02 / Math.sqrt(2 * layers);
  if (/(^|\.)router\.(in|gru\.ih|gru\.hh)\.weight$/.test(name)) return 1 / Math.sqrt(shape[0]);
  return 0.02;
}

export function createTransformer(spec: TransformerSpec): Model {
  const problems = transformerSpecProblems(spec);
  if (problems.length > 0) throw new Error(`transformer: ${problems.join('; ')}`);
  if (spec.recursion !== undefined) {
    throw new Error('transformer: a spec with recursion is a recursive student (createRecursiveTransformer)');
  }
  const frozen: TransformerSpec = { ...spec };
  const layout = buildLayout(layerSpecs(frozen));
  const numLayers = frozen.layers;
  const perBlock = tensorsPerBlock(frozen);
  const forward = transformerForward(frozen);

  /**
   * GPT-2 initialisation: weights N(0, 0.02²), the residual projections (attention's and each MLP's or
   * expert's proj) N(0, (0.02/√(2L))²), biases 0, LayerNorm gains 1; an MoE router N(0, 0.02²) like any weight.
   * Layer i draws from its own stream, so it does not depend on the others.
   */
  function initialParameters(seed: number): Float32Array {
    const params = new Float32Array(layout.totalSize);
    layout.layers.forEach((slot, i) => {
      const view = layerView(params, slot);
      if (slot.name.endsWith('.gain')) view.fill(1);
      else if (slot.name.endsWith('.weight')) {
        const std = initStd(slot.name, slot.shape, numLayers);
        const rng = new Rng(deriveSeed(seed, INIT_STREAM, i));
        for (let k = 0; k < view.length; k++) view[k] = std * rng.normal();
      }
    });
    return params;
  }

  return {
    spec: frozen,
    layout,
    io: { kind: 'sequence', numClasses: frozen.vocab.length },
    input: forward.input,
    initialParameters,
    apply: (params, ids, ops) => forward.logits(transformerWeights(params, numLayers, perBlock), ids, ops),
    forward: (params, ids, ops) => forward.run(transformerWeights(params, numLayers, perBlock), ids, ops),
  };
}
