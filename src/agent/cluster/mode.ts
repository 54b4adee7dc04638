/**
 * A node's cluster membership, as `docker swarm init|join|leave` give it: creating a
 * cluster (CA, node certificate, tokens, supervised nats-server), joining one through
 * a manager, leaving, and on managers the calls that need the CA key. Persisted as
 * `<data-dir>/cluster.json` + `<data-dir>/trust/`, resumed when the agent restarts.
 */
import { createPublicKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from '@nats-io/transport-node';
import { hostname, networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import type { Server } from 'node:https';
import type { Logger } from 'pino';
import { CLUSTER_API_PORT, NATS_CLIENT_PORT, NATS_CLUSTER_PORT, validateApi, type AdmitResult, type ClusterInfo, type JoinResult, type JoinToken } from '../../api/index.js';
import { ClusterOps, type Role } from '../../control/cluster.js';
import { KINDS } from '../../control/constants.js';
import { newId } from '../../control/ids.js';
import type { Node } from '../../control/schema.js';
import { NatsStore } from '../../control/store/nats.js';
import type { Entry, Store } from '../../control/types.js';
import { writeAtomic, identityName, parseIdentity, certInfo, createCa, createCsr, createKey, loadTrust, needsRenewal, removeTrust, saveTrust, signNodeCert, trustPaths, verifyCert, TRUST_DEFAULTS, type TrustMaterial } from '../../trust/index.js';
import { AuthError, ConflictError, StoreError, ValidationError } from '../../util/errors.js';
import type { ApiHandler } from '../api.js';
import type { Caller } from '../http.js';
import type { Runtime, RuntimeOptions } from '../runtime.js';
import { closeServer } from '../listen.js';
import { NatsServer } from '../natsd/index.js';
import { fetchPinnedCa, requestAdmission } from './joiner.js';
import { Manager, managers, mintToken, natsUrl, routeOf } from './manager.js';
import { peerNode, createClusterServer, type TlsMaterial } from './server.js';
import { readClusterState, removeClusterState, writeClusterState, type ClusterState } from './state.js';
import { callNode, splitHostPort as hostPort } from './peer.js';
import { replicasFor, scaleReplicas } from './replicas.js';
import type { EventBus } from '../events/bus.js';

export interface ClusterModeDeps {
  nodeId: string;
  dataDir: string;
  log: Logger;
  /** The agent's event log: certificate renewals are reported there. */
  events?: EventBus;
  /** The agent's --advertise-addr: the default of init's and join's. */
  advertiseAddr: string;
  nodeTimeoutMs: number;
  handler: ApiHandler;
  swap(open: () => Promise<Store>, extra: Partial<Pick<RuntimeOptions, 'self' | 'onRemoved' | 'advertiseAddr' | 'rotateKeys'>>): Promise<Runtime>;
  single(): Store;
  runtime(): Runtime;
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
}

/** How long a joined node keeps trying NATS while the managers add it to their servers' users. */
const NATS_ADMIT_MS = 30_000;
/** How often a node looks at its certificate's age (renewal itself happens at 50-80% of its life). */
const RENEW_CHECK_MS = 5_000;
/** Managers re-read the node list into their nats-server at most this often. */
const SYNC_MS = 200;
/** ... and at least this often. */
const SYNC_RETRY_MS = 5_000;


export class ClusterMode {
  #state: ClusterState | undefined;
  #trust: TrustMaterial = {};
  #natsd: NatsServer | undefined;
  #server: Server | undefined;
  #manager: Manager | undefined;
  #timers: NodeJS.Timeout[] = [];
  #unwatch: (() => void) | undefined;
  #renewing = false;
  /** `leave` is under way: the removal it writes is its own, not a manager's. */
  #leaving = false;
  /** A manager's manager identity (server and client certificate of its cluster API). */
  #managerTls: TlsMaterial | undefined;

  constructor(private readonly d: ClusterModeDeps) {}

  get active(): boolean {
    return this.#state !== undefined;
  }

  info(): ClusterInfo | undefined {
    const s = this.#state;
    if (!s) return undefined;
    return { id: s.clusterId, role: s.role, listenAddr: s.listenAddr, advertiseAddr: s.advertiseAddr, certExpires: this.#trust.nodeCertPem ? certInfo(this.#trust.nodeCertPem).notAfter.toISOString() : '' };
  }

  /** At agent start: the cluster this node belongs to, or the embedded store. */
  async resume(): Promise<Runtime> {
    const state = readClusterState(this.d.dataDir);
    if (!state) return this.d.swap(async () => this.d.single(), {});
    this.#trust = (await loadTrust(this.d.dataDir)) ?? {};
    await this.#start(state);
    return this.d.runtime();
  }

  async init(body: unknown): Promise<JoinResult> {
    this.#notMember();
    const req = validateApi.init.assert(body);
    const advertiseAddr = req.advertiseAddr ?? this.#defaultAdvertise();
    const listenAddr = req.listenAddr ?? `0.0.0.0:${CLUSTER_API_PORT}`;
    const certExpiryMs = req.certExpiryMs ?? TRUST_DEFAULTS.certExpiryMs;
    const ca = await createCa();
    const { keyPem } = await createKey();
    const cert = await signNodeCert({ caCertPem: ca.certPem, caKeyPem: ca.keyPem, csrPem: await createCsr({ keyPem, nodeId: this.d.nodeId }), nodeId: this.d.nodeId, ips: [advertiseAddr], expiryMs: certExpiryMs });
    const natsPort = req.natsPort ?? NATS_CLIENT_PORT;
    const api = `${advertiseAddr}:${hostPort(listenAddr).port}`;
    const state: ClusterState = {
      clusterId: newId(),
      role: 'manager',
      advertiseAddr,
      listenAddr,
      natsPort,
      natsClusterPort: req.natsClusterPort ?? NATS_CLUSTER_PORT,
      nats: [`tls://${advertiseAddr}:${natsPort}`],
      routes: [],
      managers: [api],
      users: [this.d.nodeId],
    };
    // What this node held alone comes along into the cluster (nothing is lost by init).
    const snapshot = await dump(this.d.runtime().store);
    const trust = { caCertPem: ca.certPem, caKeyPem: ca.keyPem, nodeCertPem: cert, nodeKeyPem: keyPem };
    await this.#enter(state, trust, async (rt) => {
      const cluster = new ClusterOps(rt.store, () => undefined);
      await cluster.createCa({ id: state.clusterId, cert: ca.certPem, certExpiryMs });
      const worker = mintToken({ caKey: ca.keyPem, clusterId: state.clusterId });
      const manager = mintToken({ caKey: ca.keyPem, clusterId: state.clusterId });
      await cluster.setToken('worker', worker.record);
      await cluster.setToken('manager', manager.record);
      for (const e of snapshot) if (e.kind !== 'nodes' && e.kind !== 'cluster') await rt.store.put(e.kind, e.key, e.value);
      await rt.plane.nodes.patch(this.d.nodeId, (cur) => ({ ...cur, role: 'manager' }));
    }, true);
    const wt = await this.#manager!.joinToken('worker', false);
    const mt = await this.#manager!.joinToken('manager', false);
    return { node: this.d.nodeId, role: 'manager', joinCommands: { worker: `swarmnet join --token ${wt.token} ${api}`, manager: `swarmnet join --token ${mt.token} ${api}` } };
  }

  async join(body: unknown): Promise<JoinResult> {
    this.#notMember();
    const req = validateApi.join.assert(body);
    const { caCert, secret, remote } = await fetchPinnedCa(req.token, req.remote);
    const advertiseAddr = req.advertiseAddr ?? this.#defaultAdvertise();
    const listenAddr = req.listenAddr ?? `0.0.0.0:${CLUSTER_API_PORT}`;
    const natsPort = req.natsPort ?? NATS_CLIENT_PORT;
    const natsClusterPort = req.natsClusterPort ?? NATS_CLUSTER_PORT;
    const { keyPem } = await createKey();
    const res: AdmitResult = await requestAdmission(remote, caCert, {
      secret,
      csr: await createCsr({ keyPem, nodeId: this.d.nodeId }),
      nodeId: this.d.nodeId,
      hostname: hostname(),
      advertiseAddr,
      listenAddr,
      natsPort,
      natsClusterPort,
    });
    verifyCert(res.cert, caCert);
    const state: ClusterState = { clusterId: res.clusterId, role: res.role, advertiseAddr, listenAddr, natsPort, natsClusterPort, nats: res.nats, routes: res.routes, managers: res.managers, users: [this.d.nodeId] };
    await this.#enter(state, { caCertPem: caCert, ...(res.caKey && { caKeyPem: res.caKey }), nodeCertPem: res.cert, nodeKeyPem: keyPem }, async () => undefined);
    return { node: this.d.nodeId, role: res.role };
  }

  async leave(body: unknown): Promise<{ node: string }> {
    const req = validateApi.leave.assert(body);
    const s = this.#state;
    if (!s) throw new ValidationError('', 'this node is not part of a cluster');
    if (s.role === 'manager' && !req.force) throw new ConflictError('this node is a manager: leaving can cost the cluster its quorum; demote it first, or use --force');
    // Tell the others (best effort): marked removed, it drops out of their NATS users.
    this.#leaving = true;
    await this.d.runtime().plane.nodes.patch(this.d.nodeId, (cur) => ({ ...cur, status: 'removed' }), { missingOk: true }).catch((err: Error) => this.d.log.warn({ err: err.message }, 'could not mark this node removed in the cluster'));
    await this.#exit();
    this.d.log.info('left the cluster');
    return { node: this.d.nodeId };
  }

  async joinToken(role: string, rotate: boolean): Promise<JoinToken> {
    if (role !== 'worker' && role !== 'manager') throw new ValidationError('role', `must be worker or manager (got ${JSON.stringify(role)})`);
    return this.#asManager().joinToken(role, rotate);
  }

  /** Managers only: a join pointed at a worker gets nothing to send its secret to. */
  async ca(): Promise<{ cert: string }> {
    this.#asManager();
    return { cert: this.#trust.caCertPem! };
  }

  admit(body: unknown): Promise<AdmitResult> {
    return this.#asManager().admit(body);
  }

  renew(caller: Caller, body: unknown): Promise<{ cert: string }> {
    if (caller.kind !== 'node') throw new AuthError('renewal needs the certificate being renewed');
    return this.#asManager().renew(caller.nodeId, body);
  }

  removeNode(ref: string, force: boolean): Promise<Node> {
    return this.#asManager().remove(ref, force);
  }

  /** `node promote|demote`: the store first, then the node is told (with the CA key when promoted). */
  async setRole(ref: string, role: Role): Promise<Node> {
    const manager = this.#asManager();
    const { value: target } = await this.d.runtime().plane.nodes.resolve(ref);
    // Its JetStream peer is removed by a manager that stays one (this one).
    if (role === 'worker' && target.id === this.d.nodeId) throw new ValidationError('node', 'a manager cannot demote itself: run `swarmnet node demote` on another manager');
    const node = await manager.setRole(ref, role);
    const body = { role, ...(role === 'manager' && { caKey: this.#trust.caKeyPem }) };
    try {
      await callNode(node.api!, this.#managerTls!, 'POST', '/v1/swarm/role', body, { nodeId: node.id });
    } catch (err) {
      // The node did not take it: the store goes back to what the node is.
      await manager.setRole(node.id, target.role ?? 'worker', { force: true }).catch(() => undefined);
      throw err;
    }
    // A demoted manager's nats-server is down now: take its peer out of the JetStream
    // meta group, or the group keeps counting it towards the quorum.
    if (role === 'worker' && target.role === 'manager') await this.#systemRequest('$JS.API.SERVER.REMOVE', { peer: node.id });
    return node;
  }

  /** A manager tells this node its new role. */
  async roleChanged(caller: Caller, body: unknown): Promise<{ node: string }> {
    const s = this.#state;
    // The route admits managers only (their manager certificate, which no store write can forge).
    if (!s || caller.kind !== 'node' || !caller.manager) throw new AuthError('only a manager of this cluster can change the role of this node');
    const { role, caKey } = (body ?? {}) as { role?: Role; caKey?: string };
    if (role === 'manager') {
      // Only a holder of the CA key can hand it over: it must match our CA certificate.
      if (!caKey || !sameKey(caKey, this.#trust.caCertPem!)) throw new AuthError('promotion without the cluster CA key');
      if (s.role === 'manager') return { node: this.d.nodeId };
      await saveTrust(this.d.dataDir, { caKeyPem: caKey });
      this.#trust.caKeyPem = caKey;
    } else if (role === 'worker') {
      if (s.role === 'worker') return { node: this.d.nodeId };
      delete this.#trust.caKeyPem;
      for (const f of [trustPaths(this.d.dataDir).caKey, ...Object.values(selfCertFiles(this.d.dataDir, 'manager'))]) rmSync(f, { force: true });
    } else throw new ValidationError('role', 'must be manager or worker');
    const next: ClusterState = { ...s, role };
    // From here the old role's sync must not write its state back.
    this.#unwatch?.();
    this.#unwatch = undefined;
    this.#state = next;
    await writeClusterState(this.d.dataDir, next);
    // Answer first: the switch closes this very connection (the cluster API restarts).
    // A demoted node's nats-server is down before the answer, so that the manager can
    // take its peer out of the JetStream meta group right after.
    if (role === 'worker') await this.#natsd?.stop();
    const started = Date.now();
    setImmediate(() => {
      void this.d.exclusive(async () => {
        await this.#teardown();
        if (role === 'worker') rmSync(join(this.d.dataDir, 'nats'), { recursive: true, force: true });
        await this.#start(next);
        this.d.log.info({ role, ms: Date.now() - started }, 'role changed');
      }).catch((err: Error) => this.d.log.error({ err: err.message }, 'could not change role'));
    });
    return { node: this.d.nodeId };
  }

  async stop(): Promise<void> {
    await this.#teardown();
  }

  // --- internals ---

  /**
   * The agent's --advertise-addr, or, when it was left at loopback, the node's first
   * non-loopback IPv4 address (as `docker swarm init` picks one): other nodes must reach it.
   */
  #defaultAdvertise(): string {
    if (this.d.advertiseAddr !== '127.0.0.1') return this.d.advertiseAddr;
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
    return this.d.advertiseAddr;
  }

  #notMember(): void {
    if (this.#state) throw new ConflictError(`this node is already part of a cluster (as a ${this.#state.role}); run 'swarmnet leave' first`);
  }

  #asManager(): Manager {
    if (!this.#state) throw new ValidationError('', 'this node is not part of a cluster (swarmnet init or swarmnet join first)');
    if (!this.#manager) throw new AuthError('this node is not a manager: run this on a manager');
    return this.#manager;
  }

  #tls() {
    return { ca: this.#trust.caCertPem!, cert: this.#trust.nodeCertPem!, key: this.#trust.nodeKeyPem! };
  }

  /**
   * Who a verified client certificate is: a node of the cluster (not removed), and a
   * manager only with a manager certificate *and* the manager role in the store (a
   * demoted manager's certificate stops counting at once).
   */
  #caller(cn: string | undefined): Caller {
    if (cn === undefined) return { kind: 'anonymous' };
    const { nodeId, identity } = parseIdentity(cn);
    const node = this.d.runtime()?.view.nodes.get(nodeId);
    if (!node || node.status === 'removed' || identity === 'system') return { kind: 'anonymous' };
    return { kind: 'node', nodeId, manager: identity === 'manager' && node.role === 'manager' };
  }



  /**
   * Becomes a member: trust files and state written, cluster runtime started, then
   * `after` (init's first writes). Any failure undoes all of it and goes back to the
   * embedded store: no half-joined state is left behind.
   */
  async #enter(state: ClusterState, trust: TrustMaterial, after: (rt: Runtime) => Promise<void>, creating = false): Promise<void> {
    await saveTrust(this.d.dataDir, trust);
    await writeClusterState(this.d.dataDir, state);
    this.#trust = trust;
    try {
      await this.#start(state, creating);
      await after(this.d.runtime());
    } catch (err) {
      this.d.log.error({ err: (err as Error).message }, 'could not enter the cluster; back to the embedded store');
      await this.#exit();
      throw err;
    }
  }

  /** Leaves cluster mode for good: planes stopped, files removed, embedded store back. */
  async #exit(): Promise<void> {
    await this.#teardown();
    await removeTrust(this.d.dataDir);
    removeClusterState(this.d.dataDir);
    rmSync(join(this.d.dataDir, 'nats'), { recursive: true, force: true });
    this.#trust = {};
    this.#leaving = false;
    await this.d.swap(async () => this.d.single(), {});
  }

  /** `creating`: init's first start, the one that makes the buckets. */
  async #start(state: ClusterState, creating = false): Promise<void> {
    this.#state = state;
    const paths = trustPaths(this.d.dataDir);
    if (state.role === 'manager') {
      await this.#selfCert('system', state);
      const route = await this.#selfCert('route', state);
      this.#natsd = new NatsServer({
        dir: join(this.d.dataDir, 'nats'),
        logger: this.d.log,
        serverName: this.d.nodeId,
        host: '0.0.0.0',
        clientPort: state.natsPort,
        clusterPort: state.natsClusterPort,
        storeDir: join(this.d.dataDir, 'nats', 'jetstream'),
        tls: { certFile: paths.nodeCert, keyFile: paths.nodeKey, caFile: paths.caCert, routeCertFile: route.files.cert, routeKeyFile: route.files.key },
        routes: state.routes,
        users: state.users ?? [this.d.nodeId],
        systemUser: identityName(this.d.nodeId, 'system'),
      });
      await this.#natsd.start();
    }
    const servers = state.role === 'manager' ? [`tls://127.0.0.1:${state.natsPort}`, ...state.nats] : state.nats;
    const api = `${state.advertiseAddr}:${hostPort(state.listenAddr).port}`;
    const rt = await this.d.swap(() => openClusterStore({ servers, name: `swarmnet-${this.d.nodeId}`, tlsCa: paths.caCert, tlsCert: paths.nodeCert, tlsKey: paths.nodeKey, bindOnly: !creating }), {
      advertiseAddr: state.advertiseAddr,
      self: { api, ...(state.role === 'manager' && { nats: { client: state.natsPort, cluster: state.natsClusterPort } }) },
      // Keys of encrypted networks are rotated by the managers (any of them: compare-and-set).
      rotateKeys: state.role === 'manager',
      onRemoved: () => {
        if (this.#leaving) return;
        void this.d.exclusive(async () => {
          if (this.#state) await this.#exit();
        }).catch((err: Error) => this.d.log.error({ err: err.message }, 'could not leave the cluster after removal'));
      },
    });
    if (state.role === 'manager') {
      this.#manager = new Manager({
        plane: rt.plane,
        cluster: new ClusterOps(rt.store, () => undefined),
        view: rt.view,
        clusterId: state.clusterId,
        caCert: this.#trust.caCertPem!,
        caKey: this.#trust.caKeyPem!,
        nodeId: this.d.nodeId,
        isUp: (id) => rt.reconciler.nodeUp(id),
      });
    }
    this.#watchNodes(rt);
    // Managers serve (and call other nodes) as their manager identity: a joining node
    // checks it before it sends a token's secret, and nodes take orders only from it.
    if (state.role === 'manager') this.#managerTls = await this.#selfCert('manager', state);
    const server = createClusterServer(this.#managerTls ?? this.#tls(), (req, res) => this.d.handler(req, res, this.#caller(peerNode(req))));
    const at = hostPort(state.listenAddr);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(at.port, at.host, () => resolve());
    });
    this.#server = server;
    // In turn with mode changes: a renewal must not write trust files after a leave.
    this.#timers.push(setInterval(() => void this.d.exclusive(() => this.#renewIfDue()), RENEW_CHECK_MS));
    this.d.log.info({ role: state.role, cluster: state.clusterId, api: state.listenAddr }, 'cluster member');
  }

  /**
   * Managers keep their nats-server's users (every node not removed) and routes (the
   * other managers) in step with the store, and the buckets' replicas with the
   * number of managers; every member's state file remembers the managers for a restart.
   */
  #watchNodes(rt: Runtime): void {
    let timer: NodeJS.Timeout | undefined;
    const sync = async () => {
      timer = undefined;
      const nodes = [...rt.view.nodes.values()];
      const users = nodes.filter((n) => n.status !== 'removed').map((n) => n.id).sort();
      if (!users.includes(this.d.nodeId)) users.push(this.d.nodeId);
      const ms = managers(nodes);
      const cur = this.#state!;
      // Routes follow the managers in the store, but a view that shows none (not loaded,
      // or cut off) never turns a clustered server back into a standalone one.
      const seen = ms.filter((n) => n.id !== this.d.nodeId).map(routeOf).sort();
      const routes = seen.length > 0 ? seen : cur.routes;
      const next = { ...cur, users, routes, nats: ms.map(natsUrl), managers: ms.map((n) => n.api!) };
      if (JSON.stringify(next) !== JSON.stringify(cur)) {
        this.#state = next;
        await writeClusterState(this.d.dataDir, next);
        await this.#natsd?.update({ users, routes });
      }
      // Workers keep their state file's managers current (where to connect after a restart); the rest is the managers'.
      if (!this.#manager) return;
      const want = replicasFor(ms.length);
      if (want === replicas) return;
      // A lone manager's streams are taken into the new JetStream cluster first (see natsd).
      await this.#natsd?.adopted();
      await scaleReplicas(rt.store, want, this.d.log);
      replicas = want;
    };
    /** Replicas known to be in force; unknown (0) until the first scale check succeeds. */
    let replicas = 0;
    const schedule = () => {
      timer ??= setTimeout(() => void sync().catch((err: Error) => this.d.log.warn({ err: err.message }, 'cluster sync failed')), SYNC_MS);
    };
    const off = rt.view.onChange(schedule);
    this.#unwatch = () => {
      off();
      clearTimeout(timer);
    };
    schedule();
    // Also on a timer: a sync that failed (NATS electing leaders) is tried again.
    this.#timers.push(setInterval(schedule, SYNC_RETRY_MS));
  }



  /**
   * A certificate a manager signs for itself, for an identity only CA-key holders can
   * have (trust `identityName`): `manager` (its cluster API), `system` (its nats-server's
   * system account), `route` (its nats-server's routes). Kept 0600; made again when due
   * for renewal, as node certificates are.
   */
  async #selfCert(identity: 'manager' | 'system' | 'route', state: ClusterState): Promise<TlsMaterial & { files: { cert: string; key: string } }> {
    const files = selfCertFiles(this.d.dataDir, identity);
    const ca = this.#trust.caCertPem!;
    if (existsSync(files.cert) && existsSync(files.key)) {
      const cert = readFileSync(files.cert, 'utf8');
      if (!needsRenewal(cert)) return { ca, cert, key: readFileSync(files.key, 'utf8'), files };
    }
    mkdirSync(dirname(files.cert), { recursive: true, mode: 0o700 });
    const { keyPem } = await createKey();
    const csrPem = await createCsr({ keyPem, nodeId: this.d.nodeId });
    const cert = await signNodeCert({ caCertPem: ca, caKeyPem: this.#trust.caKeyPem!, csrPem, nodeId: this.d.nodeId, ips: [state.advertiseAddr], expiryMs: TRUST_DEFAULTS.certExpiryMs, identity });
    await writeAtomic(files.key, keyPem, 0o600);
    await writeAtomic(files.cert, cert, 0o600);
    return { ca, cert, key: keyPem, files };
  }

  /** One request in the system account of this manager's nats-server. */
  async #systemRequest(subject: string, body: unknown): Promise<unknown> {
    const s = this.#state!;
    const sys = await this.#selfCert('system', s);
    const tls = { ca: this.#trust.caCertPem!, cert: sys.cert, key: sys.key, checkServerIdentity: () => undefined };
    const nc = await connect({ servers: `tls://127.0.0.1:${s.natsPort}`, tls, name: `swarmnet-${this.d.nodeId}-system`, reconnect: false });
    try {
      const reply = JSON.parse((await nc.request(subject, JSON.stringify(body), { timeout: 10_000 })).string()) as { error?: { description?: string } };
      if (reply.error) throw new StoreError(`${subject}: ${reply.error.description ?? 'failed'}`);
      return reply;
    } finally {
      await nc.close();
    }
  }

  /** Renews this node's certificate through a manager (itself, on a manager) before it expires. */
  async #renewIfDue(): Promise<void> {
    const s = this.#state;
    if (!s || this.#renewing || !this.#trust.nodeCertPem || !needsRenewal(this.#trust.nodeCertPem)) return;
    this.#renewing = true;
    try {
      const { keyPem } = await createKey();
      const csr = await createCsr({ keyPem, nodeId: this.d.nodeId });
      let cert: string;
      if (this.#manager) cert = (await this.#manager.renew(this.d.nodeId, { csr })).cert;
      else cert = await this.#renewRemote(s, csr);
      verifyCert(cert, this.#trust.caCertPem!);
      await saveTrust(this.d.dataDir, { nodeKeyPem: keyPem, nodeCertPem: cert });
      this.#trust = { ...this.#trust, nodeKeyPem: keyPem, nodeCertPem: cert };
      if (this.#managerTls) {
        this.#managerTls = await this.#selfCert('manager', s);
        await this.#selfCert('route', s);
        await this.#selfCert('system', s);
      }
      this.#server?.setSecureContext(this.#managerTls ?? this.#tls());
      await this.#natsd?.reload();
      const expires = certInfo(cert).notAfter.toISOString();
      this.d.log.info({ expires }, 'node certificate renewed');
      this.d.events?.emit({ type: 'cert', action: 'renew', id: this.d.nodeId, name: this.d.nodeId, attributes: { expires } });
    } catch (err) {
      this.d.log.warn({ err: (err as Error).message }, 'certificate renewal failed; will retry');
    } finally {
      this.#renewing = false;
    }
  }

  async #renewRemote(s: ClusterState, csr: string): Promise<string> {
    let last: Error | undefined;
    for (const m of s.managers) {
      try {
        return ((await callNode(m, this.#tls(), 'POST', '/v1/swarm/renew', { csr }, { manager: true })) as { cert: string }).cert;
      } catch (err) {
        last = err as Error;
      }
    }
    throw last ?? new Error('no manager known');
  }

  async #teardown(): Promise<void> {
    for (const t of this.#timers.splice(0)) clearTimeout(t);
    this.#unwatch?.();
    this.#unwatch = undefined;
    this.#manager = undefined;
    this.#managerTls = undefined;
    const server = this.#server;
    this.#server = undefined;
    await closeServer(server);
    // The runtime goes first (its store talks to our nats-server), then the server.
    if (this.#state) await this.d.runtime()?.stop();
    await this.#natsd?.stop();
    this.#natsd = undefined;
    this.#state = undefined;
  }
}

/** Where a manager keeps the certificates it makes for itself: the manager identity beside its node certificate (the CLI's --cert-dir finds it there), the others with its nats-server. */
export function selfCertFiles(dataDir: string, identity: 'manager' | 'system' | 'route'): { cert: string; key: string } {
  const dir = identity === 'manager' ? trustPaths(dataDir).dir : join(dataDir, 'nats');
  const name = { manager: 'manager', system: 'sys', route: 'route' }[identity];
  return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}-key.pem`) };
}

/** Every entry of every kind (init copies a single node's state into the new cluster). */
async function dump(store: Store): Promise<Array<Entry & { kind: (typeof KINDS)[number] }>> {
  const out: Array<Entry & { kind: (typeof KINDS)[number] }> = [];
  for (const kind of KINDS) for (const e of await store.list(kind)) out.push({ ...e, kind });
  return out;
}

/** Opens the cluster's NATS with this node's certificate; retries while the managers admit it. */
async function openClusterStore(o: { servers: string[]; name: string; tlsCa: string; tlsCert: string; tlsKey: string; bindOnly: boolean }): Promise<Store> {
  const deadline = Date.now() + NATS_ADMIT_MS;
  for (;;) {
    try {
      return await NatsStore.open(o);
    } catch (err) {
      if (Date.now() > deadline) throw new StoreError(`cannot reach the cluster's NATS: ${(err as Error).message}`, { cause: err });
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** Does this private key belong to the certificate's public key? */
function sameKey(keyPem: string, certPem: string): boolean {
  try {
    const a = createPublicKey(keyPem).export({ format: 'der', type: 'spki' });
    const b = new X509Certificate(certPem).publicKey.export({ format: 'der', type: 'spki' });
    return a.equals(b);
  } catch {
    return false;
  }
}
