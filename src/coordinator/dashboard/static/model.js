// @ts-check
/**
 * The dashboard's pure logic: what the page shows, computed from round reports alone (no DOM, no clock, no I/O),
 * so the browser and the unit tests run the same code. Reports arrive as JSON, where NaN was written as null.
 */

/**
 * @typedef {object} WorkerRow
 * @property {string} workerId
 * @property {string} name
 * @property {number} rank
 * @property {boolean} included
 * @property {number | null} trust
 * @property {number | null} weight
 * @property {number | null} norm
 * @property {number | null} cosine
 * @property {string} reason
 * @property {string} byzantine
 */

/**
 * @typedef {object} Compression
 * @property {string} planId
 * @property {string[]} settings
 * @property {number[]} layerBytes
 * @property {number} bytes
 * @property {number} pushes
 * @property {number | null} ratio
 * @property {number | null} budgetUsed
 * @property {string} nextPlanId
 */

/**
 * @typedef {object} Report
 * @property {string} jobId
 * @property {number} round 0-based
 * @property {string} rule
 * @property {WorkerRow[]} workers
 * @property {WorkerRow[]} missing
 * @property {number | null} trainLoss
 * @property {number | null} testAccuracy
 * @property {number | null} testLoss
 * @property {Record<string, number>} timings
 * @property {number} finishedAtMs
 * @property {string[]} [divergence]
 * @property {number} [rollbacks]
 * @property {boolean} [replay]
 * @property {Compression} [compression]
 */

/** @param {unknown} x a JSON number (NaN arrives as null) */
export function num(x) {
  return typeof x === 'number' ? x : NaN;
}

/**
 * Adds a report to the history (ordered by round). After a divergence-guard rollback the job reports rounds
 * again: a report for a round already held replaces it and drops every later one (they were rolled back).
 * @param {Report[]} history
 * @param {Report} report
 * @returns {Report[]}
 */
export function addReport(history, report) {
  const last = history[history.length - 1];
  if (!last || report.round > last.round) return [...history, report];
  return [...history.filter((r) => r.round < report.round), report];
}

/**
 * How a worker fared in one round: 'ok' (its gradient went in, nothing said against it), 'flagged' (excluded,
 * or the rule gave a reason against it), 'missing' (no usable gradient: late, rejected at the wire, dropped).
 * @typedef {'ok' | 'flagged' | 'missing'} CellStatus
 */

/**
 * @typedef {object} HeatCell
 * @property {string} worker
 * @property {number} round 1-based, as the CLI prints rounds
 * @property {CellStatus} status
 * @property {number} trust NaN when missing
 * @property {number} weight
 * @property {string} reason
 */

/** @param {WorkerRow} w */
export function isFlagged(w) {
  return !w.included || Boolean(w.reason);
}

/**
 * The workers × rounds grid of the last `window` rounds. Rows are workers by rank then name; a worker absent
 * from a round (not yet joined, or gone) has no cell there.
 * @param {Report[]} history
 * @param {number} [window]
 * @returns {{ workers: string[], rounds: number[], cells: HeatCell[] }}
 */
export function heatMap(history, window = 200) {
  const shown = history.slice(-window);
  /** @type {HeatCell[]} */
  const cells = [];
  for (const r of shown) {
    for (const w of r.workers) {
      cells.push({
        worker: w.name,
        round: r.round + 1,
        status: isFlagged(w) ? 'flagged' : 'ok',
        trust: num(w.trust),
        weight: num(w.weight),
        reason: w.reason,
      });
    }
    for (const w of r.missing) {
      cells.push({
        worker: w.name,
        round: r.round + 1,
        status: 'missing',
        trust: NaN,
        weight: NaN,
        reason: w.reason,
      });
    }
  }
  return { workers: workerOrder(shown), rounds: shown.map((r) => r.round + 1), cells };
}

/**
 * The workers that appear in these reports (delivered or missing), by rank then name.
 * @param {Report[]} history
 */
export function workerOrder(history) {
  /** @type {Map<string, number>} */
  const rankOf = new Map();
  for (const r of history) for (const w of [...r.workers, ...r.missing]) rankOf.set(w.name, w.rank);
  return [...rankOf.keys()].sort((a, b) => (rankOf.get(a) ?? 0) - (rankOf.get(b) ?? 0) || a.localeCompare(b));
}

