/**
 * `GET /v1/events`: the agent's events as NDJSON (one AgentEvent per line), first the
 * kept ones from `since` on, then live ones until `until` or until the client goes.
 * Without `since` only new events come, as with `docker events`.
 *
 *   ?since=MS&until=MS   epoch milliseconds
 *   &type=task&type=service&action=down&name=web.1&id=ID&service=web
 *                        per key any of its values; every key must match
 */
import { EVENT_TYPES, type AgentEvent, type EventType } from '../../api/types.js';
import { ValidationError } from '../../util/errors.js';
import { Streamed } from '../http.js';
import { matches, type EventBus, type EventFilter } from './bus.js';

export interface EventQuery {
  since?: number;
  until?: number;
  filter: EventFilter;
}

const FILTER_KEYS = ['type', 'action', 'name', 'id', 'service'] as const;

function epochMs(q: URLSearchParams, key: string): number | undefined {
  const v = q.get(key);
  if (v === null) return undefined;
  if (!/^\d{1,15}$/.test(v)) throw new ValidationError(key, `'${v}' is not a time in milliseconds since the epoch`);
  return Number(v);
}

export function parseEventQuery(q: URLSearchParams): EventQuery {
  for (const key of q.keys()) {
    if (key !== 'since' && key !== 'until' && !(FILTER_KEYS as readonly string[]).includes(key)) throw new ValidationError(key, `is not an event filter (${FILTER_KEYS.join(', ')}) nor since/until`);
  }
  const filter: EventFilter = {};
  for (const key of FILTER_KEYS) {
    const values = q.getAll(key);
    if (values.length) filter[key] = values as EventType[];
  }
  for (const t of filter.type ?? []) if (!(EVENT_TYPES as readonly string[]).includes(t)) throw new ValidationError('type', `'${t}' is not one of ${EVENT_TYPES.join(', ')}`);
  const since = epochMs(q, 'since');
  const until = epochMs(q, 'until');
  if (since !== undefined && until !== undefined && until < since) throw new ValidationError('until', 'is before since');
  return { ...(since !== undefined && { since }), ...(until !== undefined && { until }), filter };
}

export function eventStream(bus: EventBus, q: EventQuery, now: () => number = Date.now): Streamed {
  return new Streamed((res, req) => {
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    const write = (e: AgentEvent) => res.write(JSON.stringify(e) + '\n');
    const late = (e: AgentEvent) => q.until !== undefined && Date.parse(e.time) > q.until;
    let last = 0;
    for (const e of q.since === undefined ? [] : bus.since(q.since, q.filter)) {
      if (late(e)) break;
      write(e);
      last = e.seq;
    }
    if (q.until !== undefined && q.until <= now()) {
      res.end();
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    let unsubscribe: (() => void) | undefined;
    const end = () => {
      unsubscribe?.();
      clearTimeout(timer);
      if (!res.writableEnded) res.end();
    };
    unsubscribe = bus.subscribe((e) => {
      if (e.seq <= last || !matches(e, q.filter)) return;
      if (late(e)) return end();
      write(e);
    });
    if (q.until !== undefined) timer = setTimeout(end, q.until - now());
    // Headers out now: the client knows the stream is open before the first event.
    res.flushHeaders();
    req.once('close', end);
    res.once('close', end);
  });
}
