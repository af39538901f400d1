// @ts-check
/**
 * Draws the workers × rounds heat map as SVG: one rect per cell, coloured by trust or weight, flagged cells
 * outlined and crossed, missing cells grey. Each cell carries data-worker, data-round, data-status and
 * data-flagged, and a <title> with the reason (shown on hover).
 */

const SVG = 'http://www.w3.org/2000/svg';
const CELL_H = 16;
const LABEL_W = 110;
const HEADER_H = 18;

/**
 * @param {SVGElement} parent
 * @param {string} tag
 * @param {Record<string, string | number>} attrs
 */
function el(parent, tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  parent.appendChild(node);
  return node;
}

/** Light to dark blue as v goes 0 → 1. @param {number} v */
function shade(v) {
  const t = Math.max(0, Math.min(1, v));
  const light = Math.round(96 - 60 * t);
  return `hsl(212 70% ${light}%)`;
}

/**
 * @param {HTMLElement} container
 * @param {ReturnType<typeof import('./model.js').heatMap>} map
 * @param {'trust' | 'weight'} field
 */
export function drawHeatMap(container, map, field) {
  const { workers, rounds, cells } = map;
  const width = Math.max(container.clientWidth, 320);
  const cellW = rounds.length ? Math.max(2, Math.min(24, (width - LABEL_W) / rounds.length)) : 0;
  const height = HEADER_H + CELL_H * workers.length;
  const svg = /** @type {SVGSVGElement} */ (document.createElementNS(SVG, 'svg'));
  svg.setAttribute('width', String(LABEL_W + cellW * rounds.length));
  svg.setAttribute('height', String(height));
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `${field} per worker and round`);
  svg.dataset['field'] = field;

  const row = new Map(workers.map((w, i) => [w, i]));
  const col = new Map(rounds.map((r, i) => [r, i]));
  workers.forEach((w, i) => {
    const label = el(svg, 'text', { x: 4, y: HEADER_H + CELL_H * i + CELL_H - 4, class: 'hm-label' });
    label.textContent = w;
  });
  // Round numbers along the top, about every 60 px.
  const every = Math.max(1, Math.ceil(60 / Math.max(cellW, 1)));
  rounds.forEach((r, i) => {
    if (i % every !== 0) return;
    const t = el(svg, 'text', { x: LABEL_W + cellW * i, y: HEADER_H - 5, class: 'hm-round' });
    t.textContent = String(r);
  });
  const maxWeight = Math.max(1e-12, ...cells.map((c) => (Number.isFinite(c.weight) ? c.weight : 0)));
  for (const c of cells) {
    const x = LABEL_W + cellW * /** @type {number} */ (col.get(c.round));
    const y = HEADER_H + CELL_H * /** @type {number} */ (row.get(c.worker));
    const value = field === 'trust' ? c.trust : c.weight / maxWeight;
    const rect = el(svg, 'rect', {
      x,
      y,
      width: Math.max(cellW - 1, 1),
      height: CELL_H - 1,
      class: `hm-cell hm-${c.status}`,
      fill: c.status === 'missing' ? '#bbb' : shade(value),
      'data-worker': c.worker,
      'data-round': c.round,
      'data-status': c.status,
      'data-flagged': String(c.status === 'flagged'),
    });
    const title = el(rect, 'title', {});
    const numbers =
      c.status === 'missing' ? '' : ` — trust ${c.trust.toFixed(3)}, weight ${c.weight.toPrecision(3)}`;
    title.textContent = `${c.worker}, round ${c.round}: ${c.status}${c.reason ? ` (${c.reason})` : ''}${numbers}`;
    if (c.status === 'flagged' && cellW >= 6)
      el(svg, 'path', {
        d: `M${x + 1} ${y + 1}L${x + cellW - 2} ${y + CELL_H - 2}`,
        class: 'hm-cross',
      });
  }
  container.replaceChildren(svg);
}
