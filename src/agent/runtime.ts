/**
 * One run of the node's data and control planes on one store:
 * store -> view -> reconciler -> mesh (+ overlay, DNS), node registration and
 * heartbeat, and (single node, managers) the key rotator of encrypted networks. The
 * agent keeps its API up across runtimes and swaps the runtime when the node changes
 * mode (`init`, `join`, `leave`, removal by a manager).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { ControlPlane } from '../control/plane.js';
import type { Store } from '../control/types.js';
import { NatsStore } from '../control/store/nats.js';
import { View } from '../control/view.js';
import { Liveness } from '../control/liveness.js';
import type { Node, Task } from '../control/schema.js';
import { Mesh, type MeshSettings } from '../mesh/index.js';
import { DnsServer, NodeDns, DNS_DEFAULTS, type Upstream } from '../dns/index.js';
import type { Overlay } from '../overlay/index.js';
import { createMetrics } from './metrics.js';
import { ControlMetrics } from '../control/metrics.js';
import { Reconciler } from './reconciler.js';
import { attachTask, startOverlay, type OverlaySettings } from './overlay.js';
import { KeyRotator } from './key-rotator.js';
import { ContainerReaper } from './reaper.js';
import type { EventBus } from './events/bus.js';
import { EventWatcher } from './events/watch.js';

/** An ESP epoch: 8 random bytes in hex (overlay/esp.ts EPOCH_PATTERN), new for every run of the overlay. */
const EPOCH_BYTES = 8;

export interface RuntimeOptions {
  nodeId: string;
  advertiseAddr: string;
  ingressAddr: string;
  mesh: Partial<MeshSettings>;
  /** Use the native splice relay for TCP when it is built. */
  nativeRelay: boolean;
  /** Serve DNS over UDP from the native fast path when it is built (default yes). */
  nativeDns?: boolean;
  /** Threads of the native TCP data plane (--threads; default: the available cores). */
  threads?: number;
  /** Scheduler slice the data-plane threads ask for, in microseconds (--thread-slice; 0: the kernel's default). */
  threadSliceUs?: number;
  heartbeatMs: number;
  nodeTimeoutMs: number;
  logger: Logger;
  /** Embedded DNS for containers; off when undefined. */
  dns?: { host: string; port: number; upstreams: Upstream[]; ttlSeconds: number };
  /** Overlay networks (VXLAN on advertiseAddr:port, ESP on advertiseAddr:espPort); off when undefined (--no-overlay). */
  overlay?: OverlaySettings;
  /** Rotate the key of every encrypted network this often (--key-rotation). */
  keyRotationMs: number;
  /**
   * Run the key rotator here (default yes): single node and `--nats` agents do; in a
   * cluster made with `init`, managers only (cluster mode sets this from the role).
   */
  rotateKeys?: boolean;
  /** Resolvers behind the containers' DNS (on each overlay gateway) for names outside the cluster. */
  containerDnsUpstreams: Upstream[];
  /** What this node says of itself on every heartbeat (role and cluster addresses in a cluster). */
  self?: Partial<Pick<Node, 'api' | 'nats'>>;
  /** Called once when a heartbeat finds this node removed from the cluster by a manager. */
  onRemoved?: () => void;
  /** The agent's event log (`swarmnet events`); this runtime reports what it sees to it. */
  events?: EventBus;
  /** Expiry of this node's cluster certificate, for metrics (undefined outside a cluster). */
  certNotAfter?: () => Date | undefined;
}

export class Runtime {
  #heartbeat: NodeJS.Timeout | undefined;
  #removed = false;
  #stopped: Promise<void> | undefined;
  #events: EventWatcher | undefined;

  private constructor(
    readonly nodeId: string,
    readonly store: Store,
    readonly plane: ControlPlane,
    readonly view: View,
    readonly mesh: Mesh,
    readonly reconciler: Reconciler,
    readonly metrics: Registry,
    readonly dns: DnsServer | undefined,
    readonly overlay: Overlay | undefined,
    /** Attaches a task's network namespace (`task add --netns`); absent with the overlay off. */
    readonly attach: ((task: Task) => Promise<void>) | undefined,
    /** Absent where this node does not rotate keys (cluster workers). */
    readonly keyRotator: KeyRotator | undefined,
    /** Removes tasks of containers that died without a CNI DEL; absent with the overlay off. */
    readonly reaper: ContainerReaper | undefined,
    private readonly log: Logger,
  ) {}

