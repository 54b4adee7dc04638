/**
 * Service lifecycle. Creation and update check the whole request first (spec, networks,
 * fixed addresses, alias clashes, taken names, ports and addresses), then claim the
 * name, each new published port and a VIP per network; any failure undoes the claims
 * made so far, so a rejected request leaves the store exactly as it was.
 *
 * An update keeps what it does not change: a port kept keeps its claim (and so its
 * listener and connections), a network kept keeps its VIP; claims given up are released
 * only after the service no longer names them.
 */
import { ConflictError, NotFoundError, ValidationError } from '../util/errors.js';
import { addressProblem, holderOf } from './addresses.js';
import { aliasClash, normalizeAliases } from './aliases.js';
import { parseCidr } from './cidr.js';
import type { Versioned } from './collection.js';
import { transaction, withCas, type Context } from './context.js';
import { claimKey } from './ipam.js';
import { newId } from './ids.js';
import type { NetworkOps } from './networks.js';
import { matchPorts, normalizePorts, portId, type WantedPort } from './ports.js';
import type { Network, PortConfig, Service } from './schema.js';
import { validateSpec, type NetworkAttachment, type ServiceUpdate } from './spec.js';

type Undo = (step: () => Promise<void>) => void;
type Attachment = Service['networks'][number];

/** A network the service is to be on, resolved; `field` is where the request named it. */
interface Want {
  net: Network;
  field: string;
  /** Given in the long form: its aliases (and address) replace an existing attachment's. */
  long: boolean;
  aliases?: string[];
  ipv4Address?: string;
}

