/**
 * TCP session on the native splice relay: JS accepts and decides (which task, retry,
 * drain, idle expiry), C moves the bytes. The client socket is accepted paused and
 * never read by Node; its fd is lent to the relay and closed here only after the
 * relay reported DONE (so the fd cannot be reused under the relay's feet).
 *
 *   accept (paused) -> pick task -> relayStart(fd, task, PROXY header + replay)
 *     CONNECT_FAILED -> back-off, next task       EMPTY -> back-off, replay to next task
 *     CONNECTED      -> counted on the task       DONE  -> close client, forget
 */
import type { Socket } from 'node:net';
import type { Backend } from './backend.js';
import { ConnTable, type ConnEntry, type ConnState } from './conntable.js';
import type { MeshSettings } from './constants.js';
import type { ListenerInfo, ServiceCounters } from './listener.js';
import type { Pool } from './pool.js';
import { proxyV1, proxyV2 } from './proxy-protocol.js';
import { RelayEvent, type NativeRelay } from './relay.js';
import { errnoName } from '../native/index.js';

export class NativeTcpSession implements ConnEntry {
  readonly key: string;
  readonly proto = 'tcp' as const;
  readonly client: string;
  readonly local: string;
  readonly service: string;
  backend: Backend | undefined;
  state: ConnState = 'SYN_SENT';
  readonly created = Date.now();
  readonly idleTimeoutMs: number;
  #last: number;
  /** Bytes of relays already finished (a retried session had several). */
  #doneIn = 0;
  #doneOut = 0;
  #relayId = 0;
  #detach: (() => void) | undefined;
  readonly #tried = new Set<Backend>();
  readonly #fd: number;
  #closed = false;

  constructor(
    private readonly sock: Socket,
    private readonly info: ListenerInfo,
    private readonly pool: Pool,
    private readonly table: ConnTable,
    private readonly settings: MeshSettings,
    private readonly counters: ServiceCounters,
    private readonly relay: NativeRelay,
  ) {
    this.client = `${sock.remoteAddress}:${sock.remotePort}`;
    this.local = `${sock.localAddress}:${sock.localPort}`;
    this.service = info.service;
    this.key = ConnTable.key('tcp', sock.remoteAddress!, sock.remotePort!, sock.localAddress ?? '', sock.localPort ?? 0);
    this.idleTimeoutMs = settings.tcpIdleTimeoutMs;
    this.#last = table.clock;
    this.#fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
    sock.on('error', () => undefined);
    sock.setKeepAlive(true, settings.keepAliveMs);
    table.add(this);
    counters.active++;
    counters.total++;
    if (this.#fd < 0) this.#end();
    else this.#connectNext(undefined);
  }

  /** Time of the last byte, read from the relay (the sweep asks for expiry). */
  get last(): number {
    const i = this.#relayId && this.relay.info(this.#relayId);
    if (i) this.#last = Math.max(this.#last, Date.now() - i[2]);
    return this.#last;
  }

  get bytesIn(): number {
    return this.#doneIn + ((this.#relayId && this.relay.info(this.#relayId)?.[0]) || 0);
  }

  get bytesOut(): number {
    return this.#doneOut + ((this.#relayId && this.relay.info(this.#relayId)?.[1]) || 0);
  }

  #connectNext(replay: Buffer | undefined): void {
    const b = this.pool.pick({ srcIp: this.sock.remoteAddress!, srcPort: this.sock.remotePort! }, this.#tried);
    if (!b || this.#tried.size > this.settings.retries) {
      this.counters.noBackend++;
      return this.#end();
    }
    this.#tried.add(b);
    this.backend = b;
    this.state = 'SYN_SENT';
    const header = this.info.proxyProtocol === 'none' ? undefined : this.#proxyHeader();
    const prefix = header && replay ? Buffer.concat([header, replay]) : (header ?? replay);
    try {
      this.#relayId = this.relay.start(
        {
          fd: this.#fd,
          host: b.spec.host,
          port: b.spec.port,
          connectTimeoutMs: this.settings.connectTimeoutMs,
          prefix,
          replayHave: replay?.length ?? 0,
          replayLimit: this.settings.replayLimitBytes,
        },
        (type, err, bytesIn, bytesOut, replayed) => this.#onEvent(b, type, err, bytesIn, bytesOut, replayed),
      );
    } catch {
      b.error('relay');
      this.#end();
    }
  }

  #onEvent(b: Backend, type: number, err: number, bytesIn: number, bytesOut: number, replay?: Buffer): void {
    if (type === RelayEvent.CONNECTED) {
      this.pool.succeed(b);
      this.#detach = this.pool.attach(b, this);
      this.state = 'ESTABLISHED';
      return;
    }
    this.#relayId = 0;
    this.#doneIn += bytesIn;
    this.#doneOut += bytesOut;
    b.bytesIn += bytesIn;
    b.bytesOut += bytesOut;
    this.#detach?.();
    this.#detach = undefined;
    if (this.#closed) return this.#end();
    if (type === RelayEvent.CONNECT_FAILED) {
      b.error(err === 111 ? 'refused' : errnoName(err).toLowerCase());
      this.pool.fail(b);
      this.counters.retries++;
      return this.#connectNext(replay);
    }
    if (type === RelayEvent.EMPTY) {
      b.error('empty');
      this.pool.fail(b);
      this.counters.retries++;
      return this.#connectNext(replay);
    }
    if (err) b.error('reset');
    this.#end();
  }

  #proxyHeader(): Buffer {
    const a = { srcIp: this.sock.remoteAddress!, srcPort: this.sock.remotePort!, dstIp: this.sock.localAddress!, dstPort: this.sock.localPort! };
    return this.info.proxyProtocol === 'v1' ? proxyV1(a) : proxyV2(a);
  }

  /** Idle expiry and drain: FIN both ways (in C), then the DONE event ends the session. */
  close(_reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#relayId) this.relay.close(this.#relayId, true);
    else this.#end();
  }

  expire(): void {
    this.close('idle');
  }

  /** Only once no relay holds the fd. */
  #end(): void {
    if (this.state === 'CLOSE') return;
    this.state = 'CLOSE';
    this.#closed = true;
    this.sock.destroy();
    this.table.remove(this);
    this.counters.active--;
    this.counters.bytesIn += this.#doneIn;
    this.counters.bytesOut += this.#doneOut;
  }
}