  /** Starts on `store` (opened by the caller; closed by `stop`). */
  static async start(o: RuntimeOptions, store: Store): Promise<Runtime> {
    const { nodeId } = o;
    const log = o.logger;
    const onInvalid = (kind: string, key: string, err: Error) => log.warn({ kind, key, err: err.message }, 'skipping malformed stored object');
    const plane = new ControlPlane(store, nodeId, onInvalid);
    // A new epoch for every run of the overlay: every SA of this run derives from it, so a
    // restarted engine never reuses a key with a sequence number it used before.
    const epoch = o.overlay ? randomBytes(EPOCH_BYTES).toString('hex') : undefined;
    const self = { id: nodeId, addr: o.advertiseAddr, hostname: hostname(), ...o.self, ...(epoch && { espEpoch: epoch }) };
    // Fresh: the previous run's epoch and installed keys are not this run's.
    await plane.nodes.heartbeat(self, { fresh: true });
    // Nodes are judged on this process's monotonic clock from when their beats arrive; the
    // clock holds two beats after our own last one came back (see control/liveness.ts).
    const control = new ControlMetrics();
    const view = new View(store, onInvalid, new Liveness({ self: nodeId, timeoutMs: o.nodeTimeoutMs, holdMs: 2 * o.heartbeatMs, onSelfBeat: (ms) => control.observeSelfBeat(ms) }));
    await view.start();
    const mesh = new Mesh(o.mesh, { nativeRelay: o.nativeRelay, ...(o.threads !== undefined && { threads: o.threads }), ...(o.threadSliceUs !== undefined && { threadSliceUs: o.threadSliceUs }) });
    const dnsTtl = o.dns?.ttlSeconds ?? DNS_DEFAULTS.ttlSeconds;
    // One cluster index and answer cache (rebuilt per view change) and one set of counters
    // behind --dns and every container gateway; only the upstreams differ.
    const nodeDns = new NodeDns({ view, ttlSeconds: dnsTtl, native: o.nativeDns !== false });
    const overlay = epoch === undefined ? undefined : startOverlay({ o, epoch, log, view, plane, nodeId, dns: nodeDns.serverOptions(o.containerDnsUpstreams) });
    const reconciler = new Reconciler({
      view,
      mesh,
      localNode: nodeId,
      ingressAddr: o.ingressAddr,
      ...(overlay && { overlay: overlay.driver }),
      onErrors: (errs) => {
        for (const e of errs) log.error({ listener: e.key, err: e.error.message }, 'cannot open published port');
      },
    });
    reconciler.start();
    await reconciler.idle();
    let dns: DnsServer | undefined;
    if (o.dns) {
      dns = new DnsServer({ host: o.dns.host, port: o.dns.port, ...nodeDns.serverOptions(o.dns.upstreams) });
      await dns.listen();
    }
    const attach = overlay && ((task: Task) => attachTask(task, { overlay: overlay.overlay, reconciler, plane, view }));
    const keyRotator = o.rotateKeys === false ? undefined : new KeyRotator({ plane, view, log, rotationMs: o.keyRotationMs });
    keyRotator?.start();
    const reaper = overlay && new ContainerReaper({ view, plane, overlay: overlay.overlay, nodeId, log });
    reaper?.start();
    const metrics = createMetrics(mesh, {
      ...(overlay && { overlay: overlay.overlay }),
      ...(keyRotator && { keyRotator }),
      ...(reaper && { reaper }),
      dns: nodeDns.stats,
      control: { metrics: control, view },
      ...(o.certNotAfter && { certNotAfter: o.certNotAfter }),
    });
    const rt = new Runtime(nodeId, store, plane, view, mesh, reconciler, metrics, dns, overlay?.overlay, attach, keyRotator, reaper, log);
    if (o.events) {
      rt.#events = new EventWatcher({ view, mesh, bus: o.events });
      rt.#events.start();
    }
    // If the managers' servers drop it first, NATS closes its connection with an
    // authorization violation (its certificate still verifies: only its user is gone).
    if (o.onRemoved && store instanceof NatsStore) {
      void store.nc.closed().then((err) => {
        if (err && /authorization/i.test(err.message)) rt.#onRemoved(o);
      });
    }
    // A manager's `node rm` reaches this node through its watch before the managers'
    // nats-servers drop it (a moment later its connection is closed).
    view.onChange(() => {
      if (view.nodes.get(nodeId)?.status === 'removed') rt.#onRemoved(o);
    });
    rt.#heartbeat = setInterval(() => {
      plane.nodes.heartbeat(self).catch((err: Error & { code?: string }) => {
        if (err.code === 'EREMOVED') return rt.#onRemoved(o);
        log.warn({ err: err.message }, 'heartbeat failed');
      });
      // Liveness is time-based: re-evaluate even when nothing was written.
      void reconciler.kick();
    }, o.heartbeatMs);
    return rt;
  }

  #onRemoved(o: RuntimeOptions): void {
    if (this.#removed) return;
    this.#removed = true;
    this.log.error('this node was removed from the cluster by a manager: it no longer has access to the cluster');
    o.onRemoved?.();
  }

  /** Stops everything this runtime started; overlay links stay, to be adopted by the next run. */
  async stop(): Promise<void> {
    if (this.#stopped) return this.#stopped;
    this.#stopped = this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    clearInterval(this.#heartbeat);
    this.#events?.stop();
    await this.keyRotator?.stop();
    await this.reaper?.stop();
    this.reconciler.stop();
    this.view.stop();
    this.mesh.close();
    this.dns?.close();
    await this.overlay?.close();
    await this.store.close();
  }
}
