/**
 * The connection table (IPVS's ip_vs_conn): one entry per flow, keyed by the 5-tuple
 * `proto client-ip:port local-ip:port`. Holds state, the chosen backend and byte
 * counts, and expires idle flows. Idle time is read off a coarse clock that the sweep
 * advances, so the data path only stores a number per packet.
 */
import type { Backend } from './backend.js';
import type { Conn } from '../api/types.js';

export type ConnState = 'SYN_SENT' | 'ESTABLISHED' | 'FIN_WAIT' | 'CLOSE' | 'UDP';

export interface ConnEntry {
  readonly key: string;
  readonly proto: 'tcp' | 'udp';
  readonly client: string;
  readonly local: string;
  readonly service: string;
  backend: Backend | undefined;
  state: ConnState;
  readonly created: number;
  /** Coarse time of the last byte either way. */
  last: number;
  readonly idleTimeoutMs: number;
  bytesIn: number;
  bytesOut: number;
  /** Ends the flow; called on idle expiry. Must remove the entry. */
  expire(): void;
}

/** One row of `conn ls`: the API's type (src/api is the contract), with this table's states. */
export type ConnView = Conn & { state: ConnState };

export class ConnTable {
  readonly #entries = new Map<string, ConnEntry>();
  #clock = Date.now();
  readonly #timer: NodeJS.Timeout;

  constructor(sweepIntervalMs: number) {
    this.#timer = setInterval(() => this.sweep(), sweepIntervalMs);
    this.#timer.unref();
  }

  /** Coarse now, for `entry.last`. */
  get clock(): number {
    return this.#clock;
  }

  static key(proto: string, clientIp: string, clientPort: number, localIp: string, localPort: number): string {
    return `${proto} ${clientIp}:${clientPort} ${localIp}:${localPort}`;
  }

  add(e: ConnEntry): void {
    this.#entries.set(e.key, e);
  }

  get(key: string): ConnEntry | undefined {
    return this.#entries.get(key);
  }

  remove(e: ConnEntry): void {
    if (this.#entries.get(e.key) === e) this.#entries.delete(e.key);
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Expires flows idle past their timeout. A flow touched since the previous sweep stored
   * that sweep's clock, however long ago a busy event loop ran it: such a flow is
   * active, never idle (else a reply in flight would find its flow gone).
   */
  sweep(now = Date.now()): void {
    const prev = this.#clock;
    this.#clock = now;
    for (const e of this.#entries.values()) {
      if (e.last < prev && now - e.last >= e.idleTimeoutMs) e.expire();
    }
  }

  list(service?: string): ConnView[] {
    const now = Date.now();
    const out: ConnView[] = [];
    for (const e of this.#entries.values()) {
      if (service && e.service !== service) continue;
      out.push({
        proto: e.proto,
        state: e.state,
        client: e.client,
        local: e.local,
        service: e.service,
        backend: e.backend && `${e.backend.spec.host}:${e.backend.spec.port}`,
        backendName: e.backend?.spec.name,
        expiresInMs: Math.max(0, e.last + e.idleTimeoutMs - now),
        bytesIn: e.bytesIn,
        bytesOut: e.bytesOut,
      });
    }
    return out;
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
