/**
 * The two plots of the robustness benchmark, drawn with ./raster.ts: a line chart (one line per series over
 * numeric x, vertical error bars) and a horizontal bar chart (one bar per label, optional dashed reference).
 */
import { Canvas, GLYPH_HEIGHT, type Rgb } from './raster.ts';

/** Distinguishable colours (Okabe–Ito, then greys). */
export const PALETTE: readonly Rgb[] = [
  [0, 114, 178],
  [213, 94, 0],
  [0, 158, 115],
  [204, 121, 167],
  [230, 159, 0],
  [86, 180, 233],
  [120, 120, 120],
  [0, 0, 0],
];

const BLACK: Rgb = [0, 0, 0];
const GRID: Rgb = [225, 225, 225];
const TEXT = 2; // text scale
const LINE_HEIGHT = (GLYPH_HEIGHT + 3) * TEXT;

export interface LinePoint {
  x: number;
  y: number;
  /** Half-length of the error bar (e.g. the std over seeds). */
  err?: number;
}

export interface LineSeries {
  label: string;
  points: LinePoint[];
  color?: Rgb;
  dashed?: boolean;
}

export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  /** x values with a tick (default: every x of the series). */
  xTicks?: number[];
}

/** Nice y range [lo, hi] with a step, covering the values (with error bars). */
function yRange(values: number[]): { lo: number; hi: number; step: number } {
  const finite = values.filter(Number.isFinite);
  let lo = finite.length ? Math.min(...finite) : 0;
  let hi = finite.length ? Math.max(...finite) : 1;
  if (hi - lo < 0.02) {
    lo -= 0.01;
    hi += 0.01;
  }
  const raw = (hi - lo) / 6;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((s) => s >= raw)!;
  return { lo: Math.floor(lo / step) * step, hi: Math.ceil(hi / step) * step, step };
}

const tickLabel = (v: number, step: number) => v.toFixed(Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));

/** The left and bottom axis lines, and the x label centred under the plot area. */
function drawAxes(c: Canvas, xLabel: string, left: number, top: number, right: number, bottom: number): void {
  c.line(left, top, left, bottom, BLACK, 2);
  c.line(left, bottom, right, bottom, BLACK, 2);
  c.text((left + right) / 2 - Canvas.textWidth(xLabel, TEXT) / 2, bottom + 40, xLabel, BLACK, TEXT);
}

/** Narrowest plot area (pixels) a line chart keeps, however long its legend. */
export const MIN_PLOT_AREA = 560;

/** Accuracy-style line chart: one line per series, markers, error bars, legend on the right. */
export function drawLineChart(chart: LineChart, minWidth = 1100, height = 620): Canvas {
  const legendWidth = Math.max(...chart.series.map((s) => Canvas.textWidth(s.label, TEXT)), 0) + 60;
  const left = 90;
  // a long legend must not squeeze the plot: the canvas grows instead
  const width = Math.max(minWidth, left + MIN_PLOT_AREA + legendWidth + 20);
  const c = new Canvas(width, height);
  const top = 30 + 3 * LINE_HEIGHT;
  const right = width - legendWidth - 20;
  const bottom = height - 70;
  c.text(left, 16, chart.title, BLACK, TEXT);
  c.text(left - 70, 16 + 1.5 * LINE_HEIGHT, chart.yLabel, BLACK, TEXT);

  const ys = chart.series.flatMap((s) => s.points.flatMap((p) => [p.y - (p.err ?? 0), p.y + (p.err ?? 0)]));
  const { lo, hi, step } = yRange(ys);
  const xTicks = chart.xTicks ?? [...new Set(chart.series.flatMap((s) => s.points.map((p) => p.x)))];
  const xMin = Math.min(...xTicks);
  const xMax = Math.max(...xTicks);
  const pad = (xMax - xMin || 1) * 0.08;
  const pxAxis = (x: number) => left + ((x - xMin + pad) / (xMax - xMin + 2 * pad)) * (right - left);
  const py = (y: number) => bottom - ((y - lo) / (hi - lo)) * (bottom - top);

  for (let v = lo; v <= hi + step / 2; v += step) {
    c.line(left, py(v), right, py(v), GRID);
    const label = tickLabel(v, step);
    c.text(left - 10 - Canvas.textWidth(label, TEXT), py(v) - GLYPH_HEIGHT, label, BLACK, TEXT);
  }
  for (const x of xTicks) {
    c.line(pxAxis(x), bottom, pxAxis(x), bottom + 6, BLACK, 2);
    const label = String(x);
    c.text(pxAxis(x) - Canvas.textWidth(label, TEXT) / 2, bottom + 12, label, BLACK, TEXT);
  }
  drawAxes(c, chart.xLabel, left, top, right, bottom);

  chart.series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    // series side by side around each x, so equal values and error bars stay apart
    const dodge = (i - (chart.series.length - 1) / 2) * 8;
    const px = (x: number) => pxAxis(x) + dodge;
    const pts = s.points.filter((p) => Number.isFinite(p.y)).sort((a, b) => a.x - b.x);
    for (let k = 1; k < pts.length; k++) {
      c.line(px(pts[k - 1].x), py(pts[k - 1].y), px(pts[k].x), py(pts[k].y), color, 3, s.dashed ? 8 : 0);
    }
    for (const p of pts) {
      const err = p.err ?? 0;
      if (err > 0) {
        c.line(px(p.x), py(p.y - err), px(p.x), py(p.y + err), color, 2);
        c.line(px(p.x) - 6, py(p.y - err), px(p.x) + 6, py(p.y - err), color, 2);
        c.line(px(p.x) - 6, py(p.y + err), px(p.x) + 6, py(p.y + err), color, 2);
      }
      c.fillRect(px(p.x) - 4, py(p.y) - 4, 9, 9, color);
    }
    const ly = top + i * LINE_HEIGHT * 1.4;
    c.line(right + 20, ly + GLYPH_HEIGHT, right + 48, ly + GLYPH_HEIGHT, color, 3, s.dashed ? 6 : 0);
    c.text(right + 56, ly, s.label, BLACK, TEXT);
  });
  return c;
}

