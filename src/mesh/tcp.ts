/**
 * TCP routing-mesh data path in JavaScript (used when the native relay engine is
 * not built or is disabled; see tcp-native.ts). One session per accepted client:
 *
 *   accept (paused) -> pick task -> connect (timeout; timed into the task's histogram)
 *   -> [PROXY header] -> replay
 *   -> relay both ways with back-pressure -> half-close -> close
 *
 * Self-healing: a refused or timed-out connect puts the task in back-off and tries
 * another, so the client never sees it. Until the task sends its first byte, the
 * client's bytes are also kept (up to replayLimitBytes): if the task resets or closes
 * before answering a client that is still waiting (a task killed mid-request), the
 * bytes are replayed to another task, as HAProxy's `retry-on empty-response`.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { Backend } from './backend.js';
import { ConnTable, type ConnEntry, type ConnState } from './conntable.js';
import type { MeshSettings } from './constants.js';
import type { Pool } from './pool.js';
import { proxyV1, proxyV2 } from './proxy-protocol.js';
import { flowClosed, flowOpened, type ListenerInfo, type ServiceCounters } from './listener.js';

export class TcpListener {
  readonly #server: Server;

  constructor(
    readonly info: ListenerInfo,
    private readonly pool: Pool,
    private readonly table: ConnTable,
    private readonly settings: MeshSettings,
    private readonly counters: ServiceCounters,
  ) {
    this.#server = createServer({ pauseOnConnect: true, allowHalfOpen: true, noDelay: true }, (c) => this.#accept(c));
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ host: this.info.host, port: this.info.port }, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
  }

  /** Stops accepting; existing sessions run on (they drain with their backends). */
  close(): void {
    this.#server.close();
  }

  #accept(client: Socket): void {
    if (!client.remoteAddress || client.remotePort === undefined) {
      client.destroy();
      return;
    }
    new TcpSession(client, this.info, this.pool, this.table, this.settings, this.counters);
  }
}

class TcpSession implements ConnEntry {
  readonly key: string;
  readonly proto = 'tcp' as const;
  readonly client: string;
  readonly local: string;
  readonly service: string;
  backend: Backend | undefined;
  state: ConnState = 'SYN_SENT';
  readonly created = Date.now();
  last: number;
  readonly idleTimeoutMs: number;
  bytesIn = 0;
  bytesOut = 0;

  #upstream: Socket | undefined;
  #detach: (() => void) | undefined;
  readonly #tried = new Set<Backend>();
  /** Client bytes not yet answered, for replay; null once answered or over the limit. */
  #replay: Buffer[] | null = [];
  #replayBytes = 0;
  #clientEnded = false;
  #closed = false;

