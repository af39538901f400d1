/**
 * How to run an MoE MLP on the wasm backend (npx tsx bench/moeDispatch.ts [--reps 30]): the time of one forward
 * and backward pass (gradients of all parameters) of one block's MoE MLP, three ways, for N tokens of width d,
 * E experts of width f, top-k routing:
 *
 * - dense: every expert on every token, weighed by the gates (0 for unchosen experts); two matmuls of width E·f
 *   (src/models/moe.ts, what the model uses);
 * - dispatch: each expert's tokens selected by a one-hot [C_e, N] matmul, the expert run on its C_e tokens, the
 *   results scattered back by the transposed matmul (GShard's dispatch/combine, no gather); the per-expert token
 *   lists are read back from the backend every pass, as any data-dependent routing must;
 * - gather: tf.gather of each expert's tokens (combined back as in dispatch: tf.scatterND has no gradient) and
 *   the gradient through it (tfjs needs UnsortedSegmentSum for that, which wasm may lack: reported as
 *   unavailable then).
 */
import { parseArgs } from 'node:util';
import { Rng } from '../src/core/random.ts';
import { moeMlp } from '../src/models/moe.ts';
import { createOps, defaultKernelChoice, type ModelOps } from '../src/models/ops.ts';
import { tf } from '../src/models/tf.ts';
import { gelu } from '../src/models/transformer.ts';
import { selectBackend } from '../src/worker/backend.ts';

const { values } = parseArgs({ options: { reps: { type: 'string', default: '30' } } });
const reps = Number(values.reps);
await selectBackend('wasm');
const ops = createOps(defaultKernelChoice('wasm'));

interface Shape {
  n: number;
  d: number;
  f: number;
  e: number;
  k: number;
}
const shapes: Shape[] = [
  { n: 256, d: 32, f: 64, e: 4, k: 2 }, // bench:students' student, one worker batch of 8 × 32
  { n: 256, d: 64, f: 128, e: 4, k: 2 },
  { n: 1024, d: 64, f: 256, e: 8, k: 2 },
];

function params(s: Shape, rng: Rng): tf.Tensor[] {
  const rand = (shape: number[]) =>
    tf.tensor(
      Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => 0.1 * rng.normal()),
      shape,
    );
  const out = [rand([s.d, s.e])];
  for (let i = 0; i < s.e; i++) out.push(rand([s.d, s.f]), rand([s.f]), rand([s.f, s.d]), rand([s.d]));
  return out;
}

/** Σ_e S_eᵀ · (g_e ⊙ expert_e(S_e · x)) with S_e the one-hot rows of the tokens routed to e. */
function dispatchMlp(x: tf.Tensor2D, t: tf.Tensor[], s: Shape, routes: number[][], o: ModelOps): tf.Tensor2D {
  const probs = tf.softmax(o.matMul(x, t[0] as tf.Tensor2D, false)) as tf.Tensor2D;
  let out = tf.zeros([s.n, s.d]) as tf.Tensor2D;
  for (let e = 0; e < s.e; e++) {
    const tokens = routes[e];
    if (tokens.length === 0) continue;
    const sel = new Float32Array(tokens.length * s.n);
    tokens.forEach((tok, i) => (sel[i * s.n + tok] = 1));
    const select = tf.tensor2d(sel, [tokens.length, s.n]);
    const xe = o.matMul(select, x, false);
    const h = gelu(tf.add(o.matMul(xe, t[1 + 4 * e] as tf.Tensor2D, false), t[2 + 4 * e]) as tf.Tensor2D);
    const ye = tf.add(o.matMul(h, t[3 + 4 * e] as tf.Tensor2D, false), t[4 + 4 * e]) as tf.Tensor2D;
    // gates of e for its tokens (renormalisation over the chosen pair omitted: it does not change the cost)
    const ge = o.matMul(select, tf.slice(probs, [0, e], [s.n, 1]) as tf.Tensor2D, false);
    out = tf.add(out, o.matMul(tf.transpose(select), tf.mul(ye, ge) as tf.Tensor2D, false));
  }
  return out;
}

function gatherMlp(x: tf.Tensor2D, t: tf.Tensor[], s: Shape, routes: number[][]): tf.Tensor2D {
  let out = tf.zeros([s.n, s.d]) as tf.Tensor2D;
  for (let e = 0; e < s.e; e++) {
    if (routes[e].length === 0) continue;
    const idx = tf.tensor1d(routes[e], 'int32');
    const xe = tf.gather(x, idx);
    const h = gelu(tf.add(tf.matMul(xe, t[1 + 4 * e]), t[2 + 4 * e]));
    const ye = tf.add(tf.matMul(h, t[3 + 4 * e]), t[4 + 4 * e]);
    // scatterND has no gradient in tfjs: combine with the one-hot matmul as in dispatch
    const sel = new Float32Array(routes[e].length * s.n);
    routes[e].forEach((tok, i) => (sel[i * s.n + tok] = 1));
    out = tf.add(out, tf.matMul(tf.transpose(tf.tensor2d(sel, [routes[e].length, s.n])), ye));
  }
  return out;
}

function routesOf(x: tf.Tensor2D, router: tf.Tensor, s: Shape): number[][] {
  const idx = tf.tidy(() => tf.topk(tf.matMul(x, router), s.k).indices.arraySync() as number[][]);
  const routes: number[][] = Array.from({ length: s.e }, () => []);
  idx.forEach((row, n) => row.forEach((e) => routes[e].push(n)));
  return routes;
}

function time(step: () => void): number {
  for (let i = 0; i < 3; i++) step();
  const start = performance.now();
  for (let i = 0; i < reps; i++) step();
  return (performance.now() - start) / reps;
}

console.log(`wasm, forward + backward of one MoE MLP, mean of ${reps} passes (ms)\n`);
console.log('| N | d | f | E | k | dense (all experts, masked) | dispatch (one-hot matmuls) | gather |');
console.log('|---|---|---|---|---|---|---|---|');
for (const s of shapes) {
  const rng = new Rng(1);
  const t = params(s, rng);
  const x = tf.tensor2d(
    Float32Array.from({ length: s.n * s.d }, () => rng.normal()),
    [s.n, s.d],
  );
  const loss = (y: tf.Tensor) => tf.sum(tf.square(y)) as tf.Scalar;
  const dense = time(() =>
    tf.dispose(
      tf.grads((...p: tf.Tensor[]) =>
        loss(moeMlp(x, p, { experts: s.e, topK: s.k, auxLossWeight: 0 }, ops).out),
      )(t),
    ),
  );
  const dispatch = time(() => {
    const routes = routesOf(x, t[0], s);
    tf.dispose(tf.grads((...p: tf.Tensor[]) => loss(dispatchMlp(x, p, s, routes, ops)))(t));
  });
  let gather: string;
  try {
    gather = time(() => {
      const routes = routesOf(x, t[0], s);
      // the router gets no gradient on this path; only the experts' parameters are differentiated
      tf.dispose(tf.grads((...p: tf.Tensor[]) => loss(gatherMlp(x, [t[0], ...p], s, routes)))(t.slice(1)));
    }).toFixed(2);
  } catch (err) {
    gather = `unavailable (${(err as Error).message.split('\n')[0].slice(0, 60)})`;
  }
  console.log(
    `| ${s.n} | ${s.d} | ${s.f} | ${s.e} | ${s.k} | ${dense.toFixed(2)} | ${dispatch.toFixed(2)} | ${gather} |`,
  );
  tf.dispose([...t, x]);
}
