/**
 * Overlay network lifecycle: name, subnet and VNI are claims, released on removal. An
 * encrypted network's key ring is stored in the same transaction (keys.ts).
 */
import { ConflictError, NotFoundError } from '../util/errors.js';
import { intToIp, parseCidr } from './cidr.js';
import { claimKey } from './ipam.js';
import { newId } from './ids.js';
import type { Network } from './schema.js';
import { validateSpec } from './spec.js';
import { transaction, type Context } from './context.js';
import type { Versioned } from './collection.js';
import { DEFAULT_CIPHER } from './constants.js';
import { storeNewRing } from './keys.js';

export class NetworkOps {
  constructor(private readonly ctx: Context) {}

  /** By name, then by id, then by unique id prefix (as docker does). */
  async resolve(ref: string): Promise<Versioned<Network>> {
    const owner = await this.ctx.ipam.owner(claimKey.name('network', ref));
    const byId = owner ? await this.ctx.networks.get(owner) : await this.ctx.networks.get(ref);
    if (byId) return byId;
    const matches = (await this.ctx.networks.list()).filter((n) => n.id.startsWith(ref));
    if (matches.length === 1) return (await this.ctx.networks.get(matches[0]!.id))!;
    throw new NotFoundError(`network ${ref} not found`);
  }

  async create(input: unknown): Promise<Network> {
    const spec = validateSpec.network.assert(input);
    const { ctx } = this;
    const id = newId();
    return transaction(async (undo) => {
      const nameKey = claimKey.name('network', spec.name);
      await ctx.ipam.claim(nameKey, id, 'network').catch((err) => {
        throw err instanceof ConflictError ? new ConflictError(`network ${spec.name} already exists`, 'name') : err;
      });
      undo(() => ctx.ipam.release(nameKey, id));
      const taken = (await ctx.networks.list()).map((n) => parseCidr(n.subnet)!);
      const subnet = await ctx.ipam.allocSubnet(id, taken, spec.subnet ? parseCidr(spec.subnet) : undefined);
      undo(() => ctx.ipam.release(claimKey.subnet(subnet), id));
      const vni = await ctx.ipam.allocVni(id);
      undo(() => ctx.ipam.release(claimKey.vni(vni), id));
      const net: Network = {
        id,
        name: spec.name,
        driver: 'overlay',
        vni,
        subnet: spec.subnet ?? `${intToIp(subnet.base)}/${subnet.prefix}`,
        gateway: intToIp(subnet.base + 1),
        encrypted: spec.encrypted ?? false,
        ...(spec.encrypted && { cipher: spec.cipher ?? DEFAULT_CIPHER }),
        attachable: spec.attachable ?? false,
        labels: spec.labels ?? {},
        createdAt: ctx.now(),
      };
      // The ring first: no encrypted network is ever seen without one (it would not be carried).
      if (net.encrypted) await storeNewRing(ctx, net, undo);
      await ctx.networks.create(id, net);
      return net;
    });
  }

  async list(): Promise<Network[]> {
    return (await this.ctx.networks.list()).sort((a, b) => a.name.localeCompare(b.name));
  }

  async remove(ref: string): Promise<Network> {
    const { value: net, revision } = await this.resolve(ref);
    const users = (await this.ctx.services.list()).filter((s) => s.networks.some((n) => n.network === net.id));
    if (users.length > 0) throw new ConflictError(`network ${net.name} is in use by service ${users.map((s) => s.name).join(', ')}`);
    await this.ctx.networks.delete(net.id, revision);
    await this.ctx.ipam.release(claimKey.vni(net.vni), net.id);
    await this.ctx.ipam.release(claimKey.subnet(parseCidr(net.subnet)!), net.id);
    await this.ctx.ipam.release(claimKey.name('network', net.name), net.id);
    return net;
  }
}
