// @ts-check
/**
 * The job page: one EventSource on /jobs/<id>/events (history first, then live rounds, then an end event), and
 * everything drawn from the reports held in the page. The only timer redraws the alerts, so a stall shows while
 * nothing arrives; it never asks the server anything.
 */
import {
  accuracySeries,
  addReport,
  alerts,
  compressionView,
  heatMap,
  lossSeries,
  num,
  phaseSeries,
  workerSeries,
} from './model.js';
import { drawHeatMap } from './heatmap.js';

/** uPlot is loaded by a classic script tag before this module (vendor/uPlot.iife.min.js). */
const UPlot = /** @type {typeof import('uplot')} */ (/** @type {any} */ (globalThis).uPlot);

/** @typedef {import('./model.js').Report} Report */
/**
 * @typedef {object} JobSummary
 * @property {string} id
 * @property {string} state
 * @property {number} round
 * @property {number} totalRounds
 * @property {number} updatedAt
 * @property {string} [error]
 */

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const HEAT_WINDOW = 200;
const TERMINAL = ['completed', 'failed', 'cancelled'];

const jobId = /** @type {string} */ (document.body.dataset['job']);
/** @type {Report[]} */
let history = [];
/** @type {JobSummary | undefined} */
let job;
/** Server clock − page clock, from the hello event (reports carry the server's finish times). */
let clockOffsetMs = 0;
let ended = false;
let drawQueued = false;

/** @param {string} id */
function byId(id) {
  return /** @type {HTMLElement} */ (document.getElementById(id));
}

/** @type {Map<string, { plot: import('uplot'), key: string }>} */
const charts = new Map();

/**
 * Creates or updates the uPlot chart in figure `id`; rebuilt when its series change.
 * @param {string} id
 * @param {string[]} names series names after x
 * @param {import('uplot').AlignedData} data
 * @param {{ yLabel: string, points?: boolean, colors?: string[] }} style
 */
function chart(id, names, data, style) {
  const figure = byId(id);
  const host = /** @type {HTMLElement} */ (figure.querySelector('.plot'));
  const key = names.join('\u0000');
  figure.dataset['points'] = String(data[0].length);
  const existing = charts.get(id);
  if (existing && existing.key === key) {
    existing.plot.setData(data);
    return;
  }
  existing?.plot.destroy();
  const width = Math.max(host.clientWidth, 300);
  const plot = new UPlot(
    {
      width,
      height: 220,
      scales: { x: { time: false } },
      axes: [{ label: 'round' }, { label: style.yLabel, size: 60 }],
      series: [
        { label: 'round' },
        ...names.map((label, i) => ({
          label,
          stroke: style.colors?.[i] ?? PALETTE[i % PALETTE.length],
          width: 1.5,
          spanGaps: style.points === true,
          points: { show: style.points === true },
        })),
      ],
    },
    data,
    host,
  );
  charts.set(id, { plot, key });
}

function draw() {
  drawQueued = false;
  const loss = lossSeries(history);
  chart('loss-chart', ['train loss', 'evaluation loss'], loss, { yLabel: 'loss', points: true });
  chart('accuracy-chart', ['accuracy %'], accuracySeries(history), { yLabel: '%', points: true });

  const map = heatMap(history, HEAT_WINDOW);
  drawHeatMap(byId('heat-trust'), map, 'trust');
  drawHeatMap(byId('heat-weight'), map, 'weight');
  drawFlagSummary(map);

  const norms = workerSeries(history, 'norm');
  chart('norm-chart', norms.workers, norms.data, { yLabel: '‖g‖' });
  const cosines = workerSeries(history, 'cosine');
  chart('cosine-chart', cosines.workers, cosines.data, { yLabel: 'cos' });

  const phases = phaseSeries(history);
  byId('timings').hidden = !phases;
  if (phases)
    chart(
      'phase-chart',
      phases.phases.map((p) => p.replace(/Ms$/, '')),
      phases.data,
      { yLabel: 'ms' },
    );

  drawCompression();
  drawStatus();
  drawAlerts();
}

function scheduleDraw() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(draw);
}

