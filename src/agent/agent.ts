/**
 * The agent: one per node. Keeps the API up (a unix socket always; in a cluster also
 * HTTPS with mutual TLS on the listen address) and runs the node's planes in a
 * Runtime, which it replaces when the node changes mode:
 *
 *   single  -- init -->  cluster (manager: CA key, supervised nats-server)
 *   single  -- join -->  cluster (worker or manager)
 *   cluster -- leave / removed by a manager -->  single
 *
 * `--nats URL` (a NATS the user runs) is a fourth mode with no trust of ours.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Server as HttpServer } from 'node:http';
import type { Logger } from 'pino';
import type { Info } from '../api/index.js';
import { EmbeddedStore } from '../control/store/embedded.js';
import type { NatsStoreOptions } from '../control/store/nats.js';
import type { Store } from '../control/types.js';
import { newId } from '../control/ids.js';
import { createApi, type ApiHandler } from './api.js';
import { Runtime, type RuntimeOptions } from './runtime.js';
import { ClusterMode, type ClusterModeDeps } from './cluster/mode.js';
import { listenSocket, listenMetrics, closeServer } from './listen.js';
import { SwarmnetError } from '../util/errors.js';
import { NatsStore } from '../control/store/nats.js';
import { EventBus } from './events/bus.js';

export interface AgentOptions extends Omit<RuntimeOptions, 'nodeId' | 'self' | 'onRemoved'> {
  nodeId?: string;
  dataDir: string;
  /** The API's unix socket (mode 0660, group `socketGroup` when that group exists). */
  socket: string;
  socketGroup: string;
  /** Plain-HTTP Prometheus endpoint (only /metrics); off when undefined. */
  metricsAddr?: { host: string; port: number };
  version: string;
  /** Cluster mode on a NATS the user runs; otherwise single or (after init/join) our own cluster. */
  nats?: NatsStoreOptions;
}

/** The node is between modes (init, join, leave running). */
export class ModeError extends SwarmnetError {
  override readonly code = 'EMODE';
}

export class Agent {
  #rt!: Runtime;
  #cluster: ClusterMode | undefined;
  #socket: HttpServer | undefined;
  #metrics: HttpServer | undefined;
  /** Mode changes run one at a time. */
  #changing: Promise<unknown> = Promise.resolve();
  /** The event log outlives runtimes: a `swarmnet events` stream goes on across init, join and leave. */
  readonly events = new EventBus();

  private constructor(
    readonly nodeId: string,
    private readonly o: AgentOptions,
    private readonly log: Logger,
  ) {}

  get runtime(): Runtime {
    return this.#rt;
  }

  static async start(o: AgentOptions): Promise<Agent> {
    mkdirSync(o.dataDir, { recursive: true });
    const nodeId = o.nodeId ?? persistentNodeId(o.dataDir);
    const agent = new Agent(nodeId, o, o.logger.child({ node: nodeId }));
    const handler = createApi({
      rt: () => {
        // Between two runtimes (a mode change in progress) there is none to serve from.
        if (!agent.#rt) throw new ModeError('this node is changing its cluster membership; try again in a moment');
        return agent.#rt;
      },
      swarm: {
        info: () => agent.#info(),
        init: (b) => agent.#exclusive(() => agent.#mode().init(b)),
        join: (b) => agent.#exclusive(() => agent.#mode().join(b)),
        leave: (b) => agent.#exclusive(() => agent.#mode().leave(b)),
        joinToken: (role, rotate) => agent.#mode().joinToken(role, rotate),
        ca: () => agent.#mode().ca(),
        admit: (b) => agent.#mode().admit(b),
        renew: (c, b) => agent.#mode().renew(c, b),
        removeNode: (ref, force) => agent.#mode().removeNode(ref, force),
        setRole: (ref, role) => agent.#mode().setRole(ref, role),
        roleChanged: (c, b) => agent.#exclusive(() => agent.#mode().roleChanged(c, b)),
      },
      version: o.version,
      events: agent.events,
      applyBeforeReply: () => !agent.#cluster?.active && !o.nats,
    });
    agent.#cluster = new ClusterMode(agent.#clusterDeps(handler));
    agent.#rt = o.nats ? await Runtime.start(agent.#runtimeOptions(), await NatsStore.open({ name: `swarmnet-${nodeId}`, ...o.nats })) : await agent.#cluster.resume();
    agent.#socket = await listenSocket(o.socket, o.socketGroup, (req, res) => handler(req, res, { kind: 'local' }));
    if (o.metricsAddr) agent.#metrics = await listenMetrics(o.metricsAddr, () => agent.#rt.metrics.metrics());
    agent.log.info({ mode: agent.#info().mode, socket: o.socket, overlay: o.overlay ? `${o.advertiseAddr}:${o.overlay.port}` : 'off', esp: o.overlay ? `${o.advertiseAddr}:${o.overlay.espPort}` : 'off', keyRotator: agent.#rt.keyRotator ? 'on' : 'off', dns: o.dns && `${o.dns.host}:${o.dns.port}`, ingress: o.ingressAddr, relay: agent.#rt.mesh.relay ? 'native' : 'js', listening: agent.#rt.mesh.listening() }, 'agent ready');
    return agent;
  }

  #mode(): ClusterMode {
    if (this.o.nats) throw new ModeError('this agent runs on a NATS given with --nats: cluster membership is managed there, not with init/join');
    return this.#cluster!;
  }

  #info(): Pick<Info, 'mode' | 'cluster'> {
    if (this.o.nats) return { mode: 'nats' };
    const c = this.#cluster?.info();
    return c ? { mode: 'cluster', cluster: c } : { mode: 'single' };
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#changing.then(fn, fn);
    this.#changing = run.catch(() => undefined);
    return run;
  }

  #runtimeOptions(extra: Partial<Pick<RuntimeOptions, 'self' | 'onRemoved' | 'advertiseAddr' | 'rotateKeys'>> = {}): RuntimeOptions {
    const { dataDir: _d, socket: _s, socketGroup: _g, metricsAddr: _m, version: _v, nats: _n, ...base } = this.o;
    const certNotAfter = () => {
      const expires = this.#cluster?.info()?.certExpires;
      return expires ? new Date(expires) : undefined;
    };
    return { ...base, nodeId: this.nodeId, logger: this.log, events: this.events, certNotAfter, ...extra };
  }

  #clusterDeps(handler: ApiHandler): ClusterModeDeps {
    return {
      nodeId: this.nodeId,
      dataDir: this.o.dataDir,
      log: this.log,
      events: this.events,
      advertiseAddr: this.o.advertiseAddr,
      nodeTimeoutMs: this.o.nodeTimeoutMs,
      handler,
      /** Stops the running runtime (if any) and starts one on the store `open` gives. */
      swap: async (open: () => Promise<Store>, extra) => {
        if (this.#rt) await this.#rt.stop();
        this.#rt = undefined as unknown as Runtime;
        this.#rt = await Runtime.start(this.#runtimeOptions(extra), await open());
        return this.#rt;
      },
      single: () => EmbeddedStore.open(join(this.o.dataDir, 'store')),
      runtime: () => this.#rt,
      exclusive: (fn) => this.#exclusive(fn),
    };
  }

  async stop(): Promise<void> {
    await this.#changing.catch(() => undefined);
    // A cluster member's runtime goes down with its cluster parts (store before nats-server).
    if (this.#cluster?.active) await this.#cluster.stop();
    else await this.#rt?.stop();
    await closeServer(this.#socket);
    await closeServer(this.#metrics);
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
