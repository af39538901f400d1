/**
 * Bulyan (El Mhamdi, Guerraoui & Rouault 2018).
 *
 * Default (canonical): selection then coordinate-wise trimming.
 *   1. θ = n − 2f times: run Krum (squared L2, |R| − f − 2 neighbours, clamped at 0) on the remaining set R,
 *      move the winner into S (ties toward the lower index).
 *   2. β = θ − 2f; per coordinate, out = mean of the β values of S closest to S's coordinate-wise median
 *      (midpoint for even θ; ties toward the lower worker index).
 *   Precondition: n ≥ 4f + 3.
 *
 * `compat: 'garfield'` (FA-repo / ByzantineMomentum "Bulyan over Multi-Krum"): with m = option `m` or
 *   m_max = n − f − 2, scores are computed once as the sum of the m smallest non-squared distances to the
 *   others; order the workers by score (ties toward the lower index); build θ' = n − 2f − 2 rows, row i = mean
 *   of the workers ranked i .. i + mᵢ − 1 with mᵢ = min(m, m_max − i); then per coordinate the mean of the
 *   β' = θ' − 2f row values closest to the rows' lower median. Precondition: n ≥ 4f + 3 (and 1 ≤ m ≤ m_max).
 *
 * Health: trust = fraction of coordinates in which the worker's value (or a row containing it) entered the
 * output, weight = its average coefficient in the output; workers never selected are excluded.
 * Diagnostics: tieBroken = a Krum selection (or the garfield score order) was decided by the lower index.
 */
import { closestMean, columnScratch, medianOf } from '../kernels/coordinatewise.ts';
import { coordinatewise } from '../kernels/registry.ts';
import { diagonal, krumScores, orderByScore, pairwiseDistances } from './krum.ts';
import type { AggregationInput, AggregationResult, AggregationRule, RuleFactory } from '../types.ts';
import {
  checkInput,
  dotsBuffers,
  fillHealthFromDots,
  fillNormsAndCosines,
  initHealth,
  outputBuffer,
  precondition,
  readBoolean,
  readCompat,
  readOptionalNumber,
  Workspace,
} from '../util.ts';

export const createBulyan: RuleFactory = (options) => {
  const compat = readCompat('bulyan', options, ['garfield']);
  const mOption = readOptionalNumber('bulyan', options, 'm', { integer: true, min: 1 });
  if (mOption !== undefined && compat !== 'garfield') {
    throw new Error("bulyan: option 'm' only applies to compat 'garfield'");
  }
  const reuse = readBoolean('bulyan', options, 'reuseOutput', false);
  const ws = new Workspace();
  const rule: AggregationRule = {
    name: 'bulyan',
    aggregate(input: AggregationInput): AggregationResult {
      const d = checkInput('bulyan', input);
      const { vectors, f } = input;
      const n = vectors.length;
      precondition(n >= 4 * f + 3, 'bulyan', 'n >= 4f + 3', n, f);
      return compat === 'garfield'
        ? garfieldBulyan(input, d, mOption, ws, reuse)
        : canonicalBulyan(input, d, ws, reuse);
    },
  };
  return rule;
};

function canonicalBulyan(
  input: AggregationInput,
  d: number,
  ws: Workspace,
  reuse: boolean,
): AggregationResult {
  const { vectors, f } = input;
  const n = vectors.length;
  const { gram, dist } = pairwiseDistances(vectors, ws, true);
  const theta = n - 2 * f;
  const beta = theta - 2 * f;
  // 1. iterated Krum selection
  const remaining = ws.i32('remaining', n);
  for (let i = 0; i < n; i++) remaining[i] = i;
  let rCount = n;
  const scores = ws.f64('scores', n);
  const row = ws.f64('row', n);
  const selected = ws.i32('selected', theta);
  let tieBroken = false;
  for (let t = 0; t < theta; t++) {
    krumScores(dist, n, remaining, rCount, rCount - f - 2, scores, row);
    let bestPos = 0;
    let tied = false;
    for (let u = 1; u < rCount; u++) {
      // remaining[] stays in ascending index order, so strict < keeps ties on the lower index
      const su = scores[remaining[u]];
      const sb = scores[remaining[bestPos]];
      if (su < sb) {
        bestPos = u;
        tied = false;
      } else if (su === sb) tied = true;
    }
    tieBroken ||= tied;
    selected[t] = remaining[bestPos];
    for (let u = bestPos; u < rCount - 1; u++) remaining[u] = remaining[u + 1];
    rCount--;
  }
  // S in ascending worker order, so that coordinate ties go to the lower worker index; the rows are staged as
  // S then the others (the SIMD kernel uses the first θ rows, the health dots cover all n)
  const sel = Array.from(selected).sort((a, b) => a - b);
  const inS = new Set(sel);
  const order = [...sel];
  for (let i = 0; i < n; i++) if (!inS.has(i)) order.push(i);
  const rows = order.map((i) => vectors[i]);
  // 2. coordinate-wise: β closest to the median of S
  const rowCounts = ws.f64('rowCounts', n);
  rowCounts.fill(0);
  const update = outputBuffer(ws, reuse, d);
  const dots = dotsBuffers(ws, n);
  const spec = { kind: 'closest', centre: 'median', lower: false, t: 0, e: theta - beta } as const;
  coordinatewise(rows, theta, spec, update, rowCounts, dots, ws);
  const counts = ws.f64('counts', n);
  counts.fill(0);
  for (let t = 0; t < theta; t++) counts[order[t]] = rowCounts[t];
  const workers = initHealth(input.workerIds);
  for (const w of workers) {
    const c = counts[w.index];
    w.trust = c / d;
    w.weight = c / (beta * d);
    w.included = c > 0;
    if (!inS.has(w.index)) {
      w.reason = 'bulyan: not selected by iterated Krum';
      w.reasonCode = 'not-selected';
    } else if (c === 0) {
      w.reason = 'bulyan: trimmed in every coordinate';
      w.reasonCode = 'coordinates-unused';
    }
  }
  fillHealthFromDots(workers, dots, order, diagonal(gram, n));
  return { update, workers, diagnostics: { theta, beta, selected: Array.from(selected), tieBroken } };
}

