/**
 * A Relaxed Recursive Transformer: the transformer of transformer.ts whose L layers run K shared blocks
 * (recursion.ts: the tying plan, the layout and the construction from a teacher). Tied layer ℓ of block k runs
 * the block with W_k + a_ℓ·b_ℓ for each weight matrix (a depth-wise LoRA; a·b is formed inside the gradient
 * tape, so a, b and W_k all get gradients) and v_k + relax_ℓ for each vector. Layers whose block runs only there
 * use the block as is. The forward pass is transformer.ts's, given the per-depth effective blocks; with a
 * `recursion.mor` section it is mor.ts's, which routes tokens between recursions.
 */
import { buildLayout, layerView } from '../core/layout/parameterLayout.ts';
import { fromNamedTensors, toNamedTensors } from '../core/layout/namedTensors.ts';
import { deriveSeed, Rng } from '../core/random.ts';
import type { Model } from './model.ts';
import { morRun } from './mor.ts';
import { routedRecursions } from './morSpec.ts';
import type { ModelOps } from './ops.ts';
import { recursiveFromTeacher, recursiveLayerSpecs, tyingPlan } from './recursion.ts';
import { tf } from './tf.ts';
import {
  createTransformer,
  transformerForward,
  type BlockTensors,
  type TransformerWeights,
} from './transformer.ts';
import { transformerSpecProblems } from './transformerSpec.ts';
import type { RecursionSpec, TransformerSpec } from './types.ts';

export type RecursiveSpec = TransformerSpec & { recursion: RecursionSpec };

const LORA_STREAM = 0x10a4;
const LORA_STD = 0.02;
const ROUTER_STREAM = 0x3022;
const ROUTER_STD = 0.02;
/** Positions of the weight matrices (qkv, attn proj, fc, mlp proj) and of the vectors within a block's 12 tensors. */
const MATRIX_SLOTS = [2, 4, 8, 10];
const VECTOR_SLOTS = [0, 1, 3, 5, 6, 7, 9, 11];
/** Tensors per tied layer after lnf: (a, b) per matrix, then one per vector. */
const PER_TIED = 2 * MATRIX_SLOTS.length + VECTOR_SLOTS.length;

export function isRecursive(spec: TransformerSpec): spec is RecursiveSpec {
  return spec.recursion !== undefined;
}

/** The teacher-shaped (untied) spec of a recursive student. */
export function unrolledSpec(spec: TransformerSpec): TransformerSpec {
  const { recursion: _, ...plain } = spec;
  return plain;
}

