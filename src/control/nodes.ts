/** Node membership: registration, heartbeat and availability. */
import { NotFoundError, RemovedError } from '../util/errors.js';
import type { Versioned } from './collection.js';
import { withCas, type Context } from './context.js';
import type { Network, Node } from './schema.js';
import { claimKey } from './ipam.js';
import { parseCidr } from './cidr.js';
import { validateSpec } from './spec.js';

/** What a node says of itself on every heartbeat. */
export type NodeSelf = Pick<Node, 'id' | 'addr' | 'hostname'> & Partial<Pick<Node, 'api' | 'nats' | 'espEpoch'>>;

export interface HeartbeatOptions {
  /**
   * The first beat of a new run: what the previous run's overlay said of itself (its ESP
   * epoch, the keys it had installed) is dropped; this run says its own.
   */
  fresh?: boolean;
}

export class NodeOps {
  constructor(private readonly ctx: Context) {}

  async resolve(ref: string): Promise<Versioned<Node>> {
    const direct = await this.ctx.nodes.get(ref);
    if (direct) return direct;
    const all = await this.ctx.nodes.list();
    const matches = all.filter((n) => n.hostname === ref || n.id.startsWith(ref));
    if (matches.length === 1) return (await this.ctx.nodes.get(matches[0]!.id))!;
    throw new NotFoundError(`node ${ref} not found`);
  }

  list(): Promise<Node[]> {
    return this.ctx.nodes.list();
  }

  /**
   * Marks this node ready and refreshes lastSeen, keeping what others set
   * (availability, labels). Called at start and on every heartbeat.
   */
  async heartbeat(self: NodeSelf, o: HeartbeatOptions = {}): Promise<Node> {
    return withCas(async () => {
      const cur = await this.ctx.nodes.get(self.id);
      // A removed node must not write itself back in (its access ends moments later).
      if (cur?.value.status === 'removed') throw new RemovedError(`node ${self.id} was removed from the cluster`);
      const prev = cur && o.fresh ? withoutRun(cur.value) : cur?.value;
      const node: Node = {
        availability: 'active',
        labels: {},
        ...prev,
        ...self,
        status: 'ready',
        lastSeen: this.ctx.now(),
      };
      if (cur) await this.ctx.nodes.update(self.id, node, cur.revision);
      else await this.ctx.nodes.create(self.id, node);
      return node;
    });
  }

  /**
   * Gives node `id` its own address on `network` (once; kept across heartbeats).
   * The IP is claimed first, so two nodes never get the same one.
   */
  async claimAddress(id: string, network: Network): Promise<string> {
    const held = (await this.ctx.nodes.get(id))?.value.addresses?.find((a) => a.network === network.id);
    if (held) return held.ip;
    const ip = await this.ctx.ipam.allocIp(network.id, parseCidr(network.subnet)!, id, 'node');
    try {
      await withCas(async () => {
        const cur = await this.ctx.nodes.get(id);
        if (!cur) throw new NotFoundError(`node ${id} not found`);
        const addresses = [...(cur.value.addresses ?? []).filter((a) => a.network !== network.id), { network: network.id, ip }];
        await this.ctx.nodes.update(id, { ...cur.value, addresses }, cur.revision);
      });
    } catch (err) {
      await this.ctx.ipam.release(claimKey.ip(network.id, ip), id);
      throw err;
    }
    return ip;
  }

  /** Drops every node's address on a removed network and frees the IPs. */
  async releaseAddresses(networkId: string): Promise<void> {
    for (const n of await this.ctx.nodes.list()) {
      const a = n.addresses?.find((x) => x.network === networkId);
      if (!a) continue;
      await withCas(async () => {
        const cur = await this.ctx.nodes.get(n.id);
        if (!cur) return;
        await this.ctx.nodes.update(n.id, { ...cur.value, addresses: (cur.value.addresses ?? []).filter((x) => x.network !== networkId) }, cur.revision);
      });
      await this.ctx.ipam.release(claimKey.ip(networkId, a.ip), n.id);
    }
  }

  /**
   * Read-modify-write of node `id` (compare-and-set, retried on a lost race). `change`
   * returns the new record; undefined when the node is gone and `missingOk`.
   */
  async patch(id: string, change: (cur: Node) => Node, o: { missingOk?: boolean } = {}): Promise<Node | undefined> {
    return withCas(async () => {
      const cur = await this.ctx.nodes.get(id);
      if (!cur) {
        if (o.missingOk) return undefined;
        throw new NotFoundError(`node ${id} not found`);
      }
      const next = change(cur.value);
      await this.ctx.nodes.update(id, next, cur.revision);
      return next;
    });
  }

  async update(ref: string, input: unknown): Promise<Node> {
    const spec = validateSpec.nodeUpdate.assert(input);
    return withCas(async () => {
      const { value, revision } = await this.resolve(ref);
      const node: Node = { ...value, ...(spec.availability && { availability: spec.availability }), labels: { ...value.labels, ...spec.labels } };
      await this.ctx.nodes.update(node.id, node, revision);
      return node;
    });
  }
}

/** A node record without what one run of its overlay reported (HeartbeatOptions.fresh). */
function withoutRun(n: Node): Node {
  const { espEpoch: _e, espInstalled: _i, ...rest } = n;
  return rest;
}