/** A list a screen reader (and a test) can read: each worker's flagged cells in the rounds shown. */
function drawFlagSummary(/** @type {ReturnType<typeof heatMap>} */ map) {
  const list = byId('flag-summary');
  const declared = new Map();
  for (const r of history.slice(-HEAT_WINDOW))
    for (const w of [...r.workers, ...r.missing]) if (w.byzantine) declared.set(w.name, w.byzantine);
  list.replaceChildren(
    ...map.workers.map((worker) => {
      const mine = map.cells.filter((c) => c.worker === worker);
      const flagged = mine.filter((c) => c.status === 'flagged').length;
      const missing = mine.filter((c) => c.status === 'missing').length;
      const li = document.createElement('li');
      li.dataset['worker'] = worker;
      li.dataset['flagged'] = String(flagged);
      li.textContent =
        `${worker}: flagged in ${flagged} of ${mine.length} rounds shown` +
        (missing ? `, missing in ${missing}` : '') +
        (declared.has(worker) ? ` (declares itself Byzantine: ${declared.get(worker)})` : '');
      return li;
    }),
  );
}

function drawCompression() {
  const view = compressionView(history);
  const section = byId('compression');
  section.hidden = !view;
  if (!view) return;
  byId('compression-summary').textContent =
    `round ${view.round}: plan ${view.planId}${view.nextPlanId ? ` (next: ${view.nextPlanId})` : ''}, ` +
    `${(view.bytes / 1e3).toFixed(1)} kB from ${view.pushes} pushes, ${view.ratio.toFixed(1)}× smaller than fp32` +
    (Number.isFinite(view.budgetUsed) ? `, ${(view.budgetUsed * 100).toFixed(0)}% of the error budget` : '');
  const max = Math.max(1, ...view.layers.map((l) => l.bytes));
  const rows = view.layers.map((l) => {
    const tr = document.createElement('tr');
    const bar = document.createElement('div');
    bar.className = 'bar';
    bar.style.width = `${(100 * l.bytes) / max}%`;
    for (const text of [String(l.layer), l.setting, (l.bytes / 1e3).toFixed(1)]) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.appendChild(td);
    }
    const td = document.createElement('td');
    td.className = 'bar-cell';
    td.appendChild(bar);
    tr.appendChild(td);
    return tr;
  });
  byId('compression-layers').replaceChildren(...rows);
}

function drawStatus() {
  if (!job) return;
  const last = history[history.length - 1];
  const acc = [...history].reverse().find((r) => Number.isFinite(num(r.testAccuracy)));
  byId('state').textContent = job.state;
  byId('state').dataset['state'] = job.state;
  byId('progress').textContent =
    `round ${last ? last.round + 1 : 0}/${job.totalRounds}` +
    (last ? ` · rule ${last.rule}` : '') +
    (acc ? ` · accuracy ${(num(acc.testAccuracy) * 100).toFixed(1)}% (round ${acc.round + 1})` : '') +
    (job.error ? ` · error: ${job.error}` : '');
}

function drawAlerts() {
  const last = history[history.length - 1];
  const since = last ? last.finishedAtMs : (job?.updatedAt ?? Date.now() + clockOffsetMs);
  const list = alerts(history, {
    running: job?.state === 'running' && !ended,
    sinceLastMs: Date.now() + clockOffsetMs - since,
  });
  const box = byId('alerts');
  box.replaceChildren(
    ...list.map((a) => {
      const li = document.createElement('li');
      li.className = `alert alert-${a.kind}`;
      li.dataset['kind'] = a.kind;
      if (a.worker) li.dataset['worker'] = a.worker;
      li.textContent = a.message;
      return li;
    }),
  );
}

/** @param {string} text @param {string} state */
function connection(text, state) {
  const node = byId('connection');
  node.textContent = text;
  node.dataset['state'] = state;
}

function connect() {
  const source = new EventSource(`/jobs/${encodeURIComponent(jobId)}/events`);
  source.addEventListener('hello', (e) => {
    const hello = JSON.parse(/** @type {MessageEvent} */ (e).data);
    clockOffsetMs = hello.serverNow - Date.now();
    job = hello.job;
    history = [];
    connection('live', 'live');
    scheduleDraw();
  });
  source.addEventListener('round', (e) => {
    history = addReport(history, JSON.parse(/** @type {MessageEvent} */ (e).data));
    scheduleDraw();
  });
  source.addEventListener('job', (e) => {
    job = JSON.parse(/** @type {MessageEvent} */ (e).data);
    scheduleDraw();
  });
  source.addEventListener('end', (e) => {
    job = JSON.parse(/** @type {MessageEvent} */ (e).data);
    ended = true;
    source.close();
    connection(`ended (${job?.state})`, 'ended');
    scheduleDraw();
  });
  source.addEventListener('error', () => {
    // EventSource reconnects by itself; the replay that follows restarts the history (hello).
    if (!ended) connection('reconnecting…', 'lost');
  });
}

setInterval(() => {
  if (job && !TERMINAL.includes(job.state) && !ended) drawAlerts();
}, 1000);
connect();
