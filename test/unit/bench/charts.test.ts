import { expect } from 'chai';
import { drawBarChart, drawLineChart, MIN_BAR_AREA, MIN_PLOT_AREA } from '../../../bench/support/charts.ts';
import type { Canvas } from '../../../bench/support/raster.ts';

/** The longest horizontal run of pixels of one colour, over all rows. */
function longestRun(c: Canvas, [r, g, b]: readonly [number, number, number]): number {
  let best = 0;
  for (let y = 0; y < c.height; y++) {
    let run = 0;
    for (let x = 0; x < c.width; x++) {
      const i = (y * c.width + x) * 4;
      run = c.pixels[i] === r && c.pixels[i + 1] === g && c.pixels[i + 2] === b ? run + 1 : 0;
      best = Math.max(best, run);
    }
  }
  return best;
}

describe('bench charts: bar chart', () => {
  it('keeps its bar area when labels and notes are long (the canvas grows instead)', () => {
    const blue: [number, number, number] = [10, 20, 200];
    const long = (s: string) => `${s} ${'x'.repeat(60)}`;
    const chart = drawBarChart({
      title: 'worst case per rule',
      xLabel: 'final test accuracy',
      bars: [
        {
          label: long('default (flag, r n-2f, median-norm, sign -0.3)'),
          value: 0.642,
          note: long('cell'),
          color: blue,
        },
        { label: 'trimmedMean+clip+nnm', value: 0.628, note: long('cell') },
      ],
      reference: { label: 'lowest clean mean', value: 0.807 },
    });
    expect(chart.width).to.be.above(1100);
    // 0.642 on an axis that starts below 0.628 and reaches 0.807: a good part of the bar area
    expect(longestRun(chart, blue)).to.be.at.least(MIN_BAR_AREA / 5);
  });

  it('keeps the requested width when everything fits', () => {
    const chart = drawBarChart({ title: 't', xLabel: 'x', bars: [{ label: 'a', value: 0.5 }] });
    expect(chart.width).to.equal(1100);
  });
});

describe('bench charts: line chart', () => {
  const line = (label: string) => ({
    title: 'accuracy vs f',
    yLabel: 'test accuracy',
    xLabel: 'f',
    series: [
      {
        label,
        color: [10, 20, 200] as [number, number, number],
        points: [
          { x: 2, y: 0.7 },
          { x: 3, y: 0.7 },
        ],
      },
      { label: 'clean mean', dashed: true, points: [{ x: 2, y: 0.8 }] },
    ],
  });

  it('keeps its plot area when the legend is long (the canvas grows instead)', () => {
    const chart = drawLineChart(line(`default (flag, r n-2f, median-norm, sign -0.3) ${'x'.repeat(60)}`));
    expect(chart.width).to.be.above(1100);
    // the series is flat from the first x to the last: most of the plot area's width
    expect(longestRun(chart, [10, 20, 200])).to.be.at.least(MIN_PLOT_AREA / 2);
  });

  it('keeps the requested width when everything fits', () => {
    expect(drawLineChart(line('default')).width).to.equal(1100);
  });
});
