/** The control plane's operations over one store; the agent API calls these. */
import type { InvalidHandler } from './collection.js';
import { createContext, type Context } from './context.js';
import { KeyOps } from './keys.js';
import { NetworkOps } from './networks.js';
import { NodeOps } from './nodes.js';
import { ServiceOps } from './services.js';
import { TaskOps } from './tasks.js';
import type { Store } from './types.js';

export class ControlPlane {
  readonly ctx: Context;
  readonly networks: NetworkOps;
  readonly nodes: NodeOps;
  readonly services: ServiceOps;
  readonly tasks: TaskOps;
  /** Key rings of encrypted networks. */
  readonly keys: KeyOps;

  constructor(store: Store, localNode: string, onInvalid: InvalidHandler) {
    this.ctx = createContext(store, localNode, onInvalid);
    this.networks = new NetworkOps(this.ctx);
    this.nodes = new NodeOps(this.ctx);
    this.services = new ServiceOps(this.ctx, this.networks);
    this.tasks = new TaskOps(this.ctx, this.services, this.networks, this.nodes);
    this.keys = new KeyOps(this.ctx, this.networks);
  }

  /** Removes a network, its key ring and the nodes' own addresses on it. */
  async removeNetwork(ref: string) {
    const net = await this.networks.remove(ref);
    // A ring left behind by a failure here is an orphan the key rotator removes.
    await this.keys.remove(net.id);
    await this.nodes.releaseAddresses(net.id);
    return net;
  }

  removeService(ref: string) {
    return this.services.remove(ref, (id) => this.tasks.remove(id));
  }
}
