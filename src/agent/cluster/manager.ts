/**
 * What only managers do (they hold the CA key): admit joining nodes, print and rotate
 * join tokens, renew certificates, remove, promote and demote nodes.
 */
import type { AdmitResult, JoinToken } from '../../api/index.js';
import { validateApi } from '../../api/index.js';
import type { Role } from '../../control/cluster.js';
import type { ClusterOps } from '../../control/cluster.js';
import type { Node } from '../../control/schema.js';
import { withCas } from '../../control/context.js';
import type { ControlPlane } from '../../control/plane.js';
import type { View } from '../../control/view.js';
import { formatToken, hashSecret, newSecret, seal, secretMatches, signNodeCert, unseal } from '../../trust/index.js';
import { AuthError, ConflictError, NotFoundError, ValidationError } from '../../util/errors.js';

export interface ManagerDeps {
  plane: ControlPlane;
  cluster: ClusterOps;
  view: View;
  clusterId: string;
  caCert: string;
  caKey: string;
  /** This node's id: a manager does not remove or demote itself through these calls. */
  nodeId: string;
  /** Is node `id` up, as this agent judges it (heartbeats received)? */
  isUp: (id: string) => boolean;
}

/** Managers as the store lists them (not removed), with their cluster addresses. */
export function managers(nodes: Iterable<Node>): Node[] {
  return [...nodes].filter((n) => n.role === 'manager' && n.status !== 'removed' && n.api && n.nats);
}

export const natsUrl = (n: Node) => `tls://${n.addr}:${n.nats!.client}`;
export const routeOf = (n: Node) => `${n.addr}:${n.nats!.cluster}`;

/** A fresh token for `role`: its hash (what joins are checked against) and the secret sealed for managers. */
export function mintToken(d: Pick<ManagerDeps, 'caKey' | 'clusterId'>): { secret: string; record: { hash: string; sealed: string; rotated: number } } {
  const secret = newSecret();
  return { secret, record: { hash: hashSecret(secret), sealed: seal(secret, d.caKey, d.clusterId), rotated: Date.now() } };
}

export class Manager {
  constructor(private readonly d: ManagerDeps) {}

  async joinToken(role: Role, rotate: boolean): Promise<JoinToken> {
    let secret: string;
    if (rotate) {
      const t = mintToken(this.d);
      await this.d.cluster.setToken(role, t.record);
      secret = t.secret;
    } else {
      secret = unseal((await this.d.cluster.token(role)).sealed, this.d.caKey, this.d.clusterId);
    }
    return { role, token: formatToken(this.d.caCert, secret), managers: managers(this.d.view.nodes.values()).map((n) => n.api!) };
  }

  /**
   * A node presents a token's secret and a CSR (over TLS pinned to our CA). The node is
   * registered before it gets its certificate, so that the managers' nats-servers
   * already list it when it connects.
   */
  async admit(input: unknown): Promise<AdmitResult> {
    const req = validateApi.admit.assert(input);
    const role = await this.#roleOf(req.secret);
    const ca = await this.d.cluster.ca();
    const cert = await signNodeCert({ caCertPem: this.d.caCert, caKeyPem: this.d.caKey, csrPem: req.csr, nodeId: req.nodeId, ips: [req.advertiseAddr], expiryMs: ca.certExpiryMs });
    const listenPort = Number(req.listenAddr.split(':').pop());
    const node: Node = {
      id: req.nodeId,
      addr: req.advertiseAddr,
      hostname: req.hostname,
      availability: 'active',
      labels: {},
      status: 'down',
      lastSeen: Date.now(),
      role,
      api: `${req.advertiseAddr}:${listenPort}`,
      ...(role === 'manager' && { nats: { client: req.natsPort, cluster: req.natsClusterPort } }),
    };
    await withCas(async () => {
      const cur = await this.d.plane.ctx.nodes.get(req.nodeId);
      // A removed node, or one that is not up (a join that never completed, a node gone
      // for good), may come back with a valid token; a live id may not be taken over.
      if (cur && cur.value.status !== 'removed' && this.d.isUp(req.nodeId)) throw new ConflictError(`node id ${req.nodeId} is already in the cluster`, 'nodeId');
      if (cur) await this.d.plane.ctx.nodes.update(req.nodeId, { ...node, labels: cur.value.labels }, cur.revision);
      else await this.d.plane.ctx.nodes.create(req.nodeId, node);
    });
    const all = managers([...this.d.view.nodes.values(), node].filter((n, i, a) => a.findIndex((m) => m.id === n.id) === i));
    return {
      clusterId: this.d.clusterId,
      role,
      caCert: this.d.caCert,
      cert,
      ...(role === 'manager' && { caKey: this.d.caKey }),
      nats: all.map(natsUrl),
      routes: all.filter((n) => n.id !== req.nodeId).map(routeOf),
      managers: all.map((n) => n.api!),
      certExpiryMs: ca.certExpiryMs,
    };
  }

