/**
 * UDP routing mesh on the native engine (udp-engine.ts, native/src/udp.h): C receives,
 * keeps the flows and moves the datagrams in batches; JS only decides per new flow
 * and keeps the counters, as the JS path does.
 *
 *   decide (new)      -> pool.pick -> the task's tag and address; counters, task load
 *   decide (failover) -> release the failed task, pick another (back-off already set)
 *   failed            -> task error + back-off (pool.fail)
 *   closed            -> release the task, bytes into the task's and service's counters
 *   answered          -> the task's failures cleared (pool.succeed), asked for only
 *                        while it has failures: the flow's first reply, as a TCP connect
 *
 * Per task the listener keeps one Closable in the pool (BackendFlows), holding the
 * count of the task's flows here, so draining works as for the JS flows: a drained
 * task is forgotten when its last flow ends, and its flows are closed in C at the
 * drain timeout.
 */
import { constants } from 'node:os';
import type { Backend, Closable } from './backend.js';
import type { ConnView } from './conntable.js';
import type { MeshSettings } from './constants.js';
import type { ListenerInfo, ServiceCounters } from './listener.js';
import type { Pool } from './pool.js';
import type { FlowKey } from './types.js';
import { ipv4FromU32, ipv4ToU32, type UdpEngine, type UdpFlowOwner, type UdpTarget } from './udp-engine.js';
import { errnoName } from '../native/index.js';

/** One task's flows on this listener, as the pool sees them (drain closes them all). */
class BackendFlows implements UdpTarget, Closable {
  flows = 0;
  detach: (() => void) | undefined;

  constructor(
    readonly backend: Backend,
    readonly tag: number,
    readonly host: string,
    readonly ip: number,
    readonly port: number,
    private readonly closeAll: (tag: number) => void,
  ) {}

  close(_reason: string): void {
    this.closeAll(this.tag);
  }

  get watch(): boolean {
    return this.backend.failures > 0;
  }
}

/** The client of the flow being decided, for sh and mh; its address string is made only if asked for. */
class ClientKey implements FlowKey {
  ip = 0;
  srcPort = 0;

  get srcIp(): string {
    return ipv4FromU32(this.ip);
  }
}

const NO_BACKENDS: ReadonlySet<Backend> = new Set();

export class NativeUdpListener implements UdpFlowOwner {
  #lid = 0;
  readonly #targets = new Map<Backend, BackendFlows>();
  /** Index: tag (0 is "none"). */
  readonly #byTag: Array<BackendFlows | undefined> = [undefined];
  readonly #freeTags: number[] = [];
  readonly #key = new ClientKey();

  constructor(
    readonly info: ListenerInfo,
    private readonly pool: Pool,
    private readonly settings: MeshSettings,
    private readonly counters: ServiceCounters,
    private readonly engine: UdpEngine,
  ) {}

  async listen(): Promise<void> {
    this.#lid = this.engine.listen(this, this.info.host, this.info.port, this.settings.udpIdleTimeoutMs);
  }

  close(): void {
    if (this.#lid) this.engine.unlisten(this.#lid);
    this.#lid = 0;
  }

  decide(clientIp: number, clientPort: number, exclude: number, tries: number): UdpTarget | undefined {
    const c = this.counters;
    let tried = NO_BACKENDS;
    if (exclude) {
      c.retries++;
      const old = this.#byTag[exclude];
      if (old) {
        old.backend.retries++;
        this.#release(old);
        tried = new Set([old.backend]);
      }
    } else {
      c.total++;
    }
    this.#key.ip = clientIp;
    this.#key.srcPort = clientPort;
    const b = tries > this.settings.retries ? undefined : this.pool.pick(this.#key, tried);
    const t = b && this.#target(b);
    if (!t) {
      if (b) b.error('address');
      c.noBackend++;
      return undefined;
    }
    if (!exclude) c.active++;
    this.#hold(t);
    return t;
  }

  closed(tag: number, _reason: number, bytesIn: number, bytesOut: number): void {
    const t = tag ? this.#byTag[tag] : undefined;
    if (t) {
      t.backend.bytesIn += bytesIn;
      t.backend.bytesOut += bytesOut;
      this.#release(t);
    }
    const c = this.counters;
    c.active--;
    c.bytesIn += bytesIn;
    c.bytesOut += bytesOut;
  }

  failed(tag: number, errno: number): void {
    const t = this.#byTag[tag];
    if (!t) return;
    t.backend.error(errno === constants.errno.ECONNREFUSED ? 'refused' : errnoName(errno).toLowerCase());
    this.pool.fail(t.backend);
  }

  answered(tag: number): void {
    const t = this.#byTag[tag];
    if (t) this.pool.succeed(t.backend);
  }

  /** Rows for `conn ls`, read from C. */
  conns(): ConnView[] {
    const f = this.engine.flows(this.#lid);
    const n = this.engine.c.flowFields;
    const local = `${this.info.host}:${this.info.port}`;
    const out: ConnView[] = [];
    for (let i = 0; i + n <= f.length; i += n) {
      const t = this.#byTag[f[i + 2]!];
      out.push({
        proto: 'udp',
        state: 'UDP',
        client: `${ipv4FromU32(f[i]!)}:${f[i + 1]}`,
        local,
        service: this.info.service,
        backend: t && `${t.backend.spec.host}:${t.backend.spec.port}`,
        backendName: t?.backend.spec.name,
        expiresInMs: Math.max(0, this.settings.udpIdleTimeoutMs - f[i + 3]!),
        bytesIn: f[i + 4]!,
        bytesOut: f[i + 5]!,
      });
    }
    return out;
  }

  /** The task's tag and address for C; a new tag when the task is new here or its address changed. */
  #target(b: Backend): BackendFlows | undefined {
    const cur = this.#targets.get(b);
    if (cur && cur.host === b.spec.host && cur.port === b.spec.port) return cur;
    const ip = ipv4ToU32(b.spec.host);
    if (ip === undefined) return undefined;
    const tag = this.#freeTags.pop() ?? this.#byTag.length;
    const t = new BackendFlows(b, tag, b.spec.host, ip, b.spec.port, (tag) => this.engine.closeTag(this.#lid, tag));
    this.#byTag[tag] = t;
    this.#targets.set(b, t);
    if (cur && cur.flows === 0) this.#forget(cur);
    return t;
  }

  #hold(t: BackendFlows): void {
    if (t.flows++ === 0) {
      t.detach = this.pool.attach(t.backend, t);
      return;
    }
    t.backend.active++;
    t.backend.total++;
  }

  #release(t: BackendFlows): void {
    if (--t.flows > 0) {
      t.backend.active--;
      return;
    }
    t.detach?.();
    t.detach = undefined;
    const b = t.backend;
    if (this.#targets.get(b) !== t || this.pool.backends.get(b.id) !== b) this.#forget(t);
  }

  #forget(t: BackendFlows): void {
    if (this.#targets.get(t.backend) === t) this.#targets.delete(t.backend);
    this.#byTag[t.tag] = undefined;
    this.#freeTags.push(t.tag);
  }
}