/**
 * Columns for uPlot: x = 1-based round, then one array per series (null where a value is missing).
 * @param {Report[]} history
 */
export function lossSeries(history) {
  return /** @type {[number[], (number | null)[], (number | null)[]]} */ ([
    history.map((r) => r.round + 1),
    history.map((r) => finiteOrNull(r.trainLoss)),
    history.map((r) => finiteOrNull(r.testLoss)),
  ]);
}

/** Accuracy in percent at the rounds that were evaluated. @param {Report[]} history */
export function accuracySeries(history) {
  const evaluated = history.filter((r) => Number.isFinite(num(r.testAccuracy)));
  return /** @type {[number[], (number | null)[]]} */ ([
    evaluated.map((r) => r.round + 1),
    evaluated.map((r) => num(r.testAccuracy) * 100),
  ]);
}

/**
 * One series per worker of a per-worker field (norm or cosine) over rounds; null where the worker did not deliver.
 * @param {Report[]} history
 * @param {'norm' | 'cosine'} field
 * @returns {{ workers: string[], data: [number[], ...(number | null)[][]] }}
 */
export function workerSeries(history, field) {
  const workers = workerOrder(history);
  const index = new Map(workers.map((w, i) => [w, i]));
  const columns = workers.map(() => history.map(() => /** @type {number | null} */ (null)));
  history.forEach((r, t) => {
    for (const w of r.workers) columns[/** @type {number} */ (index.get(w.name))][t] = finiteOrNull(w[field]);
  });
  return { workers, data: [history.map((r) => r.round + 1), ...columns] };
}

/**
 * The round's time split into its phases (every timing but the total), in milliseconds.
 * @param {Report[]} history
 * @returns {{ phases: string[], data: [number[], ...(number | null)[][]] } | undefined}
 */
export function phaseSeries(history) {
  /** @type {string[]} */
  const phases = [];
  for (const r of history)
    for (const k of Object.keys(r.timings ?? {})) if (k !== 'totalMs' && !phases.includes(k)) phases.push(k);
  if (phases.length === 0) return undefined;
  return {
    phases,
    data: [
      history.map((r) => r.round + 1),
      ...phases.map((p) => history.map((r) => finiteOrNull(r.timings?.[p]))),
    ],
  };
}

/** @param {unknown} x */
function finiteOrNull(x) {
  const v = num(x);
  return Number.isFinite(v) ? v : null;
}

/**
 * @typedef {object} Alert
 * @property {'flagged' | 'stall' | 'divergence'} kind
 * @property {string} message
 * @property {string} [worker]
 */

/** Rounds the flag-rate rule looks back over, and the share above which it fires. */
export const FLAG_WINDOW = 50;
export const FLAG_SHARE = 0.5;
/** A smoothed training loss this many times its best so far is called rising sharply. */
export const LOSS_RISE_FACTOR = 2;
/** Rounds averaged for the smoothed loss. */
export const LOSS_SMOOTHING = 10;
/** No report for this long (at least) while running is a stall; longer if rounds are slow (stallAfterMs). */
export const MIN_STALL_MS = 10_000;

/**
 * How long without a report counts as stalled: five times the median round time of the last 20 rounds, and at
 * least MIN_STALL_MS.
 * @param {Report[]} history
 */
export function stallAfterMs(history) {
  const totals = history
    .slice(-20)
    .map((r) => num(r.timings?.totalMs))
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  const median = totals.length ? totals[Math.floor(totals.length / 2)] : 0;
  return Math.max(MIN_STALL_MS, 5 * median);
}

/**
 * The alerts the history raises now.
 * - flagged: a worker flagged in more than FLAG_SHARE of the last FLAG_WINDOW rounds (of the rounds held, when
 *   fewer); a missing round counts against it only if it was rejected, not if it was late.
 * - stall: the job is running and no round closed for longer than stallAfterMs (`sinceLastMs` is measured by the
 *   caller: now − the last report's finish time, or − the job's start before any report).
 * - divergence: the last training loss is not finite, the divergence guard spoke in the last round or rolled the
 *   job back, or the smoothed loss rose above LOSS_RISE_FACTOR × its best.
 * @param {Report[]} history
 * @param {{ running: boolean, sinceLastMs: number }} clock
 * @returns {Alert[]}
 */
