/**
 * Service lifecycle. Creation validates the whole spec first, then claims the name,
 * each published port and a VIP per network; any failure undoes the claims made so
 * far, so a rejected spec leaves the store exactly as it was.
 */
import { ConflictError, NotFoundError, ValidationError } from '../util/errors.js';
import { parseCidr } from './cidr.js';
import type { Versioned } from './collection.js';
import { transaction, withCas, type Context } from './context.js';
import { claimKey } from './ipam.js';
import { newId } from './ids.js';
import type { NetworkOps } from './networks.js';
import type { Network, PortConfig, Service } from './schema.js';
import { validateSpec, type PortSpec } from './spec.js';

type Undo = (step: () => Promise<void>) => void;

export class ServiceOps {
  constructor(
    private readonly ctx: Context,
    private readonly networks: NetworkOps,
  ) {}

  async resolve(ref: string): Promise<Versioned<Service>> {
    const owner = await this.ctx.ipam.owner(claimKey.name('service', ref));
    const found = await this.ctx.services.get(owner ?? ref);
    if (found) return found;
    const matches = (await this.ctx.services.list()).filter((s) => s.id.startsWith(ref));
    if (matches.length === 1) return (await this.ctx.services.get(matches[0]!.id))!;
    throw new NotFoundError(`service ${ref} not found`);
  }

  async list(): Promise<Service[]> {
    return (await this.ctx.services.list()).sort((a, b) => a.name.localeCompare(b.name));
  }

  async create(input: unknown): Promise<Service> {
    const spec = validateSpec.service.assert(input);
    const endpointMode = spec.endpointMode ?? 'vip';
    const ports = normalizePorts(spec.ports ?? [], 'ports');
    const nets = await this.#resolveNetworks(spec.networks ?? [], 'networks');
    const { ctx } = this;
    const id = newId();
    return transaction(async (undo) => {
      const nameKey = claimKey.name('service', spec.name);
      await ctx.ipam.claim(nameKey, id, 'service').catch((err) => {
        throw err instanceof ConflictError ? new ConflictError(`service ${spec.name} already exists`, 'name') : err;
      });
      undo(() => ctx.ipam.release(nameKey, id));
      const claimed = await this.#claimPorts(id, ports, 'ports', undo);
      const networks = await this.#attach(id, endpointMode, nets, undo);
      const now = ctx.now();
      const svc: Service = {
        id,
        name: spec.name,
        endpointMode,
        ports: claimed,
        networks,
        lb: spec.lb ?? 'rr',
        proxyProtocol: spec.proxyProtocol ?? 'none',
        ...(spec.healthCheck && { healthCheck: spec.healthCheck }),
        labels: spec.labels ?? {},
        createdAt: now,
        updatedAt: now,
      };
      await ctx.services.create(id, svc);
      return svc;
    });
  }

