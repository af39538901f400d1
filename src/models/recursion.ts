/**
 * Relaxed Recursive Transformers, the pure part: which shared block each layer runs (the tying plan), the
 * student's parameter layout and count, and its construction from a teacher's named tensors (shared blocks by
 * the chosen initialisation, each tied layer's difference to the teacher as a truncated-SVD LoRA). No tfjs.
 *
 * A student of depth L and K blocks stores K blocks `blocks.k.*` (the teacher's per-block tensors) and, when the
 * LoRA rank r > 0, for every tied layer ℓ (one whose block also runs at another depth):
 *   - per weight matrix W [in, out] of the block: lora.ℓ.<W>.a [in, r_W] and lora.ℓ.<W>.b [r_W, out], so layer ℓ
 *     uses W_k + a·b, with r_W = min(r, in, out);
 *   - per vector (LayerNorm gains and biases, dense biases): relax.ℓ.<name>, added to the shared vector.
 * At r = 0 every layer of a block uses exactly the block's tensors (purely recursive).
 */
import { lowRankFactors, svd, energyCaptured } from '../core/linalg/svd.ts';
import type { LayerSpec } from '../core/layout/parameterLayout.ts';
import type { NamedTensors } from '../core/layout/namedTensors.ts';
import { shapeText, sameShape } from '../core/layout/namedTensors.ts';
import { morParameterCountOrZero, morProblems, morRouterTensors } from './morSpec.ts';
import type { RecursionSchedule, RecursionSpec, TeacherLayerInit, TransformerSpec } from './types.ts';

/** The weight matrices of a block ([in, out] each), in block order. */
export const BLOCK_MATRICES = ['attn.qkv', 'attn.proj', 'mlp.fc', 'mlp.proj'] as const;
/** The vectors of a block, in block order. */
export const BLOCK_VECTORS = [
  'ln1.gain',
  'ln1.bias',
  'attn.qkv.bias',
  'attn.proj.bias',
  'ln2.gain',
  'ln2.bias',
  'mlp.fc.bias',
  'mlp.proj.bias',
] as const;

type Shape = Pick<TransformerSpec, 'dModel' | 'ffn'>;

/** The 12 tensors of one block, names relative to the block, in layout order (transformer.ts documents them). */
export function blockTensors({ dModel: d, ffn: f }: Shape): LayerSpec[] {
  return [
    { name: 'ln1.gain', shape: [d] },
    { name: 'ln1.bias', shape: [d] },
    { name: 'attn.qkv.weight', shape: [d, 3 * d] },
    { name: 'attn.qkv.bias', shape: [3 * d] },
    { name: 'attn.proj.weight', shape: [d, d] },
    { name: 'attn.proj.bias', shape: [d] },
    { name: 'ln2.gain', shape: [d] },
    { name: 'ln2.bias', shape: [d] },
    { name: 'mlp.fc.weight', shape: [d, f] },
    { name: 'mlp.fc.bias', shape: [f] },
    { name: 'mlp.proj.weight', shape: [f, d] },
    { name: 'mlp.proj.bias', shape: [d] },
  ];
}

/** [in, out] of a block matrix. */
export function matrixShape(
  matrix: (typeof BLOCK_MATRICES)[number],
  { dModel: d, ffn: f }: Shape,
): [number, number] {
  if (matrix === 'attn.qkv') return [d, 3 * d];
  if (matrix === 'attn.proj') return [d, d];
  if (matrix === 'mlp.fc') return [d, f];
  return [f, d];
}

export interface TyingPlan {
  layers: number;
  blocks: number;
  schedule: RecursionSchedule;
  /** blockOf[ℓ]: the block layer ℓ runs. */
  blockOf: number[];
  /** members[k]: the layers running block k, ascending. */
  members: number[][];
  /** tied[ℓ]: block ℓ also runs at another depth, so layer ℓ gets a LoRA and vector relaxations. */
  tied: boolean[];
}