export function alerts(history, clock) {
  /** @type {Alert[]} */
  const out = [];
  const recent = history.slice(-FLAG_WINDOW);
  /** @type {Map<string, number>} */
  const flaggedCount = new Map();
  for (const r of recent) {
    for (const w of r.workers)
      if (isFlagged(w)) flaggedCount.set(w.name, (flaggedCount.get(w.name) ?? 0) + 1);
    for (const w of r.missing)
      if (/^rejected/.test(w.reason)) flaggedCount.set(w.name, (flaggedCount.get(w.name) ?? 0) + 1);
  }
  for (const [worker, count] of [...flaggedCount].sort((a, b) => a[0].localeCompare(b[0]))) {
    if (count > FLAG_SHARE * recent.length)
      out.push({
        kind: 'flagged',
        worker,
        message: `${worker} flagged in ${count} of the last ${recent.length} rounds${lastReason(recent, worker)}`,
      });
  }

  const limit = stallAfterMs(history);
  if (clock.running && clock.sinceLastMs > limit)
    out.push({
      kind: 'stall',
      message: `no round has closed for ${Math.round(clock.sinceLastMs / 1000)} s (stall after ${Math.round(limit / 1000)} s)`,
    });

  const last = history[history.length - 1];
  if (last) {
    const loss = num(last.trainLoss);
    if (!Number.isFinite(loss) && last.workers.some((w) => w.included))
      out.push({ kind: 'divergence', message: `round ${last.round + 1}: training loss is ${loss}` });
    if (last.divergence?.length)
      out.push({
        kind: 'divergence',
        message: `round ${last.round + 1}: divergence guard: ${last.divergence.join('; ')}`,
      });
    if ((last.rollbacks ?? 0) > 0)
      out.push({
        kind: 'divergence',
        message: `${last.rollbacks} rollback(s) by the divergence guard; rule now ${last.rule}`,
      });
    const rise = lossRise(history);
    if (rise)
      out.push({
        kind: 'divergence',
        message: `training loss rising: ${rise.now.toPrecision(3)} (mean of the last ${LOSS_SMOOTHING} rounds) vs best ${rise.best.toPrecision(3)}`,
      });
  }
  return out;
}

/**
 * The smoothed training loss now and its best so far, when now > LOSS_RISE_FACTOR × best.
 * @param {Report[]} history
 * @returns {{ now: number, best: number } | undefined}
 */
export function lossRise(history) {
  const losses = history.map((r) => num(r.trainLoss)).filter(Number.isFinite);
  if (losses.length < 2 * LOSS_SMOOTHING) return undefined;
  let sum = 0;
  let best = Infinity;
  let now = NaN;
  for (let i = 0; i < losses.length; i++) {
    sum += losses[i];
    if (i >= LOSS_SMOOTHING) sum -= losses[i - LOSS_SMOOTHING];
    if (i >= LOSS_SMOOTHING - 1) {
      now = sum / LOSS_SMOOTHING;
      best = Math.min(best, now);
    }
  }
  return now > LOSS_RISE_FACTOR * best ? { now, best } : undefined;
}

/** @param {Report[]} recent @param {string} worker */
function lastReason(recent, worker) {
  for (let i = recent.length - 1; i >= 0; i--) {
    const w = [...recent[i].workers, ...recent[i].missing].find((x) => x.name === worker);
    if (w?.reason) return ` (last: ${w.reason})`;
  }
  return '';
}

/**
 * Compressed traffic of the last compressed round: per layer its bytes and its setting under the plan.
 * @param {Report[]} history
 */
export function compressionView(history) {
  for (let i = history.length - 1; i >= 0; i--) {
    const c = history[i].compression;
    if (!c) continue;
    return {
      round: history[i].round + 1,
      planId: c.planId,
      nextPlanId: c.nextPlanId,
      ratio: num(c.ratio),
      budgetUsed: num(c.budgetUsed),
      bytes: c.bytes,
      pushes: c.pushes,
      layers: c.layerBytes.map((bytes, layer) => ({ layer, bytes, setting: c.settings[layer] ?? '' })),
    };
  }
  return undefined;
}