  async update(ref: string, input: unknown): Promise<Service> {
    const up = validateSpec.serviceUpdate.assert(input);
    const adds = normalizePorts(up.portsAdd ?? [], 'portsAdd');
    const addNets = await this.#resolveNetworks(up.networksAdd ?? [], 'networksAdd');
    const rmNets = await this.#resolveNetworks(up.networksRm ?? [], 'networksRm');
    return withCas(() =>
      transaction(async (undo) => {
        const { value: cur, revision } = await this.resolve(ref);
        const removed = cur.ports.filter((p) => up.portsRm?.some((r) => r.target === p.target && (!r.protocol || r.protocol === p.protocol)));
        const kept = cur.ports.filter((p) => !removed.includes(p));
        const clash = adds.find((a) => kept.some((k) => k.protocol === a.protocol && k.published === a.published));
        if (clash) throw new ConflictError(`port ${clash.published}/${clash.protocol} is already published by this service`, 'portsAdd');
        const endpointMode = up.endpointMode ?? cur.endpointMode;
        const claimedAdds = await this.#claimPorts(cur.id, adds, 'portsAdd', undo);
        const ports = [...kept, ...claimedAdds];
        const keptNets = cur.networks.filter((n) => !rmNets.some((r) => r.id === n.network));
        const newNets = addNets.filter((a) => !keptNets.some((k) => k.network === a.id));
        const networks = [...(await this.#remode(cur.id, endpointMode, keptNets, undo)), ...(await this.#attach(cur.id, endpointMode, newNets, undo))];
        const labels = { ...cur.labels, ...up.labelsAdd };
        for (const k of up.labelsRm ?? []) delete labels[k];
        const next: Service = {
          ...cur,
          endpointMode,
          ports,
          networks,
          labels,
          lb: up.lb ?? cur.lb,
          proxyProtocol: up.proxyProtocol ?? cur.proxyProtocol,
          updatedAt: this.ctx.now(),
        };
        if (up.healthCheck === null) delete next.healthCheck;
        else if (up.healthCheck) next.healthCheck = up.healthCheck;
        await this.ctx.services.update(cur.id, next, revision);
        // Only after the service no longer names them are old claims released.
        for (const p of removed) await this.ctx.ipam.release(claimKey.port(p.protocol, p.published), cur.id);
        // VIPs of detached networks, and all VIPs when the service left vip mode.
        for (const n of cur.networks) {
          const still = networks.find((x) => x.network === n.network);
          if (n.vip && still?.vip !== n.vip) await this.ctx.ipam.release(claimKey.ip(n.network, n.vip), cur.id);
        }
        return next;
      }),
    );
  }

  /** Removes the service with its tasks, then frees its name, ports and VIPs. */
  async remove(ref: string, removeTask: (id: string) => Promise<unknown>): Promise<Service> {
    const { value: svc, revision } = await this.resolve(ref);
    for (const t of (await this.ctx.tasks.list()).filter((t) => t.service === svc.id)) await removeTask(t.id);
    await this.ctx.services.delete(svc.id, revision);
    for (const p of svc.ports) await this.ctx.ipam.release(claimKey.port(p.protocol, p.published), svc.id);
    for (const n of svc.networks) if (n.vip) await this.ctx.ipam.release(claimKey.ip(n.network, n.vip), svc.id);
    await this.ctx.ipam.release(claimKey.name('service', svc.name), svc.id);
    return svc;
  }

  async #resolveNetworks(refs: string[], field: string): Promise<Network[]> {
    const out: Network[] = [];
    for (const [i, ref] of refs.entries()) {
      try {
        out.push((await this.networks.resolve(ref)).value);
      } catch (err) {
        if (err instanceof NotFoundError) throw new ValidationError(`${field}[${i}]`, `network ${ref} not found`);
        throw err;
      }
    }
    return out;
  }

  async #claimPorts(owner: string, ports: Array<PortConfig & { auto: boolean }>, field: string, undo: Undo): Promise<PortConfig[]> {
    const out: PortConfig[] = [];
    for (const [i, p] of ports.entries()) {
      let published = p.published;
      if (p.auto) {
        published = await this.ctx.ipam.allocPort(p.protocol, owner);
      } else {
        try {
          await this.ctx.ipam.claim(claimKey.port(p.protocol, published), owner, 'service');
        } catch (err) {
          if (!(err instanceof ConflictError)) throw err;
          const holder = await this.ctx.ipam.owner(claimKey.port(p.protocol, published));
          const name = holder && (await this.ctx.services.get(holder))?.value.name;
          throw new ConflictError(`port ${published}/${p.protocol} is already published by service ${name ?? holder ?? '?'}`, `${field}[${i}].published`);
        }
      }
      undo(() => this.ctx.ipam.release(claimKey.port(p.protocol, published), owner));
      out.push({ protocol: p.protocol, target: p.target, published, mode: p.mode });
    }
    return out;
  }

  /** Kept attachments under a (possibly changed) endpoint mode: VIPs added for vip, dropped for dnsrr. */
  async #remode(owner: string, mode: Service['endpointMode'], kept: Service['networks'], undo: Undo): Promise<Service['networks']> {
    const out: Service['networks'] = [];
    for (const n of kept) {
      if (mode === 'dnsrr') out.push({ network: n.network });
      else if (n.vip) out.push(n);
      else {
        const net = (await this.networks.resolve(n.network)).value;
        out.push(...(await this.#attach(owner, mode, [net], undo)));
      }
    }
    return out;
  }

  /** A VIP per network in vip mode; dnsrr services have none (DNS returns task IPs). */
  async #attach(owner: string, mode: Service['endpointMode'], nets: Network[], undo: Undo): Promise<Service['networks']> {
    const out: Service['networks'] = [];
    for (const net of nets) {
      if (mode === 'dnsrr') {
        out.push({ network: net.id });
        continue;
      }
      const vip = await this.ctx.ipam.allocIp(net.id, parseCidr(net.subnet)!, owner, 'vip');
      undo(() => this.ctx.ipam.release(claimKey.ip(net.id, vip), owner));
      out.push({ network: net.id, vip });
    }
    return out;
  }
}

/** Fills defaults and rejects a published port given twice in one spec. */
function normalizePorts(specs: PortSpec[], field: string): Array<PortConfig & { auto: boolean }> {
  const out = specs.map((p) => ({
    protocol: p.protocol ?? 'tcp',
    target: p.target,
    published: p.published ?? 0,
    mode: p.mode ?? 'ingress',
    auto: p.published === undefined,
  }));
  out.forEach((p, i) => {
    if (!p.auto && out.findIndex((q) => !q.auto && q.protocol === p.protocol && q.published === p.published) !== i) {
      throw new ValidationError(`${field}[${i}].published`, `port ${p.published}/${p.protocol} is given twice`);
    }
  });
  return out;
}
