/**
 * What `npm run bench` leaves behind: its figures as JSON, a chart per measure of the run
 * and the history of each measure over the recorded runs, as SVG that a real renderer
 * (rsvg-convert, Debian's librsvg2-bin) turns into an image.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRuns, Results, type RunRecord } from '../../bench/lib/results.js';

const dir = mkdtempSync(join(tmpdir(), 'swarmnet-bench-results-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const results = join(dir, 'results');
const history = join(dir, 'history');

/** Width and height of a PNG, from its IHDR chunk. */
function pngSize(file: string): { width: number; height: number } {
  const b = readFileSync(file);
  if (!b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) throw new Error(`${file} is not a PNG`);
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}

function record(date: string, direct: number[], mesh: number[]): Results {
  const r = new Results({ only: 'mesh', rounds: '3' }, new Date(date));
  r.add({ part: 'mesh', measure: 'TCP throughput', unit: 'Gbit/s', better: 'higher', path: 'direct', samples: direct });
  r.add({ part: 'mesh', measure: 'TCP throughput', unit: 'Gbit/s', better: 'higher', path: 'swarmnet mesh', samples: mesh });
  r.add({ part: 'mesh', measure: 'request p99', unit: 'ms', better: 'lower', path: 'swarmnet mesh', samples: [1.5, 1.2, 1.9] });
  r.add({ part: 'mesh', measure: 'nothing measured', unit: 'x', better: 'higher', path: 'skipped', samples: [] });
  return r;
}

t.test('JSON and SVG per run, the history over runs, an image from each', async (t) => {
  await record('2026-11-23T10:00:00.000Z', [20, 22, 21], [15, 16, 14]).save(results, history);
  const files = await record('2026-11-24T10:00:00.000Z', [21, 23, 22], [17, 18, 16.5]).save(results, history);
  const json = files.find((f) => f.endsWith('.json'))!;
  const run = JSON.parse(readFileSync(json, 'utf8')) as RunRecord;
  t.same(
    run.figures.map((f) => [f.measure, f.path, f.median]),
    [
      ['TCP throughput', 'direct', 22],
      ['TCP throughput', 'swarmnet mesh', 17],
      ['request p99', 'swarmnet mesh', 1.5],
    ],
    'medians of the rounds; a measure without samples is left out',
  );
  t.same(run.options, { only: 'mesh', rounds: '3' });
  t.equal(loadRuns(results).length, 2, 'both runs recorded');

  const runSvg = files.find((f) => f.endsWith('mesh-tcp-throughput.svg') && f.startsWith(results))!;
  const historySvg = join(history, 'mesh-tcp-throughput.svg');
  t.ok(existsSync(runSvg) && existsSync(historySvg), 'a chart of the run and a history chart');
  t.ok(existsSync(join(history, 'mesh-request-p99.svg')), 'one per measure');
  const svg = readFileSync(runSvg, 'utf8');
  t.match(svg, /^<svg /, 'SVG');
  for (const text of ['direct', 'swarmnet mesh', 'Gbit/s', 'higher is better']) t.ok(svg.includes(text), `the run chart names ${text}`);
  t.match(readFileSync(historySvg, 'utf8'), /2 runs/, 'the history counts the runs');

  for (const f of [runSvg, historySvg]) {
    const png = `${f}.png`;
    execFileSync('rsvg-convert', ['-o', png, f]);
    const size = pngSize(png);
    t.ok(size.width > 200 && size.height > 150, `${f.slice(dir.length)} renders to a ${size.width}x${size.height} PNG`);
  }
});
