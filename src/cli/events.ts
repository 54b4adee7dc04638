/**
 * `swarmnet events`: what changes, as `docker events` prints it, streamed from the
 * agent's API until interrupted (or until `--until`).
 *
 *   2026-11-24T04:20:00.123Z task down web.1 (service=web, backends=10.0.0.5:80)
 */
import type { Command } from 'commander';
import { EVENT_TYPES, type AgentEvent, type ApiClient } from '../api/index.js';
import { parseDuration, UsageError } from './format.js';

const FILTER_KEYS = ['type', 'action', 'name', 'id', 'service'] as const;
type FilterKey = (typeof FILTER_KEYS)[number];

/**
 * A time as docker takes it: RFC 3339 (`2026-11-24T04:00:00Z`), seconds since the epoch
 * (`1795492800`, fractions allowed), or a duration before now (`10m`, `90s`).
 */
export function parseTime(text: string, flag: string, now = Date.now()): number {
  if (/^\d+(\.\d+)?(ms|s|m|h)$/.test(text)) return now - parseDuration(text, flag);
  if (/^\d{9,}(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const t = Date.parse(text);
  if (/^\d{4}-\d\d-\d\d/.test(text) && !Number.isNaN(t)) return t;
  throw new UsageError(`${flag}: '${text}' is not a time (2026-11-24T04:00:00Z, seconds since the epoch, or a duration before now such as 10m)`);
}

/** `type=task` -> per key its values, as docker: the same key OR'ed, different keys AND'ed. */
export function parseFilters(list: string[]): Partial<Record<FilterKey, string[]>> {
  const out: Partial<Record<FilterKey, string[]>> = {};
  for (const f of list) {
    const eq = f.indexOf('=');
    const key = f.slice(0, eq) as FilterKey;
    const value = f.slice(eq + 1);
    if (eq < 1 || !value) throw new UsageError(`--filter: '${f}' is not KEY=VALUE`);
    if (!FILTER_KEYS.includes(key)) throw new UsageError(`--filter: '${key}' is not one of ${FILTER_KEYS.join(', ')}`);
    if (key === 'type' && !(EVENT_TYPES as readonly string[]).includes(value)) throw new UsageError(`--filter: type '${value}' is not one of ${EVENT_TYPES.join(', ')}`);
    (out[key] ??= []).push(value);
  }
  return out;
}

export function formatEvent(e: AgentEvent): string {
  const attrs = Object.entries(e.attributes).map(([k, v]) => `${k}=${v}`);
  return `${e.time} ${e.type} ${e.action} ${e.name}${attrs.length ? ` (${attrs.join(', ')})` : ''}`;
}

export function eventsCommand(program: Command, client: () => ApiClient): void {
  program
    .command('events')
    .description('stream what changes: services, tasks (up, down, backoff, drain), networks, nodes, key rotations, certificate renewals')
    .option('--since <time>', 'also the events kept since then (RFC 3339, epoch seconds, or a duration such as 10m)')
    .option('--until <time>', 'stop at this time (same forms; a past time: print the kept events and exit)')
    .option('-f, --filter <key=value>', `only these (keys: ${FILTER_KEYS.join(', ')}); repeatable`, (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--format <format>', 'json: one JSON object per line')
    .action(async (o: { since?: string; until?: string; filter: string[]; format?: string }) => {
      if (o.format !== undefined && o.format !== 'json') throw new UsageError(`--format: '${o.format}' is not json`);
      const now = Date.now();
      const since = o.since === undefined ? undefined : parseTime(o.since, '--since', now);
      const until = o.until === undefined ? undefined : parseTime(o.until, '--until', now);
      if (since !== undefined && until !== undefined && until < since) throw new UsageError('--until: is before --since');
      const filter = parseFilters(o.filter);
      const stream = client().events({ ...(since !== undefined && { since }), ...(until !== undefined && { until }), filter }, (e) => {
        process.stdout.write((o.format === 'json' ? JSON.stringify(e) : formatEvent(e)) + '\n');
      });
      const stop = () => stream.close();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await stream.done;
    });
}
