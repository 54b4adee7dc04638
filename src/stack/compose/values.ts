/**
 * Scalar values of used keys, read strictly: an error at the value's own path when it
 * is not what compose allows there. Interpolated values arrive as strings
 * (`attachable: ${ATTACH}` -> "true"), so strings are accepted where compose casts them.
 */
import { STACK_LABEL } from '../labels.js';
import type { Source } from '../types.js';
import { failAt } from './errors.js';
import { optionalMapping, sequence, type Node } from './tree.js';

export function text(n: Node, what = 'a string'): string {
  if (typeof n.value === 'string') return n.value;
  if (typeof n.value === 'number') return String(n.value);
  throw failAt(n.source, `must be ${what}`);
}

export function bool(n: Node): boolean {
  if (typeof n.value === 'boolean') return n.value;
  if (n.value === 'true' || n.value === 'false') return n.value === 'true';
  throw failAt(n.source, 'must be true or false');
}

export function integer(n: Node): number {
  const v = typeof n.value === 'string' && /^-?\d+$/.test(n.value.trim()) ? Number(n.value) : n.value;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  throw failAt(n.source, 'must be a whole number');
}

/** A list of strings, each with its source (aliases). */
export function strings(n: Node): Array<{ value: string; source: Source }> {
  return sequence(n).map((item) => ({ value: text(item), source: item.source }));
}

/** Go's time.ParseDuration units, which compose durations use. */
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 1e-3, 'µs': 1e-3, ns: 1e-6 };
const DURATION_PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/g;
const DURATION = /^(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+$/;

/** A compose duration ("5s", "1m30s", "500ms", "1.5h") in whole milliseconds. */
export function durationMs(n: Node): number {
  const t = typeof n.value === 'string' ? n.value.trim() : '';
  if (!DURATION.test(t)) throw failAt(n.source, `${JSON.stringify(n.value)} is not a duration (e.g. 500ms, 5s, 1m30s)`);
  let ms = 0;
  for (const m of t.matchAll(DURATION_PART)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  return Math.round(ms);
}

/**
 * Labels from canonical label mappings (later ones win: a service's deploy.labels over
 * its labels), then the stack's, which wins: stack ls/services/rm find objects by it.
 */
export function stackLabels(nodes: Array<Node | undefined>, stack: string, sources: Record<string, Source>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of nodes) {
    const entries = optionalMapping(n);
    if (!n || !entries) continue;
    sources.labels = n.source;
    for (const [label, v] of entries) {
      out[label] = text(v);
      sources[`labels.${label}`] = v.source;
    }
  }
  out[STACK_LABEL] = stack;
  return out;
}