/** A port the service is to publish: one it keeps, or one to claim. */
interface PortPlan {
  port: WantedPort;
  field: string;
  keep?: PortConfig;
}

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
    const ports = normalizePorts(spec.ports ?? [], 'ports').map((port, i): PortPlan => ({ port, field: `ports[${i}]` }));
    const wants = await this.#wants(spec.networks ?? [], 'networks');
    const { ctx } = this;
    const id = newId();
    const nameKey = claimKey.name('service', spec.name);
    if (await ctx.ipam.owner(nameKey)) throw new ConflictError(`service ${spec.name} already exists`, 'name');
    await this.#check({ name: spec.name, endpointMode, ports, wants });
    return transaction(async (undo) => {
      await ctx.ipam.claim(nameKey, id, 'service').catch((err) => {
        throw err instanceof ConflictError ? new ConflictError(`service ${spec.name} already exists`, 'name') : err;
      });
      undo(() => ctx.ipam.release(nameKey, id));
      const claimed = await this.#claimPorts(id, ports, new Set(), undo);
      const networks = await this.#attach(id, { name: spec.name, endpointMode, wants }, undo);
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
    const wholePorts = up.ports && normalizePorts(up.ports, 'ports');
    const adds = normalizePorts(up.portsAdd ?? [], 'portsAdd');
    const given = await this.#wants(up.networks ?? up.networksAdd ?? [], up.networks ? 'networks' : 'networksAdd');
    const rmNets = await this.#resolveNetworks(up.networksRm ?? [], 'networksRm');
    return withCas(() =>
      transaction(async (undo) => {
        const { value: cur, revision } = await this.resolve(ref);
        const endpointMode = up.endpointMode ?? cur.endpointMode;
        const ports = wholePorts ? replacePorts(cur.ports, wholePorts) : editPorts(cur.ports, up, adds);
        const wants = up.networks ? given : await this.#editNetworks(cur, given, rmNets);
        await this.#check({ self: cur, name: cur.name, endpointMode, ports, wants });
        const claimed = await this.#claimPorts(cur.id, ports, new Set(cur.ports.map(portId)), undo);
        const networks = await this.#attach(cur.id, { name: cur.name, endpointMode, wants, current: cur.networks }, undo);
        const labels = up.labels ? { ...up.labels } : { ...cur.labels, ...up.labelsAdd };
        for (const k of up.labelsRm ?? []) delete labels[k];
        const next: Service = {
          ...cur,
          endpointMode,
          ports: claimed,
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
        const still = new Set(next.ports.map(portId));
        for (const p of cur.ports) if (!still.has(portId(p))) await this.ctx.ipam.release(claimKey.port(p.protocol, p.published), cur.id);
        // VIPs of detached networks, VIPs moved to another address, and all VIPs when the service left vip mode.
        for (const n of cur.networks) {
          const kept = networks.find((x) => x.network === n.network);
          if (n.vip && kept?.vip !== n.vip) await this.ctx.ipam.release(claimKey.ip(n.network, n.vip), cur.id);
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
    for (const [i, ref] of refs.entries()) out.push(await this.#network(ref, `${field}[${i}]`));
    return out;
  }

  async #network(ref: string, field: string): Promise<Network> {
    try {
      return (await this.networks.resolve(ref)).value;
    } catch (err) {
      if (err instanceof NotFoundError) throw new ValidationError(field, `network ${ref} not found`);
      throw err;
    }
  }

  /** Resolves attachments (name or long form), refusing a network given twice and an unusable fixed address. */
  async #wants(items: NetworkAttachment[], field: string): Promise<Want[]> {
    const out: Want[] = [];
    for (const [i, item] of items.entries()) {
      const at = `${field}[${i}]`;
      const long = typeof item !== 'string';
      const net = await this.#network(long ? item.target : item, long ? `${at}.target` : at);
      const twice = out.find((w) => w.net.id === net.id);
      if (twice) throw new ValidationError(at, `network ${net.name} is given twice (also ${twice.field})`);
      const ip = long ? item.ipv4Address : undefined;
      const problem = ip && addressProblem(net, ip);
      if (problem) throw new ValidationError(`${at}.ipv4Address`, `${ip} is not a usable address of ${net.name} (${net.subnet}): ${problem}`);
      out.push({ net, field: at, long, ...(long && item.aliases && { aliases: item.aliases }), ...(ip && { ipv4Address: ip }) });
    }
    return out;
  }

  /** networksAdd/networksRm: the current attachments less those removed, then those added (a long form replaces its network's aliases and address). */
  async #editNetworks(cur: Service, added: Want[], removed: Network[]): Promise<Want[]> {
    const out: Want[] = [];
    for (const [i, n] of cur.networks.entries()) {
      if (removed.some((r) => r.id === n.network)) continue;
      const again = added.find((a) => a.net.id === n.network);
      if (again?.long) out.push(again);
      else out.push({ net: (await this.networks.resolve(n.network)).value, field: `networks[${i}]`, long: false, ...(n.aliases && { aliases: n.aliases }) });
    }
    return [...out, ...added.filter((a) => !out.some((w) => w.net.id === a.net.id))];
  }

  /**
   * Everything that can be known before a write: fixed addresses only in vip mode and
   * free, alias clashes, published ports free. The claims that follow still refuse a
   * port or address taken meanwhile by another writer.
   */
  async #check(o: { self?: Service; name: string; endpointMode: Service['endpointMode']; ports: PortPlan[]; wants: Want[] }): Promise<void> {
    const { ctx } = this;
    for (const w of o.wants) {
      if (!w.ipv4Address) continue;
      const field = `${w.field}.ipv4Address`;
      if (o.endpointMode === 'dnsrr') throw new ValidationError(field, 'a dnsrr service has no VIP to fix (endpointMode vip)');
      const key = claimKey.ip(w.net.id, w.ipv4Address);
      const owner = await ctx.ipam.owner(key);
      if (owner && owner !== o.self?.id) throw new ConflictError(`${w.ipv4Address} is already in use by ${(await holderOf(ctx, key)) ?? owner}`, field);
    }
    const candidate = {
      ...(o.self && { id: o.self.id }),
      name: o.name,
      networks: o.wants.map((w) => ({ network: w.net.id, networkName: w.net.name, aliases: normalizeAliases(w.aliases, o.name) ?? [] })),
    };
    const clash = aliasClash(await ctx.services.list(), await ctx.tasks.list(), candidate);
    if (clash) {
      const m = /^networks\[(\d+)\](.*)$/.exec(clash.field);
      throw new ConflictError(clash.message, m ? `${o.wants[Number(m[1])]!.field}${m[2]}` : clash.field);
    }
    for (const p of o.ports) {
      if (p.keep || p.port.auto) continue;
      const owner = await ctx.ipam.owner(claimKey.port(p.port.protocol, p.port.published));
      if (owner && owner !== o.self?.id) throw await this.#portTaken(p);
    }
  }

  async #portTaken(p: PortPlan): Promise<ConflictError> {
    const { protocol, published } = p.port;
    const holder = await holderOf(this.ctx, claimKey.port(protocol, published));
    return new ConflictError(`port ${published}/${protocol} is already published by ${holder ?? 'another service'}`, `${p.field}.published`);
  }

  /**
   * Claims the ports not kept. A port the service already holds (`held`: 8080 ingress
   * becoming 8080 host) is not claimed again, nor released on undo: it is still in use.
   */
  async #claimPorts(owner: string, ports: PortPlan[], held: Set<string>, undo: Undo): Promise<PortConfig[]> {
    const out: PortConfig[] = [];
    for (const p of ports) {
      const { protocol, target, mode } = p.port;
      if (p.keep) {
        out.push(p.keep);
        continue;
      }
      let published = p.port.published;
      if (p.port.auto) {
        published = await this.ctx.ipam.allocPort(protocol, owner);
      } else if (!held.has(portId(p.port))) {
        try {
          await this.ctx.ipam.claim(claimKey.port(protocol, published), owner, 'service');
        } catch (err) {
          throw err instanceof ConflictError ? await this.#portTaken(p) : err;
        }
      }
      if (!held.has(portId({ protocol, published }))) undo(() => this.ctx.ipam.release(claimKey.port(protocol, published), owner));
      out.push({ protocol, target, published, mode });
    }
    return out;
  }

  /**
   * Attachments in vip mode get a VIP per network: the current one kept unless another
   * ipv4Address is asked, the asked one claimed, else one allocated. dnsrr services have
   * none (DNS returns task IPs).
   */
  async #attach(owner: string, o: { name: string; endpointMode: Service['endpointMode']; wants: Want[]; current?: Attachment[] }, undo: Undo): Promise<Attachment[]> {
    const out: Attachment[] = [];
    for (const w of o.wants) {
      const aliases = normalizeAliases(w.aliases, o.name);
      const base = { network: w.net.id, ...(aliases && { aliases }) };
      const cur = o.current?.find((n) => n.network === w.net.id)?.vip;
      if (o.endpointMode === 'dnsrr') {
        out.push(base);
      } else if (cur && (!w.ipv4Address || w.ipv4Address === cur)) {
        out.push({ ...base, vip: cur });
      } else {
        const vip = w.ipv4Address ?? (await this.ctx.ipam.allocIp(w.net.id, parseCidr(w.net.subnet)!, owner, 'vip'));
        if (w.ipv4Address) {
          await this.ctx.ipam.claim(claimKey.ip(w.net.id, vip), owner, 'vip').catch((err) => {
            throw err instanceof ConflictError ? new ConflictError(`${vip} is ${err.message}`, `${w.field}.ipv4Address`) : err;
          });
        }
        undo(() => this.ctx.ipam.release(claimKey.ip(w.net.id, vip), owner));
        out.push({ ...base, vip });
      }
    }
    return out;
  }
}

/** `ports`: each wanted port keeps the current one it matches (matchPorts) or is claimed anew. */
function replacePorts(current: PortConfig[], wanted: WantedPort[]): PortPlan[] {
  const kept = matchPorts(current, wanted);
  return wanted.map((port, i) => ({ port, field: `ports[${i}]`, ...(kept[i] && { keep: kept[i] }) }));
}

/** portsRm then portsAdd: the current ports less those removed, kept; those added, claimed. */
function editPorts(current: PortConfig[], up: ServiceUpdate, adds: WantedPort[]): PortPlan[] {
  const kept = current.filter((p) => !up.portsRm?.some((r) => r.target === p.target && (!r.protocol || r.protocol === p.protocol)));
  const clash = adds.find((a) => !a.auto && kept.some((k) => portId(k) === portId(a)));
  if (clash) throw new ConflictError(`port ${clash.published}/${clash.protocol} is already published by this service`, 'portsAdd');
  return [...kept.map((p): PortPlan => ({ port: { ...p, auto: false }, field: 'ports', keep: p })), ...adds.map((port, i): PortPlan => ({ port, field: `portsAdd[${i}]` }))];
}
