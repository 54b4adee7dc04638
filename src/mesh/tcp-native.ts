/**
 * TCP routing mesh on the native relay engine: C accepts, connects and moves the
 * bytes (splice after the first 64 KiB); JS only decides per connection.
 *
 *   ACCEPTED -> pick task -> connect(task, PROXY header)
 *   CONNECT_FAILED -> back-off, next task     EMPTY -> back-off, the engine replays
 *   DONE -> counters, forget                                 the kept bytes to the next task
 */
import type { Backend } from './backend.js';
import { ConnTable, type ConnEntry, type ConnState } from './conntable.js';
import type { MeshSettings } from './constants.js';
import { flowClosed, flowOpened, type ListenerInfo, type ServiceCounters } from './listener.js';
import type { Pool } from './pool.js';
import { proxyV1, proxyV2 } from './proxy-protocol.js';
import { RelayEvent, RelayState, type Accepted, type NativeRelay } from './relay.js';
import { errnoName } from '../native/index.js';

export class NativeTcpListener {
  #lid = 0;

  constructor(
    readonly info: ListenerInfo,
    private readonly pool: Pool,
    private readonly table: ConnTable,
    private readonly settings: MeshSettings,
    private readonly counters: ServiceCounters,
    private readonly relay: NativeRelay,
  ) {}

  async listen(): Promise<void> {
    this.#lid = this.relay.listen(this.info.host, this.info.port, Math.round(this.settings.keepAliveMs / 1000), (a, register) => {
      const s = new NativeTcpSession(a, this.info, this.pool, this.table, this.settings, this.counters, this.relay);
      register((type, err, bytesIn, bytesOut) => s.onEvent(type, err, bytesIn, bytesOut));
      s.start();
    });
  }

  close(): void {
    if (this.#lid) this.relay.unlisten(this.#lid);
    this.#lid = 0;
  }
}

class NativeTcpSession implements ConnEntry {
  readonly key: string;
  readonly proto = 'tcp' as const;
  readonly client: string;
  readonly local: string;
  readonly service: string;
  backend: Backend | undefined;
  readonly created = Date.now();
  readonly idleTimeoutMs: number;
  #last: number;
  #bytesIn = 0;
  #bytesOut = 0;
  #state: ConnState = 'SYN_SENT';
  #detach: (() => void) | undefined;
  readonly #tried = new Set<Backend>();
  readonly #id: number;
  #closing = false;

  constructor(
    private readonly a: Accepted,
    private readonly info: ListenerInfo,
    private readonly pool: Pool,
    private readonly table: ConnTable,
    private readonly settings: MeshSettings,
    private readonly counters: ServiceCounters,
    private readonly relay: NativeRelay,
  ) {
    this.#id = a.id;
    this.client = `${a.clientIp}:${a.clientPort}`;
    this.local = `${a.localIp}:${a.localPort}`;
    this.service = info.service;
    this.key = ConnTable.key('tcp', a.clientIp, a.clientPort, a.localIp, a.localPort);
    this.idleTimeoutMs = settings.tcpIdleTimeoutMs;
    this.#last = table.clock;
    flowOpened(table, counters, this);
  }

  start(): void {
    this.#connectNext();
  }

  /** Live values come from the engine; the sweep reads `last` for idle expiry. */
  get last(): number {
    const i = this.relay.info(this.#id);
    if (i) this.#last = Math.max(this.#last, Date.now() - i[2]);
    return this.#last;
  }

  get state(): ConnState {
    if (this.#state === 'CLOSE') return this.#state;
    return this.relay.info(this.#id)?.[3] === RelayState.RUNNING ? 'ESTABLISHED' : 'SYN_SENT';
  }

  get bytesIn(): number {
    return this.relay.info(this.#id)?.[0] ?? this.#bytesIn;
  }

  get bytesOut(): number {
    return this.relay.info(this.#id)?.[1] ?? this.#bytesOut;
  }

  #connectNext(): void {
    const b = this.pool.pick({ srcIp: this.a.clientIp, srcPort: this.a.clientPort }, this.#tried);
    if (!b || this.#tried.size > this.settings.retries) {
      this.counters.noBackend++;
      this.relay.close(this.#id, false);
      return;
    }
    this.#tried.add(b);
    this.backend = b;
    this.#detach = this.pool.attach(b, this);
    try {
      this.relay.connect(this.#id, {
        host: b.spec.host,
        port: b.spec.port,
        connectTimeoutMs: this.settings.connectTimeoutMs,
        header: this.info.proxyProtocol === 'none' ? undefined : this.#proxyHeader(),
        replayLimit: this.settings.replayLimitBytes,
      });
    } catch {
      b.error('relay');
      this.relay.close(this.#id, false);
    }
  }

  onEvent(type: number, err: number, bytesIn: number, bytesOut: number): void {
    const b = this.backend;
    this.#detach?.();
    this.#detach = undefined;
    if (type === RelayEvent.DONE) return this.#end(b, err, bytesIn, bytesOut);
    if (b) {
      b.error(type === RelayEvent.EMPTY ? 'empty' : err === 111 ? 'refused' : errnoName(err).toLowerCase());
      this.pool.fail(b);
    }
    this.counters.retries++;
    if (this.#closing) this.relay.close(this.#id, false);
    else this.#connectNext();
  }

  #proxyHeader(): Buffer {
    const a = { srcIp: this.a.clientIp, srcPort: this.a.clientPort, dstIp: this.a.localIp, dstPort: this.a.localPort };
    return this.info.proxyProtocol === 'v1' ? proxyV1(a) : proxyV2(a);
  }

  /** Idle expiry and drain: FIN both ways (in C); the DONE event ends the session. */
  close(_reason: string): void {
    if (this.#closing) return;
    this.#closing = true;
    this.relay.close(this.#id, true);
  }

  expire(): void {
    this.close('idle');
  }

  #end(b: Backend | undefined, err: number, bytesIn: number, bytesOut: number): void {
    this.#state = 'CLOSE';
    this.#bytesIn = bytesIn;
    this.#bytesOut = bytesOut;
    if (b) {
      if (bytesOut > 0) this.pool.succeed(b);
      b.bytesIn += bytesIn;
      b.bytesOut += bytesOut;
      if (err && err !== 125 /* ECANCELED: our own close */) b.error('reset');
    }
    flowClosed(this.table, this.counters, this, bytesIn, bytesOut);
  }
}