/** Problems with a recursion spec for depth `layers`, one message each naming the field. */
export function recursionProblems(layers: number, r: RecursionSpec): string[] {
  const problems: string[] = [];
  if (!Number.isInteger(r.blocks) || r.blocks < 1 || r.blocks > layers) {
    problems.push(`recursion.blocks must be an integer from 1 to layers (${layers}), got ${r.blocks}`);
  } else if (r.schedule === 'middle-cycle' && r.blocks < 3) {
    problems.push(
      `recursion.blocks must be at least 3 for schedule middle-cycle (the first and last layers keep their own blocks), got ${r.blocks}`,
    );
  }
  if (r.schedule !== 'cycle' && r.schedule !== 'middle-cycle') {
    problems.push(`recursion.schedule must be 'cycle' or 'middle-cycle', got '${String(r.schedule)}'`);
  }
  if (r.init !== 'stepwise' && r.init !== 'average' && r.init !== 'lower' && r.init !== 'scratch') {
    problems.push(
      `recursion.init must be 'stepwise', 'average', 'lower' or 'scratch', got '${String(r.init)}'`,
    );
  }
  if (!Number.isInteger(r.loraRank) || r.loraRank < 0) {
    problems.push(`recursion.loraRank must be a non-negative integer, got ${r.loraRank}`);
  }
  if (r.mor !== undefined) problems.push(...morProblems(layers, { ...r, mor: r.mor }));
  return problems;
}

/**
 * cycle: ℓ → ℓ mod K. middle-cycle: 0 → 0, L−1 → K−1, and the middle layers 1..L−2 cycle over blocks
 * 1..K−2: ℓ → 1 + (ℓ − 1) mod (K − 2).
 */
export function tyingPlan(layers: number, blocks: number, schedule: RecursionSchedule): TyingPlan {
  const problems = recursionProblems(layers, { blocks, schedule, init: 'lower', loraRank: 0 });
  if (problems.length > 0) throw new Error(problems.join('; '));
  const blockOf = Array.from({ length: layers }, (_, l) => {
    if (schedule === 'cycle') return l % blocks;
    if (l === 0) return 0;
    if (l === layers - 1) return blocks - 1;
    return 1 + ((l - 1) % (blocks - 2));
  });
  const members = Array.from({ length: blocks }, (_, k) => blockOf.flatMap((b, l) => (b === k ? [l] : [])));
  return { layers, blocks, schedule, blockOf, members, tied: blockOf.map((k) => members[k].length > 1) };
}

/**
 * The teacher layers whose mean initialises each block.
 *   lower:    block k ← layer k (middle-cycle: the last block ← layer L−1);
 *   stepwise: block k ← layer ⌊k·L/K⌋ (middle-cycle: first and last as themselves, middle block k ←
 *             layer 1 + ⌊(k−1)·(L−2)/(K−2)⌋), the teacher's depth sampled evenly;
 *   average:  block k ← the mean of the layers it runs at (members[k]).
 * A block running at a single depth always starts as that layer.
 */
export function initSources(plan: TyingPlan, init: TeacherLayerInit): number[][] {
  const { layers: l, blocks: k, schedule } = plan;
  return plan.members.map((members, b) => {
    if (members.length === 1 || init === 'average') return members;
    if (schedule === 'middle-cycle') {
      // middle blocks only (first and last are single-layer above)
      return init === 'lower' ? [b] : [1 + Math.floor(((b - 1) * (l - 2)) / (k - 2))];
    }
    return init === 'lower' ? [b] : [Math.floor((b * l) / k)];
  });
}

/** Rank of the LoRA of an [in, out] matrix for a requested rank: min(r, in, out). */
export function loraRankOf(rank: number, [rows, cols]: readonly number[]): number {
  return Math.min(rank, rows, cols);
}

function teacherSpecOf(spec: TransformerSpec): TransformerSpec {
  const { recursion: _, ...teacher } = spec;
  return teacher;
}

/**
 * The student's layout: embed, pos, blocks.0..K−1, lnf, then the relaxations of each tied layer, then the MoR
 * routers (morSpec.ts) when there is a mor section.
 */