  constructor(
    private readonly sock: Socket,
    private readonly info: ListenerInfo,
    private readonly pool: Pool,
    private readonly table: ConnTable,
    private readonly settings: MeshSettings,
    private readonly counters: ServiceCounters,
  ) {
    const srcIp = sock.remoteAddress!;
    const srcPort = sock.remotePort!;
    this.client = `${srcIp}:${srcPort}`;
    this.local = `${sock.localAddress}:${sock.localPort}`;
    this.service = info.service;
    this.key = ConnTable.key('tcp', srcIp, srcPort, sock.localAddress ?? '', sock.localPort ?? 0);
    this.idleTimeoutMs = settings.tcpIdleTimeoutMs;
    this.last = table.clock;
    flowOpened(table, counters, this);
    sock.setKeepAlive(true, settings.keepAliveMs);
    sock.on('data', (chunk: Buffer) => this.#fromClient(chunk));
    sock.on('end', () => this.#clientEnd());
    sock.on('drain', () => this.#upstream?.resume());
    sock.on('error', () => this.#destroy());
    sock.on('close', () => this.#destroy());
    this.#connectNext();
  }

  #connectNext(): void {
    const b = this.pool.pick({ srcIp: this.sock.remoteAddress!, srcPort: this.sock.remotePort! }, this.#tried);
    if (!b || this.#tried.size > this.settings.retries) {
      this.counters.noBackend++;
      this.#destroy();
      return;
    }
    this.#tried.add(b);
    this.backend = b;
    this.state = 'SYN_SENT';
    const started = performance.now();
    const up = connect({ host: b.spec.host, port: b.spec.port, allowHalfOpen: true, noDelay: true });
    this.#upstream = up;
    let connected = false;
    let answered = false;
    const timer = setTimeout(() => up.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })), this.settings.connectTimeoutMs);
    up.once('connect', () => {
      clearTimeout(timer);
      connected = true;
      b.connected((performance.now() - started) / 1000);
      this.pool.succeed(b);
      this.#detach = this.pool.attach(b, this);
      this.state = 'ESTABLISHED';
      up.setKeepAlive(true, this.settings.keepAliveMs);
      if (this.info.proxyProtocol !== 'none') up.write(this.#proxyHeader());
      for (const chunk of this.#replay ?? []) up.write(chunk);
      if (this.#clientEnded) up.end();
      else this.sock.resume();
    });
    up.on('data', (chunk: Buffer) => {
      answered = true;
      this.#replay = null;
      this.bytesOut += chunk.length;
      b.bytesOut += chunk.length;
      this.last = this.table.clock;
      if (!this.sock.write(chunk)) up.pause();
    });
    up.on('drain', () => this.sock.resume());
    up.on('end', () => {
      if (!answered && this.#mayReplay()) return this.#retry(up, b, 'empty');
      this.state = 'FIN_WAIT';
      this.sock.end();
    });
    up.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (!connected) {
        b.connected((performance.now() - started) / 1000);
        b.error('connect');
        this.pool.fail(b);
        return this.#retry(up, b, err.code ?? 'connect');
      }
      b.error('reset');
      if (!answered && this.#mayReplay()) return this.#retry(up, b, 'reset');
      this.#destroy();
    });
    up.on('close', () => {
      if (this.#upstream === up && !this.sock.writableEnded && this.state !== 'SYN_SENT') this.#destroy();
    });
  }

  /** Replay is possible while every client byte is still held and the client is waiting. */
  #mayReplay(): boolean {
    return this.#replay !== null && !this.#clientEnded && !this.#closed;
  }

  #retry(up: Socket, b: Backend, why: string): void {
    if (this.#closed) return;
    if (why === 'empty' || why === 'reset') {
      b.error(why);
      this.pool.fail(b);
    }
    this.#detach?.();
    this.#detach = undefined;
    this.#upstream = undefined;
    up.removeAllListeners('close');
    up.destroy();
    this.sock.pause();
    this.counters.retries++;
    b.retries++;
    this.#connectNext();
  }

  #fromClient(chunk: Buffer): void {
    this.bytesIn += chunk.length;
    this.last = this.table.clock;
    if (this.#replay) {
      this.#replayBytes += chunk.length;
      if (this.#replayBytes > this.settings.replayLimitBytes) this.#replay = null;
      else this.#replay.push(chunk);
    }
    const up = this.#upstream;
    if (!up || this.state === 'SYN_SENT') {
      this.sock.pause();
      return;
    }
    if (this.backend) this.backend.bytesIn += chunk.length;
    if (!up.write(chunk)) this.sock.pause();
  }

  #clientEnd(): void {
    this.#clientEnded = true;
    if (this.#upstream && this.state !== 'SYN_SENT') this.#upstream.end();
  }

  #proxyHeader(): Buffer {
    const addrs = { srcIp: this.sock.remoteAddress!, srcPort: this.sock.remotePort!, dstIp: this.sock.localAddress!, dstPort: this.sock.localPort! };
    return this.info.proxyProtocol === 'v1' ? proxyV1(addrs) : proxyV2(addrs);
  }

  /** Idle expiry and drain timeout end both sides with a FIN: a client is told, never dropped silently. */
  close(_reason: string): void {
    this.sock.end();
    this.#upstream?.end();
    setTimeout(() => this.#destroy(), 1000).unref();
  }

  expire(): void {
    this.close('idle');
  }

  #destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.state = 'CLOSE';
    this.sock.destroy();
    this.#upstream?.destroy();
    this.#detach?.();
    flowClosed(this.table, this.counters, this, this.bytesIn, this.bytesOut);
  }
}
