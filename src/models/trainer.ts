/**
 * The tfjs Trainer: gradients of the mean softmax cross-entropy at a given flat parameter vector, and
 * batched evaluation. Stateless between calls apart from the preallocated gradient buffer: parameters come
 * in as a Float32Array (layout order), are uploaded as one tensor per layer, and every tensor made for a call
 * is released before it returns.
 *
 * Uses whatever tfjs backend is active when `createTrainer` runs (see worker/backend.ts); the kernel choice
 * (custom conv / matMul gradients) is fixed then.
 */
import { layerView } from '../core/layout/parameterLayout.ts';
import type { Model, ModelOutput } from './model.ts';
import { exampleShape } from './model.ts';
import { loadImbalance } from './moe.ts';
import {
  createOps,
  defaultKernelChoice,
  type KernelChoice,
  type ModelOps,
  softmaxCrossEntropy,
} from './ops.ts';
import { createModel } from './registry.ts';
import { checkDistillationWeights, distillationLoss, type DistillationWeights } from './distillationLoss.ts';
import { tf } from './tf.ts';
import type { Batch, EvalResult, GradientResult, ModelSpec, Trainer } from './types.ts';

/** A distillation job's teacher: its model, flat parameters and the loss weights. */
export interface TrainerTeacher {
  spec: ModelSpec;
  params: Float32Array;
  weights: DistillationWeights;
}

export interface TrainerOptions {
  /**
   * Distil from this teacher: gradient() then minimises distillationLoss against its logits (computed on the same
   * batch, outside the gradient) instead of the plain cross-entropy. Evaluation stays the student's cross-entropy.
   */
  teacher?: TrainerTeacher;
  /** Override the backend-derived kernel choice (tests compare the variants). */
  kernels?: Partial<KernelChoice>;
  /** Targets per forward pass in evaluate() (examples for image models); default 1000. */
  evalBatchSize?: number;
}

export interface EvalSplit {
  images: Float32Array;
  labels: Uint8Array;
  count: number;
}

export class TfTrainer implements Trainer {
  readonly layout;
  readonly spec: ModelSpec;
  /** The tfjs backend the trainer was created on. */
  readonly backend: string;
  readonly kernels: KernelChoice;
  private readonly model: Model;
  private readonly ops: ModelOps;
  private readonly grad: Float32Array;
  private readonly evalBatchSize: number;
  private readonly teacher: { model: Model; params: tf.Tensor[]; weights: DistillationWeights } | undefined;
  private busy = false;
  private disposed = false;

  constructor(model: Model, options: TrainerOptions = {}) {
    this.model = model;
    this.spec = model.spec;
    this.layout = model.layout;
    this.backend = tf.getBackend();
    this.kernels = { ...defaultKernelChoice(this.backend), ...options.kernels };
    this.ops = createOps(this.kernels);
    this.grad = new Float32Array(model.layout.totalSize);
    this.evalBatchSize = options.evalBatchSize ?? 1000;
    if (!Number.isInteger(this.evalBatchSize) || this.evalBatchSize <= 0) {
      throw new Error(`trainer: evalBatchSize must be a positive integer, got ${options.evalBatchSize}`);
    }
    if (options.teacher) {
      const { spec, params, weights } = options.teacher;
      checkDistillationWeights(weights);
      const teacher = createModel(spec);
      if (teacher.io.numClasses !== model.io.numClasses || teacher.io.kind !== model.io.kind) {
        throw new Error(
          `trainer: the teacher predicts ${teacher.io.numClasses} ${teacher.io.kind} classes, the student ${model.io.numClasses} ${model.io.kind} classes`,
        );
      }
      if (params.length !== teacher.layout.totalSize) {
        throw new Error(
          `trainer: teacher has ${params.length} parameters, its layout ${teacher.layout.totalSize}`,
        );
      }
      // Uploaded once: the teacher is the same for every batch of the job.
      const tensors = teacher.layout.layers.map((slot) =>
        tf.tensor(layerView(params, slot), slot.shape, 'float32'),
      );
      this.teacher = { model: teacher, params: tensors, weights };
    }
  }