export function recursiveLayerSpecs(spec: TransformerSpec & { recursion: RecursionSpec }): LayerSpec[] {
  const { dModel: d, recursion: r } = spec;
  const plan = tyingPlan(spec.layers, r.blocks, r.schedule);
  const layers: LayerSpec[] = [
    { name: 'embed.weight', shape: [spec.vocab.length, d] },
    { name: 'pos.weight', shape: [spec.context, d] },
  ];
  for (let k = 0; k < r.blocks; k++) {
    for (const t of blockTensors(spec)) layers.push({ name: `blocks.${k}.${t.name}`, shape: t.shape });
  }
  layers.push({ name: 'lnf.gain', shape: [d] }, { name: 'lnf.bias', shape: [d] });
  const routers = r.mor === undefined ? [] : morRouterTensors(d, r.mor);
  if (r.loraRank === 0) return [...layers, ...routers];
  const vectors = blockTensors(spec).filter((t) => t.shape.length === 1);
  for (let l = 0; l < spec.layers; l++) {
    if (!plan.tied[l]) continue;
    for (const m of BLOCK_MATRICES) {
      const [rows, cols] = matrixShape(m, spec);
      const rank = loraRankOf(r.loraRank, [rows, cols]);
      layers.push(
        { name: `lora.${l}.${m}.a`, shape: [rows, rank] },
        { name: `lora.${l}.${m}.b`, shape: [rank, cols] },
      );
    }
    for (const v of vectors) layers.push({ name: `relax.${l}.${v.name}`, shape: v.shape });
  }
  return [...layers, ...routers];
}

/**
 * V·d + C·d + K·(4d² + 2d·f + 9d + f) + 2d, plus per tied layer Σ_W r_W·(in_W + out_W) + 9d + f when r > 0,
 * plus d + 1 per routed recursion of a mor section.
 */
export function recursiveParameterCount(
  spec: Omit<TransformerSpec, 'kind'> & { recursion: RecursionSpec },
): number {
  const { dModel: d, ffn: f, context: c, recursion: r } = spec;
  const base =
    spec.vocab.length * d +
    c * d +
    r.blocks * (4 * d * d + 2 * d * f + 9 * d + f) +
    2 * d +
    morParameterCountOrZero(d, r.mor);
  // an invalid plan is reported by recursionProblems; count it as untied rather than throw here
  if (r.loraRank === 0 || recursionProblems(spec.layers, r).length > 0) return base;
  const tied = tyingPlan(spec.layers, r.blocks, r.schedule).tied.filter(Boolean).length;
  let perLayer = 9 * d + f;
  for (const m of BLOCK_MATRICES) {
    const [rows, cols] = matrixShape(m, spec);
    perLayer += loraRankOf(r.loraRank, [rows, cols]) * (rows + cols);
  }
  return base + tied * perLayer;
}

function teacherTensor(teacher: NamedTensors, name: string, shape: readonly number[]): Float32Array {
  const t = teacher.get(name);
  if (t === undefined) throw new Error(`teacher has no tensor '${name}'`);
  if (!sameShape(t.shape, shape)) {
    throw new Error(
      `teacher tensor '${name}' has shape ${shapeText(t.shape)}, the student needs ${shapeText(shape)}`,
    );
  }
  return t.data;
}

/** Element-wise mean of the teacher's `blocks.ℓ.<name>` over `sources`, in double precision, rounded to float32. */
function meanOfLayers(
  teacher: NamedTensors,
  sources: readonly number[],
  name: string,
  shape: readonly number[],
) {
  const size = shape.reduce((a, b) => a * b, 1);
  const sum = new Float64Array(size);
  for (const l of sources) {
    const data = teacherTensor(teacher, `blocks.${l}.${name}`, shape);
    for (let i = 0; i < size; i++) sum[i] += data[i];
  }
  return Float32Array.from(sum, (x) => x / sources.length);
}

/**
 * The student's named tensors from a teacher of the same shape (spec without `recursion`): embeddings,
 * positions and final norm copied; block k = the mean of its init sources; for each tied layer ℓ and matrix W,
 * the residual R = W_teacher,ℓ − W_k (of the float32 values) factored by truncated SVD as a = U_r·Σ_r^{1/2},
 * b = Σ_r^{1/2}·V_rᵀ; relax.ℓ.<vector> = teacher vector − shared vector. At r = min(in, out) for every matrix,
 * W_k + a·b is W_teacher,ℓ up to float32 rounding: the student computes the teacher's function.
 */