export function createRecursiveTransformer(spec: RecursiveSpec): Model {
  const problems = transformerSpecProblems(spec);
  if (problems.length > 0) throw new Error(`transformer: ${problems.join('; ')}`);
  const frozen: RecursiveSpec = {
    ...spec,
    recursion: {
      ...spec.recursion,
      ...(spec.recursion.mor
        ? { mor: { ...spec.recursion.mor, capacities: [...spec.recursion.mor.capacities] } }
        : {}),
    },
  };
  const r = frozen.recursion;
  const layout = buildLayout(recursiveLayerSpecs(frozen));
  const plan = tyingPlan(frozen.layers, r.blocks, r.schedule);
  const forward = transformerForward(frozen);
  const relaxed = r.loraRank > 0;
  // Index of each tied layer's first relaxation tensor in the layout.
  const relaxStart = new Map<number, number>();
  let next = 2 + 12 * r.blocks + 2;
  plan.tied.forEach((tied, l) => {
    if (tied && relaxed) {
      relaxStart.set(l, next);
      next += PER_TIED;
    }
  });

  /**
   * Scratch initialisation: a GPT-2-initialised teacher of depth L (transformer.ts) tied with block k ← layer k,
   * LoRA a ~ N(0, 0.02²) and b = 0 (so every tied layer starts as its block), vector relaxations 0; MoR router
   * weights N(0, 0.02²) like an MoE router, biases 0.
   */
  function initialParameters(seed: number): Float32Array {
    const teacher = createTransformer(unrolledSpec(frozen));
    const named = recursiveFromTeacher(
      { ...frozen, recursion: { ...r, init: 'lower', loraRank: 0 } },
      toNamedTensors(teacher.initialParameters(seed), teacher.layout),
    );
    const params = new Float32Array(layout.totalSize);
    layout.layers.forEach((slot, i) => {
      const view = layerView(params, slot);
      const base = named.get(slot.name);
      if (base !== undefined) view.set(base.data);
      else if (slot.name.startsWith('lora.') && slot.name.endsWith('.a')) {
        const rng = new Rng(deriveSeed(seed, LORA_STREAM, i));
        for (let k = 0; k < view.length; k++) view[k] = LORA_STD * rng.normal();
      } else if (slot.name.startsWith('mor.router.') && slot.name.endsWith('.weight')) {
        const rng = new Rng(deriveSeed(seed, ROUTER_STREAM, i));
        for (let k = 0; k < view.length; k++) view[k] = ROUTER_STD * rng.normal();
      }
    });
    return params;
  }

  /** The effective block of each depth: the shared block, plus a·b and the vector relaxations when tied. */
  function weights(params: readonly tf.Tensor[], ops: ModelOps): TransformerWeights {
    const blocks = Array.from({ length: r.blocks }, (_, k) => params.slice(2 + 12 * k, 2 + 12 * (k + 1)));
    const lnf = 2 + 12 * r.blocks;
    const layers: BlockTensors[] = plan.blockOf.map((k) => blocks[k]);
    plan.blockOf.forEach((k, l) => {
      const start = relaxStart.get(l);
      if (start === undefined) return;
      const p = [...blocks[k]];
      MATRIX_SLOTS.forEach((slot, m) => {
        const a = params[start + 2 * m] as tf.Tensor2D;
        const b = params[start + 2 * m + 1] as tf.Tensor2D;
        p[slot] = tf.add(p[slot], ops.matMul(a, b, false));
      });
      VECTOR_SLOTS.forEach((slot, v) => {
        p[slot] = tf.add(p[slot], params[start + 2 * MATRIX_SLOTS.length + v]);
      });
      layers[l] = p;
    });
    return {
      embed: params[0] as tf.Tensor2D,
      pos: params[1] as tf.Tensor2D,
      layers,
      lnfGain: params[lnf],
      lnfBias: params[lnf + 1],
    };
  }

  const mor = r.mor;
  if (mor === undefined) {
    return {
      spec: frozen,
      layout,
      io: { kind: 'sequence', numClasses: frozen.vocab.length },
      input: forward.input,
      initialParameters,
      apply: (params, ids, ops) => forward.logits(weights(params, ops), ids, ops),
    };
  }
  // the routers are the layout's last tensors (recursiveLayerSpecs)
  const routerStart = layout.layers.length - 2 * routedRecursions(mor).length;
  const run = (params: readonly tf.Tensor[], ids: tf.Tensor, ops: ModelOps) =>
    morRun(forward, weights(params, ops), params.slice(routerStart), mor, r.blocks, ids, ops);
  return {
    spec: frozen,
    layout,
    io: { kind: 'sequence', numClasses: frozen.vocab.length },
    input: forward.input,
    initialParameters,
    apply: (params, ids, ops) => run(params, ids, ops).logits,
    forward: run,
  };
}

/**
 * The flat parameters of a recursive student built from a teacher's flat parameters (the teacher is the
 * student's spec without `recursion`): recursion.ts's recursiveFromTeacher in layout form.
 */
export function recursiveParametersFromTeacher(
  spec: RecursiveSpec,
  teacherParams: Float32Array,
): Float32Array {
  const teacher = createTransformer(unrolledSpec(spec));
  const named = recursiveFromTeacher(spec, toNamedTensors(teacherParams, teacher.layout));
  return fromNamedTensors(named, createRecursiveTransformer(spec).layout);
}
