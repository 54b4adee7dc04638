/**
 * The agent's event log: every change the agent sees, kept in a bounded ring for late
 * readers (`--since`) and handed to live subscribers (`swarmnet events`). It belongs to
 * the agent, not to a runtime, so a stream survives `init`, `join` and `leave`.
 */
import type { AgentEvent, EventType } from '../../api/types.js';

/** Events kept for `--since`; older ones are gone, as docker keeps the last 256. */
export const EVENT_RING = 1024;

export type EventInput = Omit<AgentEvent, 'seq' | 'time' | 'attributes'> & { attributes?: Record<string, string> };

/** Which events a reader wants: per key any of the values, and every key (docker's filter rule). */
export interface EventFilter {
  type?: EventType[];
  action?: string[];
  name?: string[];
  id?: string[];
  /** Matches `attributes.service` (a task's service, or the service itself by name). */
  service?: string[];
}

export function matches(e: AgentEvent, f: EventFilter): boolean {
  const any = (values: string[] | undefined, v: string | undefined) => values === undefined || values.length === 0 || (v !== undefined && values.includes(v));
  const service = e.type === 'service' ? e.name : e.attributes.service;
  return any(f.type, e.type) && any(f.action, e.action) && any(f.name, e.name) && any(f.id, e.id) && any(f.service, service);
}

export class EventBus {
  readonly #ring: AgentEvent[] = [];
  readonly #subscribers = new Set<(e: AgentEvent) => void>();
  #seq = 0;

  constructor(private readonly clock: () => number = Date.now) {}

  emit(input: EventInput): AgentEvent {
    const e: AgentEvent = { seq: ++this.#seq, time: new Date(this.clock()).toISOString(), ...input, attributes: input.attributes ?? {} };
    this.#ring.push(e);
    if (this.#ring.length > EVENT_RING) this.#ring.shift();
    for (const fn of this.#subscribers) fn(e);
    return e;
  }

  /** Kept events at or after `sinceMs` (epoch ms) that match. */
  since(sinceMs: number, f: EventFilter = {}): AgentEvent[] {
    return this.#ring.filter((e) => Date.parse(e.time) >= sinceMs && matches(e, f));
  }

  subscribe(fn: (e: AgentEvent) => void): () => void {
    this.#subscribers.add(fn);
    return () => this.#subscribers.delete(fn);
  }
}
