/**
 * SVG charts of bench figures, drawn by Vega-Lite (compiled to Vega, rendered headless
 * by vega's own SVG renderer: no browser, no canvas). Two kinds:
 *   run      one measure of one run: a bar per path at its median, a dot per round
 *   history  one measure over recorded runs: a line per path through its medians
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { Figure, RunRecord } from './results.js';
import { groups } from './results.js';

async function render(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const title = (f: Figure) => `${f.part}: ${f.measure} (${f.unit}, ${f.better} is better)`;

export function runChart(figures: Figure[], date: string): Promise<string> {
  const f = figures[0]!;
  const bars = figures.map((x) => ({ path: x.path, median: x.median }));
  const dots = figures.flatMap((x) => x.samples.map((v, i) => ({ path: x.path, value: v, round: i + 1 })));
  return render({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: title(f), subtitle: `${date}: medians (bars) and rounds (dots)` },
    width: Math.max(240, 90 * figures.length),
    height: 240,
    layer: [
      {
        data: { values: bars },
        mark: { type: 'bar', color: '#4c78a8' },
        encoding: {
          x: { field: 'path', type: 'nominal', sort: null, title: null, axis: { labelAngle: 0, labelLimit: 160 } },
          y: { field: 'median', type: 'quantitative', title: f.unit },
        },
      },
      {
        data: { values: bars },
        mark: { type: 'text', dy: -14, fontSize: 11 },
        encoding: { x: { field: 'path', type: 'nominal', sort: null }, y: { field: 'median', type: 'quantitative' }, text: { field: 'median', type: 'quantitative', format: '.3~s' } },
      },
      {
        data: { values: dots },
        mark: { type: 'point', filled: true, color: '#222', size: 25 },
        encoding: { x: { field: 'path', type: 'nominal', sort: null }, y: { field: 'value', type: 'quantitative' } },
      },
    ],
  });
}

export function historyChart(runs: RunRecord[], key: string): Promise<string> {
  const points = runs.flatMap((r) => (groups(r.figures).get(key) ?? []).map((f) => ({ date: r.date, path: f.path, median: f.median })));
  const last = runs.flatMap((r) => groups(r.figures).get(key) ?? []).at(-1);
  return render({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: last ? title(last) : key, subtitle: `medians of each recorded run (${new Set(points.map((x) => x.date)).size} runs)` },
    width: 480,
    height: 240,
    data: { values: points },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'date', type: 'temporal', title: null, axis: { format: '%Y-%m-%d %H:%M', labelAngle: 0 } },
      y: { field: 'median', type: 'quantitative', title: last?.unit ?? '' },
      color: { field: 'path', type: 'nominal', title: 'path' },
    },
  });
}
