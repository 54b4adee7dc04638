/**
 * The figures of one `npm run bench`: every measure of every path with its rounds, kept
 * as JSON (bench/results/<stamp>.json) and drawn as SVG charts beside it
 * (bench/results/<stamp>/<part>-<measure>.svg), and the history of every measure over
 * the recorded runs (docs/bench/<part>-<measure>.svg, shown in docs/bench.md).
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { historyChart, runChart } from './charts.js';
import { median } from './procs.js';

export interface Figure {
  /** The bench part: mesh, dns, overlay, control... */
  part: string;
  /** What was measured, e.g. 'TCP throughput'; one chart per part and measure. */
  measure: string;
  unit: string;
  /** Which way is better, for the reader of a chart. */
  better: 'higher' | 'lower';
  /** The path measured: direct, haproxy (1 thread), swarmnet mesh... */
  path: string;
  /** One value per round. */
  samples: number[];
  median: number;
}

export interface RunRecord {
  /** ISO time the run started. */
  date: string;
  node: string;
  kernel: string;
  cpus: number;
  /** The command line's options. */
  options: Record<string, string | boolean | undefined>;
  figures: Figure[];
}

export const RESULTS_DIR = 'bench/results';
export const HISTORY_DIR = 'docs/bench';

/** `part-measure` as a file name. */
export function slug(part: string, measure: string): string {
  return `${part}-${measure}`.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

export class Results {
  readonly run: RunRecord;

  constructor(options: RunRecord['options'], now = new Date()) {
    this.run = { date: now.toISOString(), node: process.version, kernel: release(), cpus: cpus().length, options, figures: [] };
  }

  add(f: Omit<Figure, 'median'>): void {
    if (f.samples.length === 0) return;
    this.run.figures.push({ ...f, median: median(f.samples) });
  }

  /** Writes the JSON and this run's charts under `dir`; redraws the history under `historyDir`. Returns the files written. */
  async save(dir = RESULTS_DIR, historyDir = HISTORY_DIR): Promise<string[]> {
    if (this.run.figures.length === 0) return [];
    const stamp = this.run.date.replace(/[:.]/g, '-');
    const written: string[] = [];
    mkdirSync(join(dir, stamp), { recursive: true });
    const json = join(dir, `${stamp}.json`);
    writeFileSync(json, JSON.stringify(this.run, null, 2) + '\n');
    written.push(json);
    for (const [key, figures] of groups(this.run.figures)) {
      const file = join(dir, stamp, `${key}.svg`);
      writeFileSync(file, await runChart(figures, this.run.date));
      written.push(file);
    }
    const runs = loadRuns(dir);
    mkdirSync(historyDir, { recursive: true });
    for (const key of groups(this.run.figures).keys()) {
      const file = join(historyDir, `${key}.svg`);
      writeFileSync(file, await historyChart(runs, key));
      written.push(file);
    }
    return written;
  }
}

/** The run in progress: every bench part adds its figures here, `bench/run.ts` saves them at the end. */
export const results = new Results({});

/** Figures by `slug(part, measure)`, in the order they were added. */
export function groups(figures: Figure[]): Map<string, Figure[]> {
  const out = new Map<string, Figure[]>();
  for (const f of figures) {
    const key = slug(f.part, f.measure);
    out.set(key, [...(out.get(key) ?? []), f]);
  }
  return out;
}

/** Every recorded run in `dir`, oldest first; files that are not runs are skipped. */
export function loadRuns(dir = RESULTS_DIR): RunRecord[] {
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  const runs: RunRecord[] = [];
  for (const n of names.sort()) {
    try {
      const r = JSON.parse(readFileSync(join(dir, n), 'utf8')) as RunRecord;
      if (typeof r.date === 'string' && Array.isArray(r.figures)) runs.push(r);
    } catch {
      // not a run record
    }
  }
  return runs.sort((a, b) => a.date.localeCompare(b.date));
}