  initialParameters(seed: number): Float32Array {
    return this.model.initialParameters(seed);
  }

  /**
   * Mean cross-entropy and its gradient over the batch. The returned `grad` is the trainer's own buffer,
   * overwritten by the next call; one call at a time.
   */
  async gradient(params: Float32Array, batch: Batch): Promise<GradientResult> {
    this.checkUsable();
    this.checkParams(params);
    const n = batch.size;
    if (!Number.isInteger(n) || n <= 0)
      throw new Error(`trainer: batch size must be a positive integer, got ${n}`);
    const { exampleSize, targets } = exampleShape(this.model.io, batch.x.length, n);
    if (batch.x.length < n * exampleSize || batch.y.length < n * targets) {
      throw new Error(
        `trainer: batch buffers too small for ${n} examples (x ${batch.x.length}, y ${batch.y.length})`,
      );
    }
    if (this.busy) throw new Error('trainer: gradient() called while a previous call is still running');
    this.busy = true;
    let lossT: tf.Scalar | undefined;
    let gradT: tf.Tensor1D | undefined;
    let loadT: tf.Tensor2D | undefined;
    try {
      [lossT, gradT] = tf.tidy(() => {
        const p = this.uploadParams(params);
        const x = this.model.input(batch.x.subarray(0, n * exampleSize), n);
        const classes = this.model.io.numClasses;
        const y = tf.oneHot(
          tf.tensor1d(labelsToInt32(batch.y, 0, n * targets, classes), 'int32'),
          classes,
        ) as tf.Tensor2D;
        const teacher = this.teacher;
        // Teacher logits are computed before and outside the differentiated function: no gradient reaches them.
        const teacherLogits = teacher
          ? teacher.model.apply(
              teacher.params,
              teacher.model.input(batch.x.subarray(0, n * exampleSize), n),
              this.ops,
            )
          : undefined;
        const f = (...ps: tf.Tensor[]) => {
          const { logits, auxLoss, expertLoad } = this.forward(ps, x);
          // the tape disposes what f made but does not return: keep the load for the diagnostics
          if (expertLoad) loadT = tf.keep(expertLoad);
          const loss =
            teacher && teacherLogits
              ? distillationLoss(logits, teacherLogits, y, teacher.weights)
              : softmaxCrossEntropy(logits, y);
          return auxLoss ? tf.add(loss, auxLoss) : loss;
        };
        const { value, grads } = tf.valueAndGrads(f)(p);
        const flat =
          grads.length === 1 ? tf.reshape(grads[0], [-1]) : tf.concat(grads.map((g) => tf.reshape(g, [-1])));
        return [value as tf.Scalar, flat as tf.Tensor1D];
      });
      const [lossData, gradData, loadData] = await Promise.all([lossT.data(), gradT.data(), loadT?.array()]);
      if (gradData.length !== this.grad.length) {
        throw new Error(`trainer: gradient has ${gradData.length} values, layout has ${this.grad.length}`);
      }
      this.grad.set(gradData as Float32Array);
      const result: GradientResult = { grad: this.grad, loss: lossData[0] };
      if (loadData) result.expertLoad = Math.max(...loadData.map((row) => loadImbalance(row)));
      return result;
    } finally {
      lossT?.dispose();
      gradT?.dispose();
      loadT?.dispose();
      this.busy = false;
    }
  }

