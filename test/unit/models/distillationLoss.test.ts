import { expect } from 'chai';
import { Rng } from '../../../src/core/random.ts';
import { distillationLoss } from '../../../src/models/distillationLoss.ts';
import { tf } from '../../../src/models/tf.ts';

/** The loss written out in float64 from its definition, for one list of rows. */
function reference(s: number[][], t: number[][], labels: number[], alpha: number, T: number): number {
  const softmax = (z: number[], temp: number) => {
    const m = Math.max(...z.map((v) => v / temp));
    const e = z.map((v) => Math.exp(v / temp - m));
    const sum = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / sum);
  };
  let kl = 0;
  let ce = 0;
  for (let n = 0; n < s.length; n++) {
    const pT = softmax(t[n], T);
    const pS = softmax(s[n], T);
    for (let v = 0; v < pT.length; v++) kl += pT[v] * Math.log(pT[v] / pS[v]);
    ce -= Math.log(softmax(s[n], 1)[labels[n]]);
  }
  return (alpha * T * T * kl + (1 - alpha) * ce) / s.length;
}

function lossOf(s: number[][], t: number[][], labels: number[], alpha: number, temperature: number): number {
  return tf.tidy(() => {
    const v = s[0].length;
    const y = tf.oneHot(tf.tensor1d(labels, 'int32'), v) as tf.Tensor2D;
    return distillationLoss(tf.tensor2d(s), tf.tensor2d(t), y, { alpha, temperature }).dataSync()[0];
  });
}

function randomRows(n: number, v: number, rng: Rng, scale = 2): number[][] {
  return Array.from({ length: n }, () => Array.from({ length: v }, () => scale * rng.normal()));
}

describe('distillation loss α·T²·KL(p_T‖p_S) + (1−α)·CE', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('matches a hand computation on two classes', () => {
    // One target, student logits (0, 0), teacher logits (2, 0), label 0, T = 2, α = 0.5:
    // p_S = (½, ½); p_T = softmax(1, 0) = (e/(e+1), 1/(e+1)); CE = log 2.
    const e = Math.E;
    const a = e / (e + 1);
    const b = 1 / (e + 1);
    const kl = a * Math.log(a / 0.5) + b * Math.log(b / 0.5);
    const expected = 0.5 * 4 * kl + 0.5 * Math.log(2);
    expect(lossOf([[0, 0]], [[2, 0]], [0], 0.5, 2)).to.be.closeTo(expected, 1e-6);
  });

  it('matches the float64 definition on random logits for several α and T', () => {
    const rng = new Rng(11);
    for (const [alpha, T] of [
      [0, 1],
      [1, 1],
      [0.7, 2],
      [0.3, 4],
      [0.9, 0.5],
    ]) {
      const s = randomRows(6, 9, rng);
      const t = randomRows(6, 9, rng);
      const labels = Array.from({ length: 6 }, () => rng.int(9));
      expect(lossOf(s, t, labels, alpha, T), `α=${alpha} T=${T}`).to.be.closeTo(
        reference(s, t, labels, alpha, T),
        1e-5,
      );
    }
  });

  it('is the cross-entropy alone at α = 0 and zero soft loss when the student equals the teacher', () => {
    const rng = new Rng(3);
    const s = randomRows(4, 5, rng);
    const labels = [0, 1, 2, 3];
    const ce = reference(s, s, labels, 0, 1);
    expect(lossOf(s, randomRows(4, 5, rng), labels, 0, 3)).to.be.closeTo(ce, 1e-5);
    expect(lossOf(s, s, labels, 1, 3)).to.be.closeTo(0, 1e-6);
  });

  it('has the gradient α·T·(p_S − p_T)/N + (1−α)·(softmax(s) − y)/N, also by finite differences', () => {
    const rng = new Rng(7);
    const n = 3;
    const v = 5;
    const alpha = 0.6;
    const T = 3;
    const s = randomRows(n, v, rng);
    const t = randomRows(n, v, rng);
    const labels = [4, 0, 2];
    const grad = tf.tidy(() => {
      const y = tf.oneHot(tf.tensor1d(labels, 'int32'), v) as tf.Tensor2D;
      const teacher = tf.tensor2d(t);
      const g = tf.grad((x: tf.Tensor) =>
        distillationLoss(x as tf.Tensor2D, teacher, y, { alpha, temperature: T }),
      );
      return g(tf.tensor2d(s)).arraySync() as number[][];
    });
    const softmax = (z: number[], temp: number) => {
      const e = z.map((x) => Math.exp(x / temp));
      const sum = e.reduce((a, b) => a + b, 0);
      return e.map((x) => x / sum);
    };
    for (let i = 0; i < n; i++) {
      const pS = softmax(s[i], T);
      const pT = softmax(t[i], T);
      const p1 = softmax(s[i], 1);
      for (let j = 0; j < v; j++) {
        const closed = (alpha * T * (pS[j] - pT[j]) + (1 - alpha) * (p1[j] - (labels[i] === j ? 1 : 0))) / n;
        expect(grad[i][j], `closed form [${i}][${j}]`).to.be.closeTo(closed, 1e-5);
        const h = 1e-4;
        const plus = s.map((r) => [...r]);
        const minus = s.map((r) => [...r]);
        plus[i][j] += h;
        minus[i][j] -= h;
        const fd = (reference(plus, t, labels, alpha, T) - reference(minus, t, labels, alpha, T)) / (2 * h);
        expect(grad[i][j], `finite difference [${i}][${j}]`).to.be.closeTo(fd, 1e-5);
      }
    }
  });

  it('refuses α outside [0, 1] and a non-positive temperature', () => {
    expect(() => lossOf([[0, 0]], [[0, 0]], [0], 1.5, 1)).to.throw(/alpha must be in \[0, 1\]/);
    expect(() => lossOf([[0, 0]], [[0, 0]], [0], 0.5, 0)).to.throw(/temperature must be a positive/);
  });
});