  async #roleOf(secret: string): Promise<Role> {
    for (const role of ['worker', 'manager'] as const) {
      // A token missing is not a match; a store failure is an error, not a wrong token.
      const t = await this.d.cluster.token(role).catch((err: { code?: string }) => {
        if (err.code === 'ENOTFOUND') return undefined;
        throw err;
      });
      if (t && secretMatches(secret, t.hash)) return role;
    }
    throw new AuthError('invalid join token (wrong, or rotated since)');
  }

  /** A node renews its own certificate over mutual TLS: same identity, new key. */
  async renew(nodeId: string, input: unknown): Promise<{ cert: string }> {
    const req = validateApi.renew.assert(input);
    const node = this.d.view.nodes.get(nodeId);
    if (!node || node.status === 'removed') throw new AuthError(`node ${nodeId} is not in the cluster`);
    const ca = await this.d.cluster.ca();
    return { cert: await signNodeCert({ caCertPem: this.d.caCert, caKeyPem: this.d.caKey, csrPem: req.csr, nodeId, ips: [node.addr], expiryMs: ca.certExpiryMs }) };
  }

  /**
   * `node rm`: the node is marked removed (its heartbeats cannot write it back), its
   * tasks leave the cluster, and the managers' nats-servers drop it on their next sync.
   */
  async remove(ref: string, force: boolean): Promise<Node> {
    const { value: node } = await this.d.plane.nodes.resolve(ref);
    if (node.status === 'removed') throw new NotFoundError(`node ${ref} not found`);
    if (node.id === this.d.nodeId) throw new ValidationError('node', 'a node cannot remove itself: run `swarmnet leave` on it');
    if (node.role === 'manager') throw new ValidationError('node', `${node.id} is a manager: demote it first (swarmnet node demote ${node.id})`);
    if (!force && this.d.isUp(node.id)) throw new ConflictError(`node ${node.id} is up: stop it or leave the cluster there first, or use --force`);
    const removed = (await this.d.plane.nodes.patch(node.id, (cur) => ({ ...cur, status: 'removed' })))!;
    for (const t of await this.d.plane.tasks.list()) {
      if (t.node === node.id) await this.d.plane.tasks.remove(t.id).catch(() => undefined);
    }
    return removed;
  }

  /** Changes a node's role in the store; the node itself acts on it (see Agent). */
  async setRole(ref: string, role: Role, o: { force?: boolean } = {}): Promise<Node> {
    const { value: node } = await this.d.plane.nodes.resolve(ref);
    if (node.status === 'removed') throw new NotFoundError(`node ${ref} not found`);
    if (!o.force && role === 'worker' && node.role === 'manager' && managers(this.d.view.nodes.values()).length <= 1) throw new ValidationError('node', 'cannot demote the last manager');
    if (!o.force && role === 'manager' && !this.d.isUp(node.id)) throw new ConflictError(`node ${node.id} is down: it must be up to become a manager`);
    return (await this.d.plane.nodes.patch(node.id, (cur) => ({ ...cur, role })))!;
  }
}
