/** Node membership: registration, heartbeat and availability. */
import { NotFoundError } from '../util/errors.js';
import type { Versioned } from './collection.js';
import { withCas, type Context } from './context.js';
import type { Node } from './schema.js';
import { validateSpec } from './spec.js';

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
  async heartbeat(self: { id: string; addr: string; hostname: string }): Promise<Node> {
    return withCas(async () => {
      const cur = await this.ctx.nodes.get(self.id);
      const node: Node = {
        availability: 'active',
        labels: {},
        ...cur?.value,
        ...self,
        status: 'ready',
        lastSeen: this.ctx.now(),
      };
      if (cur) await this.ctx.nodes.update(self.id, node, cur.revision);
      else await this.ctx.nodes.create(self.id, node);
      return node;
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
