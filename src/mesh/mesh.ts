/**
 * The routing mesh: one listener per published port, each with its pool of
 * backends. `apply` takes the complete wanted set (level-triggered, like
 * kube-proxy) and changes only what differs; established flows survive every change.
 */
import { availableParallelism } from 'node:os';
import type { HealthCheck } from '../control/schema.js';
import type { SchedulerName } from '../control/constants.js';
import { ConnTable, type ConnView } from './conntable.js';
import { DEFAULTS, type MeshSettings } from './constants.js';
import { HealthChecker } from './health.js';
import { newCounters, type ListenerInfo, type ServiceCounters } from './listener.js';
import { Pool } from './pool.js';
import { NativeRelay, setThreadSlice } from './relay.js';
import { TcpListener } from './tcp.js';
import { NativeTcpListener } from './tcp-native.js';
import type { BackendSpec } from './types.js';
import { UdpFlowBound, UdpListener } from './udp.js';
import { UdpEngine, type UdpStats } from './udp-engine.js';
import { NativeUdpListener } from './udp-native.js';

/** The connection table's sweep at its finest (idle timeouts of a few tens of ms). */
const MIN_SWEEP_MS = 10;

const NO_UDP_STATS: UdpStats = {
  flows: 0,
  sockets: 0,
  flowsTotal: 0,
  earlyDrop: 0,
  tableFull: 0,
  noPort: 0,
  rxPackets: 0,
  txPackets: 0,
  truncated: 0,
  badSource: 0,
  stray: 0,
  icmp: 0,
  replayed: 0,
  replayLost: 0,
  unforwarded: 0,
  txErrors: 0,
  socketErrors: 0,
};

export interface ListenerSpec extends ListenerInfo {
  lb: SchedulerName;
  healthCheck?: HealthCheck;
  backends: BackendSpec[];
}

export interface BackendStats {
  service: string;
  protocol: string;
  port: number;
  backend: string;
  name: string;
  active: number;
  total: number;
  bytesIn: number;
  bytesOut: number;
  healthy: boolean;
  draining: boolean;
  backoff: boolean;
  errors: Record<string, number>;
  /** Flows moved from this task to another after it failed them. */
  retries: number;
  /** Connect times: per bucket of CONNECT_BUCKETS_S (not cumulative), the last past them; and their sum, seconds. */
  connectCounts: Float64Array;
  connectSeconds: number;
}

export interface ServiceStats extends ServiceCounters {
  service: string;
}

interface Slot {
  spec: ListenerSpec;
  pool: Pool;
  listener: TcpListener | NativeTcpListener | UdpListener | NativeUdpListener;
  counters: ServiceCounters;
  health: HealthChecker | undefined;
}

export interface ApplyError {
  key: string;
  error: Error;
}

export class Mesh {
  readonly settings: MeshSettings;
  readonly table: ConnTable;
  readonly #slots = new Map<string, Slot>();
  /** Service counters outlive listeners so metrics stay monotonic across updates. */
  readonly #counters = new Map<string, ServiceCounters>();
  /** Pools whose listener is gone but whose flows still drain. */
  readonly #draining = new Set<Pool>();
  /** Native listeners, open or closed with relays left: their counters and flows live in C. */
  readonly #native = new Set<NativeTcpListener>();

  /** The native splice relay for TCP, when built and not disabled. */
  readonly relay: NativeRelay | undefined;
  /** The native UDP engine: made with the first UDP listener; null when off or not built. */
  #udp: UdpEngine | null | undefined;
  /** Data-plane threads (--threads): the TCP relay's and the UDP engine's. */
  readonly #threads: number;
  /** --max-flows for the JS UDP path. */
  readonly #jsUdpBound: UdpFlowBound;