  /**
   * Accuracy and mean cross-entropy over the first `limit` examples (all by default), in batches; for an MoE
   * model also the expert load (max/mean routing assignments per expert over all those tokens, worst block), for
   * a Mixture-of-Recursions model the mean recursions run per token.
   */
  async evaluate(params: Float32Array, split: EvalSplit, limit?: number): Promise<EvalResult> {
    this.checkUsable();
    this.checkParams(params);
    const total = Math.min(split.count, limit ?? split.count);
    if (!(total > 0)) throw new Error(`trainer: nothing to evaluate (count ${split.count}, limit ${limit})`);
    const { exampleSize, targets } = exampleShape(this.model.io, split.images.length, split.count);
    const classes = this.model.io.numClasses;
    if (split.images.length < total * exampleSize || split.labels.length < total * targets) {
      throw new Error(`trainer: split buffers too small for ${total} examples`);
    }
    const p = this.uploadParams(params);
    let lossSum = 0;
    let correct = 0;
    let assignments: number[][] | undefined; // [block][expert], summed over the batches
    let depthSum: number | undefined; // recursions run, summed over the tokens
    const evalBatch = Math.max(1, Math.floor(this.evalBatchSize / targets));
    try {
      for (let start = 0; start < total; start += evalBatch) {
        const n = Math.min(evalBatch, total - start);
        const [lossT, correctT, loadT, depthT] = tf.tidy(() => {
          const x = this.model.input(
            split.images.subarray(start * exampleSize, (start + n) * exampleSize),
            n,
          );
          const labels = tf.tensor1d(
            labelsToInt32(split.labels, start * targets, n * targets, classes),
            'int32',
          );
          const { logits, expertLoad, meanDepth } = this.forward(p, x);
          const oneHot = tf.oneHot(labels, classes) as tf.Tensor2D;
          const lossSumT = tf.mul(softmaxCrossEntropy(logits, oneHot), n * targets);
          const correctT = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'float32'));
          return [
            lossSumT,
            correctT,
            expertLoad ? tf.mul(expertLoad, n * targets) : undefined,
            meanDepth ? tf.mul(meanDepth, n * targets) : undefined,
          ];
        });
        try {
          const [l, c, load, depth] = await Promise.all([
            lossT.data(),
            correctT.data(),
            (loadT as tf.Tensor2D | undefined)?.array(),
            depthT?.data(),
          ]);
          lossSum += l[0];
          correct += c[0];
          if (load) {
            assignments ??= load.map((row) => row.map(() => 0));
            load.forEach((row, b) => row.forEach((v, e) => (assignments![b][e] += v)));
          }
          if (depth) depthSum = (depthSum ?? 0) + depth[0];
        } finally {
          lossT.dispose();
          correctT.dispose();
          loadT?.dispose();
          depthT?.dispose();
        }
      }
    } finally {
      tf.dispose(p);
    }
    const result: EvalResult = {
      accuracy: correct / (total * targets),
      loss: lossSum / (total * targets),
    };
    if (assignments) result.expertLoad = Math.max(...assignments.map((row) => loadImbalance(row)));
    if (depthSum !== undefined) result.meanDepth = depthSum / (total * targets);
    return result;
  }

  dispose(): void {
    if (!this.disposed && this.teacher) tf.dispose(this.teacher.params);
    this.disposed = true;
  }

  private forward(params: readonly tf.Tensor[], x: tf.Tensor): ModelOutput {
    return this.model.forward
      ? this.model.forward(params, x, this.ops)
      : { logits: this.model.apply(params, x, this.ops) };
  }

  private uploadParams(params: Float32Array): tf.Tensor[] {
    return this.layout.layers.map((slot) => tf.tensor(layerView(params, slot), slot.shape, 'float32'));
  }

  private checkParams(params: Float32Array): void {
    if (!(params instanceof Float32Array) || params.length !== this.layout.totalSize) {
      throw new Error(`trainer: expected ${this.layout.totalSize} parameters, got ${params.length}`);
    }
  }

  private checkUsable(): void {
    if (this.disposed) throw new Error('trainer: used after dispose()');
  }
}

/** A trainer for `spec` on the active tfjs backend (call selectBackend first). */
export async function createTrainer(spec: ModelSpec, options: TrainerOptions = {}): Promise<TfTrainer> {
  await tf.ready();
  return new TfTrainer(createModel(spec), options);
}

function labelsToInt32(labels: Uint8Array, start: number, n: number, classes: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = labels[start + i];
    if (v >= classes) {
      throw new Error(`trainer: label ${v} at index ${start + i} is not a class id 0..${classes - 1}`);
    }
    out[i] = v;
  }
  return out;
}