export interface Bar {
  label: string;
  value: number;
  /** Text after the value (e.g. which cell). */
  note?: string;
  color?: Rgb;
}

export interface BarChart {
  title: string;
  xLabel: string;
  bars: Bar[];
  reference?: { label: string; value: number };
}

/** Narrowest bar area (pixels) a bar chart keeps, however long its labels and notes. */
export const MIN_BAR_AREA = 480;

/** Horizontal bars from the left axis; the axis starts at a round value below the smallest bar. */
export function drawBarChart(chart: BarChart, minWidth = 1100): Canvas {
  const barH = 34;
  const gap = 16;
  const top = 30 + 2 * LINE_HEIGHT;
  const height = top + chart.bars.length * (barH + gap) + 90;
  const labelWidth = Math.max(...chart.bars.map((b) => Canvas.textWidth(b.label, TEXT)), 0);
  const noteWidth = Math.max(...chart.bars.map((b) => Canvas.textWidth(` 0.000 ${b.note ?? ''}`, TEXT)), 0);
  // labels left of the bars and notes right of them must not squeeze the bars: the canvas grows instead
  const width = Math.max(minWidth, labelWidth + 30 + MIN_BAR_AREA + noteWidth + 20);
  const c = new Canvas(width, height);
  const left = labelWidth + 30;
  const right = width - noteWidth - 20;
  const bottom = top + chart.bars.length * (barH + gap);
  c.text(20, 16, chart.title, BLACK, TEXT);

  const values = [...chart.bars.map((b) => b.value), ...(chart.reference ? [chart.reference.value] : [])];
  const { lo, hi, step } = yRange(values);
  const axisLo = Math.max(0, lo - step);
  const px = (v: number) => left + ((v - axisLo) / (hi - axisLo)) * (right - left);
  for (let v = axisLo; v <= hi + step / 2; v += step) {
    c.line(px(v), top, px(v), bottom, GRID);
    const label = tickLabel(v, step);
    c.text(px(v) - Canvas.textWidth(label, TEXT) / 2, bottom + 10, label, BLACK, TEXT);
  }
  chart.bars.forEach((b, i) => {
    const y = top + i * (barH + gap) + gap / 2;
    const color = b.color ?? PALETTE[i % PALETTE.length];
    c.text(left - 12 - Canvas.textWidth(b.label, TEXT), y + barH / 2 - GLYPH_HEIGHT, b.label, BLACK, TEXT);
    if (Number.isFinite(b.value)) {
      c.fillRect(left, y, Math.max(1, px(b.value) - left), barH, color);
      c.text(
        px(b.value) + 8,
        y + barH / 2 - GLYPH_HEIGHT,
        `${b.value.toFixed(3)} ${b.note ?? ''}`,
        BLACK,
        TEXT,
      );
    }
  });
  drawAxes(c, chart.xLabel, left, top, right, bottom);
  if (chart.reference) {
    const x = px(chart.reference.value);
    c.line(x, top - 6, x, bottom, BLACK, 2, 6);
    const label = `${chart.reference.label} ${chart.reference.value.toFixed(3)}`;
    c.text(
      Math.min(x - Canvas.textWidth(label, TEXT) / 2, width - Canvas.textWidth(label, TEXT) - 4),
      top - LINE_HEIGHT - 4,
      label,
      BLACK,
      TEXT,
    );
  }
  return c;
}