  constructor(settings: Partial<MeshSettings> = {}, options: { nativeRelay?: boolean; threads?: number; threadSliceUs?: number } = {}) {
    this.settings = { ...DEFAULTS, ...settings };
    this.#threads = options.threads ?? availableParallelism();
    if (options.nativeRelay !== false && options.threadSliceUs !== undefined) setThreadSlice(options.threadSliceUs);
    this.relay = options.nativeRelay === false ? undefined : NativeRelay.shared(this.#threads);
    if (options.nativeRelay === false) this.#udp = null;
    // Flows store the table's coarse clock, up to one sweep old; a sweep no longer than
    // half the shortest idle timeout so an active flow never reads as idle (a 500 ms
    // --udp-timeout under a 1 s sweep expired every busy JS flow each second).
    const s = this.settings;
    this.table = new ConnTable(Math.max(MIN_SWEEP_MS, Math.min(s.sweepIntervalMs, s.udpIdleTimeoutMs / 2, s.tcpIdleTimeoutMs / 2)));
    this.#jsUdpBound = new UdpFlowBound(this.settings.udpMaxFlows);
  }

  static key(s: { protocol: string; host: string; port: number }): string {
    return `${s.protocol}/${s.host}:${s.port}`;
  }

  /** Converges listeners and pools on `specs`; returns the listeners that could not be opened. */
  async apply(specs: readonly ListenerSpec[]): Promise<ApplyError[]> {
    const wanted = new Map(specs.map((s) => [Mesh.key(s), s]));
    for (const [key, slot] of this.#slots) {
      const next = wanted.get(key);
      if (!next || next.service !== slot.spec.service || next.proxyProtocol !== slot.spec.proxyProtocol) this.#remove(key, slot);
    }
    const errors: ApplyError[] = [];
    for (const [key, spec] of wanted) {
      const slot = this.#slots.get(key);
      if (slot) {
        this.#update(slot, spec);
        continue;
      }
      try {
        await this.#add(key, spec);
      } catch (error) {
        errors.push({ key, error: error as Error });
      }
    }
    return errors;
  }

  async #add(key: string, spec: ListenerSpec): Promise<void> {
    const pool = new Pool(spec.lb, this.settings);
    pool.update(spec.backends, spec.lb);
    const counters = this.#countersFor(spec.service);
    const listener =
      spec.protocol === 'udp'
        ? this.#udpEngine()
          ? new NativeUdpListener(spec, pool, this.settings, counters, this.#udp!)
          : new UdpListener(spec, pool, this.table, this.settings, counters, this.#jsUdpBound)
        : this.relay
          ? new NativeTcpListener(spec, pool, this.settings, counters, this.relay)
          : new TcpListener(spec, pool, this.table, this.settings, counters);
    await listener.listen();
    if (listener instanceof NativeTcpListener) this.#native.add(listener);
    const health = spec.healthCheck && new HealthChecker(pool, spec.healthCheck);
    this.#slots.set(key, { spec, pool, listener, counters, health });
  }

  #update(slot: Slot, spec: ListenerSpec): void {
    // Most passes change one service: the reconciler hands unchanged specs back as the
    // same objects, and those listeners' pools are left untouched.
    if (spec === slot.spec) return;
    slot.spec = spec;
    if (slot.listener instanceof NativeTcpListener) slot.listener.sync(); // drain needs the flows C has now
    slot.pool.update(spec.backends, spec.lb);
    if (spec.healthCheck && slot.health) slot.health.reconfigure(spec.healthCheck);
    else if (spec.healthCheck) slot.health = new HealthChecker(slot.pool, spec.healthCheck);
    else if (slot.health) {
      slot.health.stop();
      slot.health = undefined;
      slot.pool.rebuild();
    }
  }

  #remove(key: string, slot: Slot): void {
    slot.listener.close();
    slot.health?.stop();
    slot.pool.close();
    if (!slot.pool.empty) this.#draining.add(slot.pool);
    this.#slots.delete(key);
  }

  /** The native UDP engine, made on first use; undefined when the addon lacks it (the JS path then). */
  #udpEngine(): UdpEngine | undefined {
    if (this.#udp === undefined) this.#udp = UdpEngine.create({ maxFlows: this.settings.udpMaxFlows, sockets: this.settings.udpSockets, threads: this.#threads }) ?? null;
    return this.#udp ?? undefined;
  }

  /** The UDP engine's counters; with UDP in JS, its flow bound's (a socket per flow; the rest stay 0). */
  udpStats(): UdpStats | undefined {
    if (this.#udp) return this.#udp.stats();
    const b = this.#jsUdpBound;
    return { ...NO_UDP_STATS, flows: b.flows, sockets: b.flows, earlyDrop: b.earlyDrop, tableFull: b.tableFull };
  }

  /** The native UDP engine's counters per data-plane thread (empty without the engine). */
  udpThreadStats(): UdpStats[] {
    return (this.#udp && this.#udp.threadStats()) ?? [];
  }

  #countersFor(service: string): ServiceCounters {
    let c = this.#counters.get(service);
    if (!c) this.#counters.set(service, (c = newCounters()));
    return c;
  }

  /** Forgets counters of services that no longer exist (called by the reconciler). */
  pruneCounters(live: ReadonlySet<string>): void {
    for (const name of this.#counters.keys()) if (!live.has(name)) this.#counters.delete(name);
  }

  conns(service?: string): ConnView[] {
    const native = [...this.#syncNative()].filter((l) => !service || l.info.service === service).flatMap((l) => l.conns());
    const out = [...this.table.list(service), ...native];
    for (const { listener } of this.#slots.values()) {
      if (listener instanceof NativeUdpListener && (!service || listener.info.service === service)) out.push(...listener.conns());
    }
    return out;
  }

  /** Brings the native listeners' counters into the JS objects; forgets those whose relays all ended. */
  #syncNative(): Set<NativeTcpListener> {
    for (const l of this.#native) {
      l.sync();
      if (l.gone) this.#native.delete(l);
    }
    return this.#native;
  }

  serviceStats(): ServiceStats[] {
    this.#syncNative();
    return [...this.#counters].map(([service, c]) => ({ service, ...c }));
  }

  backendStats(): BackendStats[] {
    this.#syncNative();
    const now = Date.now();
    const out: BackendStats[] = [];
    for (const slot of this.#slots.values()) {
      for (const b of slot.pool.backends.values()) {
        out.push({
          service: slot.spec.service,
          protocol: slot.spec.protocol,
          port: slot.spec.port,
          backend: `${b.spec.host}:${b.spec.port}`,
          name: b.spec.name,
          active: b.active,
          total: b.total,
          bytesIn: b.bytesIn,
          bytesOut: b.bytesOut,
          healthy: b.healthy,
          draining: b.draining,
          backoff: b.downUntil > now,
          errors: Object.fromEntries(b.errors),
          retries: b.retries,
          connectCounts: b.connectCounts,
          connectSeconds: b.connectSeconds,
        });
      }
    }
    for (const p of this.#draining) if (p.empty) this.#draining.delete(p);
    return out;
  }

  /** The native relay threads' counters (empty on the JavaScript relay). */
  threadStats(): Array<{ accepted: number; open: number }> {
    return this.relay?.threadStats() ?? [];
  }

  listening(): string[] {
    return [...this.#slots.keys()];
  }

  close(): void {
    for (const [key, slot] of this.#slots) this.#remove(key, slot);
    for (const p of this.#draining) for (const b of p.backends.values()) for (const f of [...b.flows]) f.close('shutdown');
    this.#udp?.destroy();
    this.table.close();
  }
}
