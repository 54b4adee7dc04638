/**
 * UDP routing-mesh data path. UDP has no connections, so a flow is one client
 * address: its first datagram picks a task and opens a connected upstream socket
 * of its own; the task's replies come back on that socket and are sent to the
 * client from the published port. Idle flows expire (300 s by default).
 *
 *   datagram -> flow lookup (client ip:port) -> [new: pick task, connect socket]
 *   -> send upstream;  upstream reply -> send to client from the listener socket
 *
 * A connected UDP socket reports ICMP port unreachable as ECONNREFUSED: the task is
 * put in back-off and the flow moves to another task, resending the last datagram
 * if no reply had come yet. A flow's first reply ends its task's failures.
 *
 * This is the fallback of the native engine (udp-native.ts); it shares its flow bound
 * (--max-flows, UdpFlowBound), which here also bounds the sockets.
 */
import { createSocket, type Socket } from 'node:dgram';
import type { Backend } from './backend.js';
import { ConnTable, type ConnEntry, type ConnState } from './conntable.js';
import type { MeshSettings } from './constants.js';
import { flowClosed, flowOpened, type ListenerInfo, type ServiceCounters } from './listener.js';
import type { Pool } from './pool.js';

/**
 * The flow bound of a mesh's JS UDP listeners (--max-flows), as the native engine's: a
 * new flow on a full table evicts the oldest unanswered flow, else it is refused.
 */
export class UdpFlowBound {
  flows = 0;
  /** Flows that never got a reply, oldest first (a Set keeps insertion order). */
  readonly unanswered = new Set<{ close(reason: string): void }>();
  earlyDrop = 0;
  tableFull = 0;

  constructor(readonly max: number) {}

  /** Whether a new flow may open, making room if it can. */
  admit(): boolean {
    if (this.flows < this.max) return true;
    const oldest = this.unanswered.values().next();
    if (oldest.done) {
      this.tableFull++;
      return false;
    }
    this.earlyDrop++;
    oldest.value.close('early drop');
    return true;
  }
}

export class UdpListener {
  readonly #sock: Socket;
  readonly #flows = new Map<string, UdpFlow>();

  constructor(
    readonly info: ListenerInfo,
    private readonly pool: Pool,
    private readonly table: ConnTable,
    private readonly settings: MeshSettings,
    private readonly counters: ServiceCounters,
    private readonly bound: UdpFlowBound,
  ) {
    this.#sock = createSocket({ type: 'udp4' });
    this.#sock.on('message', (msg, rinfo) => this.#onMessage(msg, rinfo.address, rinfo.port));
    // Errors on the listening socket (e.g. ICMP from a vanished client) must not kill the agent.
    this.#sock.on('error', () => undefined);
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#sock.once('error', reject);
      this.#sock.bind({ address: this.info.host, port: this.info.port, exclusive: true }, () => {
        this.#sock.off('error', reject);
        resolve();
      });
    });
  }

  close(): void {
    try {
      this.#sock.close();
    } catch {
      // already closed
    }
    for (const f of [...this.#flows.values()]) f.close('listener closed');
  }

  #onMessage(msg: Buffer, ip: string, port: number): void {
    const key = `${ip}:${port}`;
    let flow = this.#flows.get(key);
    if (!flow) {
      if (!this.bound.admit()) return;
      flow = new UdpFlow(ip, port, this.#sock, this.info, this.pool, this.table, this.settings, this.counters, this.bound, () => this.#flows.delete(key));
      this.#flows.set(key, flow);
    }
    flow.send(msg);
  }
}

class UdpFlow implements ConnEntry {
  readonly key: string;
  readonly proto = 'udp' as const;
  readonly client: string;
  readonly local: string;
  readonly service: string;
  backend: Backend | undefined;
  state: ConnState = 'UDP';
  readonly created = Date.now();
  last: number;
  readonly idleTimeoutMs: number;
  bytesIn = 0;
  bytesOut = 0;

  #up: Socket | undefined;
  #ready = false;
  #pending: Buffer[] = [];
  #lastSent: Buffer | undefined;
  #answered = false;
  #detach: (() => void) | undefined;
  readonly #tried = new Set<Backend>();
  #closed = false;

  constructor(
    private readonly ip: string,
    private readonly port: number,
    private readonly listener: Socket,
    info: ListenerInfo,
    private readonly pool: Pool,
    private readonly table: ConnTable,
    private readonly settings: MeshSettings,
    private readonly counters: ServiceCounters,
    private readonly bound: UdpFlowBound,
    private readonly onClose: () => void,
  ) {
    this.client = `${ip}:${port}`;
    this.local = `${info.host}:${info.port}`;
    this.service = info.service;
    this.key = ConnTable.key('udp', ip, port, info.host, info.port);
    this.idleTimeoutMs = settings.udpIdleTimeoutMs;
    this.last = table.clock;
    bound.flows++;
    bound.unanswered.add(this);
    flowOpened(table, counters, this);
    this.#open();
  }

  send(msg: Buffer): void {
    if (this.#closed) return;
    this.bytesIn += msg.length;
    this.last = this.table.clock;
    this.#lastSent = msg;
    if (!this.#ready) {
      this.#pending.push(msg);
      return;
    }
    if (this.backend) this.backend.bytesIn += msg.length;
    this.#up!.send(msg);
  }

  #open(): void {
    const b = this.pool.pick({ srcIp: this.ip, srcPort: this.port }, this.#tried);
    if (!b || this.#tried.size > this.settings.retries) {
      this.counters.noBackend++;
      this.close('no backend');
      return;
    }
    this.#tried.add(b);
    this.backend = b;
    this.#detach = this.pool.attach(b, this);
    const up = createSocket({ type: 'udp4' });
    this.#up = up;
    this.#ready = false;
    up.on('message', (reply) => {
      // The task answers: its passive-health failures are over (as a TCP connect).
      if (!this.#answered) this.pool.succeed(b);
      this.#answered = true;
      this.bound.unanswered.delete(this);
      this.bytesOut += reply.length;
      b.bytesOut += reply.length;
      this.last = this.table.clock;
      this.listener.send(reply, this.port, this.ip);
    });
    up.on('error', (err: NodeJS.ErrnoException) => {
      b.error(err.code === 'ECONNREFUSED' ? 'refused' : 'error');
      this.pool.fail(b);
      this.#failover();
    });
    up.connect(b.spec.port, b.spec.host, () => {
      if (this.#up !== up) return;
      this.#ready = true;
      for (const m of this.#pending) up.send(m);
      this.#pending = [];
    });
  }

  /** Moves the flow to another task; resends the last datagram if it went unanswered. */
  #failover(): void {
    if (this.#closed) return;
    this.#detach?.();
    this.#detach = undefined;
    this.#closeUp();
    this.counters.retries++;
    if (this.backend) this.backend.retries++;
    if (!this.#answered && this.#lastSent) this.#pending = [this.#lastSent];
    this.#open();
  }

  #closeUp(): void {
    const up = this.#up;
    this.#up = undefined;
    this.#ready = false;
    if (!up) return;
    up.removeAllListeners('message');
    up.on('error', () => undefined);
    try {
      up.close();
    } catch {
      // already closed
    }
  }

  expire(): void {
    this.close('idle');
  }

  close(_reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.state = 'CLOSE';
    this.bound.flows--;
    this.bound.unanswered.delete(this);
    this.#closeUp();
    this.#detach?.();
    flowClosed(this.table, this.counters, this, this.bytesIn, this.bytesOut);
    this.onClose();
  }
}
