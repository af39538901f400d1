/**
 * A validation split carved from the training set, stratified by class and seeded, before any sharding — so no
 * worker trains on it and hyper-parameters can be chosen without looking at the test set.
 *
 * Class c with m_c examples gives ⌊v·m_c⌋ of them, and the remaining round(v·N) − Σ⌊v·m_c⌋ go one each to the
 * classes with the largest remainders v·m_c − ⌊v·m_c⌋ (ties: lower class id): the split holds round(v·N)
 * examples and every class within one example of its share v·m_c. Which examples: the first ones of the class
 * after a seeded shuffle. Deterministic for (labels, fraction, seed).
 */
import { deriveSeed, Rng } from '../core/random.ts';

const VALIDATION_STREAM = 0x7a1d;

export interface TrainValidationSplit {
  /** Sorted indices of the examples left for training (the pool the shards are cut from). */
  train: Uint32Array;
  /** Sorted indices of the held-out validation examples. */
  validation: Uint32Array;
}

/** Hold out `fraction` (0 ≤ fraction < 1) of the examples whose labels are given. */
export function splitValidation(labels: ArrayLike<number>, fraction: number, seed: number): TrainValidationSplit {
  const count = labels.length;
  if (!(fraction >= 0 && fraction < 1)) {
    throw new Error(`splitValidation: fraction must be in [0, 1), got ${fraction}`);
  }
  if (fraction === 0) {
    return { train: Uint32Array.from({ length: count }, (_, i) => i), validation: new Uint32Array(0) };
  }
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < count; i++) {
    let list = byClass.get(labels[i]);
    if (list === undefined) byClass.set(labels[i], (list = []));
    list.push(i);
  }
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  const quota = new Map<number, number>();
  let assigned = 0;
  for (const c of classes) {
    const q = Math.floor(fraction * byClass.get(c)!.length);
    quota.set(c, q);
    assigned += q;
  }
  const remainder = (c: number) => fraction * byClass.get(c)!.length - quota.get(c)!;
  const byRemainder = [...classes].sort((a, b) => remainder(b) - remainder(a) || a - b);
  for (let k = 0; assigned < Math.round(fraction * count) && k < byRemainder.length; k++, assigned++) {
    quota.set(byRemainder[k], quota.get(byRemainder[k])! + 1);
  }
  const rng = new Rng(deriveSeed(seed, VALIDATION_STREAM, count));
  const held = new Uint8Array(count);
  for (const c of classes) {
    const members = rng.shuffle(byClass.get(c)!);
    for (let j = 0; j < quota.get(c)!; j++) held[members[j]] = 1;
  }
  const validation: number[] = [];
  const train: number[] = [];
  for (let i = 0; i < count; i++) (held[i] ? validation : train).push(i);
  return { train: Uint32Array.from(train), validation: Uint32Array.from(validation) };
}