export function recursiveFromTeacher(
  spec: TransformerSpec & { recursion: RecursionSpec },
  teacher: NamedTensors,
): NamedTensors {
  const r = spec.recursion;
  if (r.init === 'scratch')
    throw new Error('recursion.init scratch: the student starts from its seed, not its teacher');
  const plan = tyingPlan(spec.layers, r.blocks, r.schedule);
  const sources = initSources(plan, r.init);
  const out: NamedTensors = new Map();
  const copy = (name: string, shape: number[]) =>
    out.set(name, { data: Float32Array.from(teacherTensor(teacher, name, shape)), shape });
  copy('embed.weight', [spec.vocab.length, spec.dModel]);
  copy('pos.weight', [spec.context, spec.dModel]);
  for (let k = 0; k < r.blocks; k++) {
    for (const t of blockTensors(spec)) {
      out.set(`blocks.${k}.${t.name}`, {
        data: meanOfLayers(teacher, sources[k], t.name, t.shape),
        shape: t.shape,
      });
    }
  }
  copy('lnf.gain', [spec.dModel]);
  copy('lnf.bias', [spec.dModel]);
  // MoR routers have no teacher counterpart: they start at zero (every token continues, each routed recursion's
  // update gated by σ(0) = ½) and learn from there.
  if (r.mor !== undefined)
    for (const t of morRouterTensors(spec.dModel, r.mor))
      out.set(t.name, { data: new Float32Array(t.shape.reduce((a, b) => a * b, 1)), shape: [...t.shape] });
  if (r.loraRank === 0) return out;
  for (let l = 0; l < spec.layers; l++) {
    if (!plan.tied[l]) continue;
    const k = plan.blockOf[l];
    for (const m of BLOCK_MATRICES) {
      const [rows, cols] = matrixShape(m, spec);
      const residual = residualOf(teacher, out, l, k, `${m}.weight`, [rows, cols]);
      const { left: down, right: up, rank } = lowRankFactors(svd(residual, rows, cols), r.loraRank);
      out.set(`lora.${l}.${m}.a`, { data: Float32Array.from(down), shape: [rows, rank] });
      out.set(`lora.${l}.${m}.b`, { data: Float32Array.from(up), shape: [rank, cols] });
    }
    for (const v of blockTensors(spec).filter((t) => t.shape.length === 1)) {
      out.set(`relax.${l}.${v.name}`, {
        data: Float32Array.from(residualOf(teacher, out, l, k, v.name, v.shape)),
        shape: v.shape,
      });
    }
  }
  return out;
}

/** teacher blocks.ℓ.<name> − student blocks.k.<name>, in double precision. */
function residualOf(
  teacher: NamedTensors,
  student: NamedTensors,
  l: number,
  k: number,
  name: string,
  shape: readonly number[],
): Float64Array {
  const t = teacherTensor(teacher, `blocks.${l}.${name}`, shape);
  const s = student.get(`blocks.${k}.${name}`)!.data;
  return Float64Array.from(t, (x, i) => x - s[i]);
}

export interface TyingEnergy {
  blocks: number;
  schedule: RecursionSchedule;
  init: TeacherLayerInit;
  /** Σ‖R‖²_F / Σ‖W_teacher‖²_F over the tied layers' matrices: how far tying moves the weights. */
  residualFraction: number;
  /** For each rank: the fraction of Σ‖R‖²_F the rank-r truncated SVDs capture. */
  captured: { rank: number; fraction: number }[];
}

/** SVD energy of one tying plan and initialisation: what a rank-r LoRA of each tied layer can recover. */
export function tyingEnergy(
  teacherSpec: TransformerSpec,
  teacher: NamedTensors,
  recursion: Omit<RecursionSpec, 'loraRank' | 'init'> & { init: TeacherLayerInit },
  ranks: readonly number[],
): TyingEnergy {
  const spec = { ...teacherSpecOf(teacherSpec), recursion: { ...recursion, loraRank: 0 } };
  const plan = tyingPlan(spec.layers, recursion.blocks, recursion.schedule);
  const student = recursiveFromTeacher(spec, teacher);
  let residual2 = 0;
  let weight2 = 0;
  const kept = ranks.map(() => 0);
  for (let l = 0; l < spec.layers; l++) {
    if (!plan.tied[l]) continue;
    for (const m of BLOCK_MATRICES) {
      const shape = matrixShape(m, spec);
      const r = residualOf(teacher, student, l, plan.blockOf[l], `${m}.weight`, shape);
      const { s } = svd(r, shape[0], shape[1]);
      const total = s.reduce((acc, x) => acc + x * x, 0);
      residual2 += total;
      for (const x of teacherTensor(teacher, `blocks.${l}.${m}.weight`, shape)) weight2 += x * x;
      ranks.forEach((rank, i) => (kept[i] += energyCaptured(s, rank) * total));
    }
  }
  return {
    ...recursion,
    residualFraction: weight2 === 0 ? 0 : residual2 / weight2,
    captured: ranks.map((rank, i) => ({ rank, fraction: residual2 === 0 ? 1 : kept[i] / residual2 })),
  };
}
