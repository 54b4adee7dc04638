/**
 * A real Prometheus (Debian's `prometheus`) scraping targets every second, on a loopback
 * address of the test, with its TSDB in a temporary directory; killed in teardown.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killOnTeardown } from './procs.js';
import { until } from './net.js';

type Teardown = { teardown(fn: () => unknown): void };

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface Prometheus {
  /** An instant query (`/api/v1/query`); throws on a query Prometheus refuses. */
  query(expr: string): Promise<PromSample[]>;
  /** Targets' health as Prometheus sees them (`/api/v1/targets`). */
  targets(): Promise<Array<{ scrapeUrl: string; health: string; lastError: string }>>;
}

function getJson(host: string, port: number, path: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, timeout: 10000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch {
          reject(new Error(`prometheus ${path}: HTTP ${res.statusCode}: ${body.slice(0, 200)}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

export async function startPrometheus(t: Teardown, o: { listen: string; port: number; targets: string[] }): Promise<Prometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'swarmnet-prom-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: swarmnet\n    static_configs:\n      - targets: [${o.targets.map((x) => `'${x}'`).join(', ')}]\n`,
  );
  const child = spawn('prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=${o.listen}:${o.port}`, '--log.level=warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  killOnTeardown(t, child);
  let log = '';
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const api = (path: string) => getJson(o.listen, o.port, path);
  await until(
    'prometheus ready',
    async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited: ${log}`);
      return ((await api('/api/v1/status/buildinfo').catch(() => undefined)) as { status?: string } | undefined)?.status === 'success';
    },
    30000,
  );
  return {
    query: async (expr) => {
      const r = (await api(`/api/v1/query?query=${encodeURIComponent(expr)}`)) as { status: string; error?: string; data?: { result: PromSample[] } };
      if (r.status !== 'success') throw new Error(`${expr}: ${r.error}`);
      return r.data!.result;
    },
    targets: async () => ((await api('/api/v1/targets')) as { data: { activeTargets: Array<{ scrapeUrl: string; health: string; lastError: string }> } }).data.activeTargets,
  };
}
