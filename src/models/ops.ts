/**
 * Differentiable building blocks with backend-aware gradients.
 *
 * - Convolution: the wasm backend of tfjs 4.22 registers no `Conv2DBackpropFilter` kernel, so the stock
 *   gradient of `tf.conv2d` fails there. The custom gradient expresses both backward passes as forward
 *   convolutions (wasm's fast XNNPACK kernel): dx as a 'full' convolution of dy with the rotated filter
 *   (see inputGrad), and dw as a convolution of the input with dy, with batch and channel axes swapped:
 *     dw[kh,kw,ci,co] = Σ_{n,i,j} x[n, i+kh, j+kw, ci] · dy[n, i, j, co]
 *                     = transpose(conv2d(xᵀ, dyᵀ), [1,2,0,3])  with xᵀ = x[ci,h,w,n], dyᵀ = dy[i,j,n,co].
 * - Dense: the stock BatchMatMul gradient uses transposeA/transposeB flags, ~10× slower on wasm than an
 *   explicit `tf.transpose` followed by a plain matMul; the custom gradient uses explicit transposes.
 * Both also skip the input gradient when the input is data (first layer), which the stock gradients only do
 * lazily and customGrad cannot do at all.
 */
import { tf } from './tf.ts';

export interface KernelChoice {
  /** 'builtin' = tf.conv2d with its registered gradient; 'custom' = the customGrad above. */
  conv: 'builtin' | 'custom';
  /** 'builtin' = tf.matMul; 'explicit-transpose' = customGrad with explicit transposes. */
  matMul: 'builtin' | 'explicit-transpose';
}

/** What to use on a backend: the custom conv only where the filter gradient kernel is missing. */
export function defaultKernelChoice(backend: string = tf.getBackend()): KernelChoice {
  const hasFilterGrad = (tf.getKernel('Conv2DBackpropFilter', backend) as unknown) != null;
  return {
    conv: hasFilterGrad ? 'builtin' : 'custom',
    matMul: backend === 'wasm' ? 'explicit-transpose' : 'builtin',
  };
}

export interface ModelOps {
  readonly kernels: KernelChoice;
  /** 'valid' stride-1 convolution, x [N,H,W,Ci], w [kh,kw,Ci,Co]. `x` must not need a gradient if isData. */
  conv2d(x: tf.Tensor4D, w: tf.Tensor4D, isData: boolean): tf.Tensor4D;
  /** a [N,K] · b [K,M]. `a` must not need a gradient if isData. */
  matMul(a: tf.Tensor2D, b: tf.Tensor2D, isData: boolean): tf.Tensor2D;
  /** Batched a [B,M,K] · b [B,K,N] (attention); both may need gradients. */
  batchMatMul(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D;
}

export function createOps(kernels: KernelChoice): ModelOps {
  return {
    kernels: { ...kernels },
    conv2d:
      kernels.conv === 'custom'
        ? (x, w, isData) => (isData ? conv2dDataInput(x, w) : (conv2dCustom(x, w) as tf.Tensor4D))
        : (x, w) => tf.conv2d(x, w, 1, 'valid'),
    matMul:
      kernels.matMul === 'explicit-transpose'
        ? (a, b, isData) => (isData ? matMulDataInput(a, b) : (matMulCustom(a, b) as tf.Tensor2D))
        : (a, b) => tf.matMul(a, b),
    batchMatMul:
      kernels.matMul === 'explicit-transpose'
        ? (a, b) => batchMatMulCustom(a, b) as tf.Tensor3D
        : (a, b) => tf.matMul(a, b),
  };
}

/**
 * dx of a 'valid' stride-1 convolution as a 'full' forward convolution of dy with the filter rotated 180° and
 * its channel axes swapped: dx[n,i,j,ci] = Σ dy[n, i−a, j−b, co] · w[a, b, ci, co]. Same result as
 * conv2dTranspose (Conv2DBackpropInput), which wasm implements ~3× slower than its XNNPACK Conv2D.
 */
function inputGrad(dy: tf.Tensor4D, w: tf.Tensor4D): tf.Tensor4D {
  const [kh, kw] = w.shape;
  const flipped = tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2]);
  const pad: [[number, number], [number, number], [number, number], [number, number]] = [
    [0, 0],
    [kh - 1, kh - 1],
    [kw - 1, kw - 1],
    [0, 0],
  ];
  return tf.conv2d(dy, flipped, 1, pad);
}

function filterGrad(x: tf.Tensor4D, dy: tf.Tensor4D): tf.Tensor4D {
  const xt = tf.transpose(x, [3, 1, 2, 0]);
  const dyt = tf.transpose(dy, [1, 2, 0, 3]);
  return tf.transpose(tf.conv2d(xt, dyt, 1, 'valid'), [1, 2, 0, 3]);
}

const conv2dCustom = tf.customGrad((...args) => {
  const [x, w, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc];
  save([x, w]);
  return {
    value: tf.conv2d(x, w, 1, 'valid'),
    gradFunc: (dy, saved) => {
      const [sx, sw] = saved as [tf.Tensor4D, tf.Tensor4D];
      const dy4 = dy as tf.Tensor4D;
      return [inputGrad(dy4, sw), filterGrad(sx, dy4)];
    },
  };
});

/** Convolution of a data tensor (no gradient wanted for x): x is closed over, not a tape input. */
function conv2dDataInput(x: tf.Tensor4D, w: tf.Tensor4D): tf.Tensor4D {
  const op = tf.customGrad((...args) => {
    const [wt] = args as [tf.Tensor4D, tf.GradSaveFunc];
    return { value: tf.conv2d(x, wt, 1, 'valid'), gradFunc: (dy) => [filterGrad(x, dy as tf.Tensor4D)] };
  });
  return op(w) as tf.Tensor4D;
}

const matMulCustom = tf.customGrad((...args) => {
  const [a, b, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy, saved) => {
      const [sa, sb] = saved as [tf.Tensor2D, tf.Tensor2D];
      const dy2 = dy as tf.Tensor2D;
      return [tf.matMul(dy2, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy2)];
    },
  };
});

const batchMatMulCustom = tf.customGrad((...args) => {
  const [a, b, save] = args as [tf.Tensor3D, tf.Tensor3D, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy, saved) => {
      const [sa, sb] = saved as [tf.Tensor3D, tf.Tensor3D];
      const dy3 = dy as tf.Tensor3D;
      return [tf.matMul(dy3, tf.transpose(sb, [0, 2, 1])), tf.matMul(tf.transpose(sa, [0, 2, 1]), dy3)];
    },
  };
});

/**
 * a · b where only b needs a gradient. `a` is a tape input saved for the backward pass (so it may be made
 * inside the differentiated function, e.g. a one-hot of token ids); its gradient is reported as zeros, which
 * the tape drops because `a` depends on no parameter.
 */
const matMulDataInputCustom = tf.customGrad((...args) => {
  const [a, b, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([a]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy, saved) => {
      const [sa] = saved as [tf.Tensor2D];
      return [tf.zerosLike(sa), tf.matMul(tf.transpose(sa), dy as tf.Tensor2D)];
    },
  };
});

function matMulDataInput(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  return matMulDataInputCustom(a, b) as tf.Tensor2D;
}

/** Mean softmax cross-entropy of logits [N,C] against one-hot targets [N,C]. */
export function softmaxCrossEntropy(logits: tf.Tensor2D, oneHot: tf.Tensor2D): tf.Scalar {
  return tf.neg(tf.mean<tf.Scalar>(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits)), 1)));
}
