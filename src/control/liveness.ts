/**
 * Node liveness as one observer judges it. A node is up while its heartbeats keep
 * *arriving here* (through the store's watch, see View), timed on this process's
 * monotonic clock. The `lastSeen` a node writes is its own wall clock and is never
 * compared with ours: two machines' clocks may differ by minutes. Only a change of it
 * tells that a new beat arrived.
 *
 * The judging clock runs only while this observer's own beats come back through the
 * watch: cut off from the store, it cannot tell the others' silence from its own, so it
 * keeps its verdicts (and its routing) instead of declaring every node down. When its
 * beats come back, the clock resumes where it stopped (the outage is not counted).
 *
 *   judging time   c(t) = base + min(t - selfAt, holdMs)
 *   our own beat   base = c(t), selfAt = t
 *   node n is up   its record says ready, and c(now) - heard(n) < timeoutMs
 *
 * Start: a node whose record says ready when this observer first sees it (at load, or
 * when it joins) counts as heard then, like the grace period Swarm's dispatcher gives
 * every node after a leader change: a node already dead goes down `timeoutMs` later;
 * a record that says down is down at once.
 */
import type { Node } from './schema.js';

export interface LivenessOptions {
  /** The observing node: its own beats coming back prove its link to the store. */
  self: string;
  /** A node whose beat has not arrived for this long (judging time) is down. */
  timeoutMs: number;
  /** How long the judging clock runs on after our own last beat arrived (about two heartbeats). */
  holdMs: number;
  /** Monotonic milliseconds (default `performance.now`); injectable for tests. */
  now?: () => number;
  /**
   * Our own beat came back through the watch, `lagMs` after we stamped it: the store's
   * write-to-watch delay, measured on one clock (ours at both ends). For metrics.
   */
  onSelfBeat?: (lagMs: number) => void;
}

interface Heard {
  /** The node's own stamp of its last beat: compared only with its previous stamp. */
  lastSeen: number;
  ready: boolean;
  /** Judging time of the last beat received; undefined until one is. */
  at?: number;
  /** Monotonic time of the last beat received. */
  realAt?: number;
}

export class Liveness {
  readonly now: () => number;
  readonly #heard = new Map<string, Heard>();
  #base = 0;
  #selfAt: number;

  constructor(private readonly o: LivenessOptions) {
    this.now = o.now ?? (() => performance.now());
    this.#selfAt = this.now();
  }

  /** A node's record arrived through the watch (initial load included). */
  observe(node: Node): void {
    const prev = this.#heard.get(node.id);
    const ready = node.status === 'ready';
    const beat = ready && (!prev || !prev.ready || prev.lastSeen !== node.lastSeen);
    if (!beat) {
      this.#heard.set(node.id, { ...prev, lastSeen: node.lastSeen, ready });
      return;
    }
    const t = this.now();
    const at = this.#clock(t);
    if (node.id === this.o.self) {
      this.#base = at;
      this.#selfAt = t;
      this.o.onSelfBeat?.(Math.max(0, Date.now() - node.lastSeen));
    }
    this.#heard.set(node.id, { lastSeen: node.lastSeen, ready, at, realAt: t });
  }

  /** The node's record is gone (deleted, or unreadable). */
  forget(id: string): void {
    this.#heard.delete(id);
  }

  /** Is the node up: its record says ready and its beat arrived within the timeout? */
  up(node: Pick<Node, 'id' | 'status'>, now = this.now()): boolean {
    const at = this.#heard.get(node.id)?.at;
    return node.status === 'ready' && at !== undefined && this.#clock(now) - at < this.o.timeoutMs;
  }

  /** The status this observer gives the node: its record's, but `down` once its beats stop arriving. */
  status(node: Pick<Node, 'id' | 'status'>, now = this.now()): Node['status'] {
    return node.status === 'ready' && !this.up(node, now) ? 'down' : node.status;
  }

  /** Milliseconds since this observer last received the node's beat (undefined: never). */
  heardMsAgo(id: string, now = this.now()): number | undefined {
    const realAt = this.#heard.get(id)?.realAt;
    return realAt === undefined ? undefined : now - realAt;
  }

  /** Judging time at monotonic time `t`: stops `holdMs` after our own last beat arrived. */
  #clock(t: number): number {
    return this.#base + Math.min(Math.max(t - this.#selfAt, 0), this.o.holdMs);
  }
}
