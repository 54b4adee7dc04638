/**
 * The agent: one per node. Wires store -> view -> reconciler -> mesh, registers and
 * heartbeats this node, and serves the HTTP API.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { ControlPlane } from '../control/plane.js';
import { EmbeddedStore } from '../control/store/embedded.js';
import { NatsStore, type NatsStoreOptions } from '../control/store/nats.js';
import type { Store } from '../control/types.js';
import { View } from '../control/view.js';
import { newId } from '../control/ids.js';
import { Mesh, type MeshSettings } from '../mesh/index.js';
import { createApi } from './api.js';
import { DnsServer, clusterHandler, forwardHandler, DNS_DEFAULTS, type Upstream } from '../dns/index.js';
import { createMetrics } from './metrics.js';
import { Reconciler } from './reconciler.js';
import { Overlay } from '../overlay/index.js';
import type { Task } from '../control/schema.js';
import { attachTask, startOverlay } from './overlay.js';

export interface AgentOptions {
  nodeId?: string;
  advertiseAddr: string;
  dataDir: string;
  apiHost: string;
  apiPort: number;
  ingressAddr: string;
  mesh: Partial<MeshSettings>;
  /** Use the native splice relay for TCP when it is built (default true). */
  nativeRelay: boolean;
  heartbeatMs: number;
  nodeTimeoutMs: number;
  version: string;
  logger: Logger;
  /** Embedded DNS for containers; off when undefined. */
  dns?: { host: string; port: number; upstreams: Upstream[]; ttlSeconds: number };
  /** Cluster mode: NATS JetStream KV; otherwise the embedded store in dataDir. */
  nats?: NatsStoreOptions;
  /** Overlay networks (VXLAN on advertiseAddr:port); off when undefined (--no-overlay). */
  overlay?: { port: number; mtu: number };
  /** Resolvers behind the containers' DNS (on each overlay gateway) for names outside the cluster. */
  containerDnsUpstreams: Upstream[];
}

export class Agent {
  #heartbeat: NodeJS.Timeout | undefined;

  private constructor(
    readonly nodeId: string,
    readonly store: Store,
    readonly plane: ControlPlane,
    readonly view: View,
    readonly mesh: Mesh,
    readonly reconciler: Reconciler,
    readonly api: Server,
    private readonly log: Logger,
    readonly dns: DnsServer | undefined,
    readonly overlay: Overlay | undefined,
  ) {}

  static async start(o: AgentOptions): Promise<Agent> {
    mkdirSync(o.dataDir, { recursive: true });
    const nodeId = o.nodeId ?? persistentNodeId(o.dataDir);
    const log = o.logger.child({ node: nodeId });
    const onInvalid = (kind: string, key: string, err: Error) => log.warn({ kind, key, err: err.message }, 'skipping malformed stored object');
    const store: Store = o.nats ? await NatsStore.open({ name: `swarmnet-${nodeId}`, ...o.nats }) : EmbeddedStore.open(join(o.dataDir, 'store'));
    const plane = new ControlPlane(store, nodeId, onInvalid);
    const self = { id: nodeId, addr: o.advertiseAddr, hostname: hostname() };
    await plane.nodes.heartbeat(self);
    const view = new View(store, onInvalid);
    await view.start();
    const mesh = new Mesh(o.mesh, { nativeRelay: o.nativeRelay });
    const dnsTtl = o.dns?.ttlSeconds ?? DNS_DEFAULTS.ttlSeconds;
    // One cluster handler (its index is rebuilt per view change) behind --dns and every
    // container gateway; only the upstreams differ.
    const cluster = clusterHandler({ view, ttlSeconds: dnsTtl });
    const dnsHandlers = (upstreams: Upstream[]) => [cluster, forwardHandler({ upstreams, timeoutMs: DNS_DEFAULTS.upstreamTimeoutMs })];
    const overlay = o.overlay && startOverlay({ o, log, view, plane, nodeId, handlers: dnsHandlers(o.containerDnsUpstreams) });
    // Time of the last heartbeat the store took; liveness is judged on a clock that stops
    // one missed beat after it (see ReconcilerOptions.clock).
    let lastBeat = Date.now();
    const reconciler = new Reconciler({
      clock: () => Math.min(Date.now(), lastBeat + 2 * o.heartbeatMs),
      view,
      mesh,
      localNode: nodeId,
      ingressAddr: o.ingressAddr,
      nodeTimeoutMs: o.nodeTimeoutMs,
      ...(overlay && { overlay: overlay.driver }),
      onErrors: (errs) => {
        for (const e of errs) log.error({ listener: e.key, err: e.error.message }, 'cannot open published port');
      },
    });
    reconciler.start();
    await reconciler.idle();
    let dns: DnsServer | undefined;
    if (o.dns) {
      dns = new DnsServer({
        host: o.dns.host,
        port: o.dns.port,
        handlers: dnsHandlers(o.dns.upstreams),
      });
      await dns.listen();
    }
    const api = createApi({
      plane,
      mesh,
      reconciler,
      view,
      metrics: createMetrics(mesh, overlay?.overlay),
      nodeId,
      ...(overlay && { attach: (task: Task) => attachTask(task, { overlay: overlay.overlay, reconciler, plane, view }) }),
      version: o.version,
      nodeTimeoutMs: o.nodeTimeoutMs,
      applyBeforeReply: !o.nats,
    });
    await new Promise<void>((resolve, reject) => {
      api.once('error', reject);
      api.listen(o.apiPort, o.apiHost, () => resolve());
    });
    const agent = new Agent(nodeId, store, plane, view, mesh, reconciler, api, log, dns, overlay?.overlay);
    agent.#heartbeat = setInterval(() => {
      plane.nodes.heartbeat(self).then(
        () => (lastBeat = Date.now()),
        (err: Error) => log.warn({ err: err.message }, 'heartbeat failed'),
      );
      // Liveness is time-based: re-evaluate even when nothing was written.
      void reconciler.kick();
    }, o.heartbeatMs);
    const addr = api.address() as AddressInfo;
    log.info({ overlay: o.overlay ? `${o.advertiseAddr}:${o.overlay.port}` : 'off', dns: o.dns && `${o.dns.host}:${o.dns.port}`, api: `${addr.address}:${addr.port}`, ingress: o.ingressAddr, relay: mesh.relay ? 'native' : 'js', listening: mesh.listening() }, 'agent ready');
    return agent;
  }

  get apiAddress(): AddressInfo {
    return this.api.address() as AddressInfo;
  }

  async stop(): Promise<void> {
    clearInterval(this.#heartbeat);
    this.reconciler.stop();
    this.view.stop();
    this.mesh.close();
    this.dns?.close();
    await this.overlay?.close();
    await new Promise<void>((r) => {
      this.api.close(() => r());
      this.api.closeAllConnections();
    });
    await this.store.close();
    this.log.info('agent stopped');
  }
}

/** A node keeps its id across restarts, like a Swarm node's identity. */
function persistentNodeId(dir: string): string {
  const file = join(dir, 'node-id');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const id = newId();
  writeFileSync(file, id + '\n');
  return id;
}