function garfieldBulyan(
  input: AggregationInput,
  d: number,
  mOption: number | undefined,
  ws: Workspace,
  reuse: boolean,
): AggregationResult {
  const { vectors, f } = input;
  const n = vectors.length;
  const mMax = n - f - 2;
  const m = mOption ?? mMax;
  precondition(m >= 1 && m <= mMax, 'bulyan', `1 <= m <= n - f - 2 (m=${m})`, n, f);
  const { gram, dist } = pairwiseDistances(vectors, ws, false);
  const all = ws.i32('all', n);
  for (let i = 0; i < n; i++) all[i] = i;
  const scores = ws.f64('scores', n);
  // the reference sums the m (not n − f − 1) smallest distances to the others
  krumScores(dist, n, all, n, m, scores, ws.f64('row', n));
  const order = orderByScore(scores, n, ws.i32('order', n));
  let tieBroken = false;
  for (let r = 0; r < mMax && r + 1 < n; r++) tieBroken ||= scores[order[r]] === scores[order[r + 1]];
  const rowsCount = n - 2 * f - 2;
  const beta = rowsCount - 2 * f;
  // rows: row i = mean of workers order[i .. i + mᵢ − 1]
  const rowLen = new Int32Array(rowsCount);
  const rowData = ws.f64('rows', rowsCount * d);
  rowData.fill(0);
  for (let i = 0; i < rowsCount; i++) {
    const mi = Math.min(m, mMax - i);
    rowLen[i] = mi;
    const base = i * d;
    for (let t = 0; t < mi; t++) {
      const x = vectors[order[i + t]];
      for (let k = 0; k < d; k++) rowData[base + k] += x[k];
    }
    const inv = 1 / mi;
    for (let k = 0; k < d; k++) rowData[base + k] *= inv;
  }
  const s = columnScratch(ws, rowsCount);
  const rowUse = ws.f64('rowUse', rowsCount);
  rowUse.fill(0);
  // per coordinate, the ranks covered by the selected rows (row r covers ranks r .. r + mᵣ − 1)
  const cover = ws.i32('cover', n + 1);
  const rankUse = ws.f64('rankUse', n);
  rankUse.fill(0);
  const update = outputBuffer(ws, reuse, d);
  const used = ws.i32('used', 2);
  const rowHit = ws.f64('rowHit', rowsCount);
  for (let k = 0; k < d; k++) {
    for (let r = 0; r < rowsCount; r++) s.vals[r] = rowData[r * d + k];
    const med = medianOf(rowsCount, true, s, used);
    rowHit.fill(0);
    update[k] = closestMean(rowsCount, med, beta, s, rowHit);
    cover.fill(0);
    for (let r = 0; r < rowsCount; r++) {
      if (rowHit[r] === 0) continue;
      rowUse[r]++;
      cover[r]++;
      cover[r + rowLen[r]]--;
    }
    let c = 0;
    for (let q = 0; q < mMax; q++) {
      c += cover[q];
      if (c > 0) rankUse[q]++;
    }
  }
  const workers = initHealth(input.workerIds);
  const weight = new Float64Array(n);
  for (let r = 0; r < rowsCount; r++) {
    for (let t = 0; t < rowLen[r]; t++) weight[order[r + t]] += rowUse[r] / (d * beta * rowLen[r]);
  }
  for (let q = 0; q < n; q++) {
    const w = workers[order[q]];
    w.weight = weight[w.index];
    w.trust = rankUse[q] / d;
    w.included = w.weight > 0;
    if (!w.included) {
      w.reason = 'bulyan: not selected';
      w.reasonCode = 'not-selected';
    }
  }
  fillNormsAndCosines(workers, vectors, update, diagonal(gram, n));
  return {
    update,
    workers,
    diagnostics: {
      rows: rowsCount,
      beta,
      m,
      order: Array.from(order),
      scores: Array.from(scores),
      tieBroken,
    },
  };
}
