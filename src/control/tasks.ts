/**
 * Tasks are a service's endpoints: either an address reachable from the node
 * (`addr`, for workloads outside swarmnet) or an IP on one of the service's overlay
 * networks. Task IPs and names are claims, like everything unique.
 */
import { existsSync } from 'node:fs';
import { ConflictError, NotFoundError, ValidationError } from '../util/errors.js';
import { addressProblem, holderOf } from './addresses.js';
import { normalizeAliases, taskAliasClash } from './aliases.js';
import { parseCidr } from './cidr.js';
import type { Versioned } from './collection.js';
import { transaction, type Context } from './context.js';
import { claimKey } from './ipam.js';
import { newId } from './ids.js';
import type { NetworkOps } from './networks.js';
import type { NodeOps } from './nodes.js';
import type { Network, Service, Task } from './schema.js';
import type { ServiceOps } from './services.js';
import { validateSpec, type TaskSpec } from './spec.js';

export class TaskOps {
  constructor(
    private readonly ctx: Context,
    private readonly services: ServiceOps,
    private readonly networks: NetworkOps,
    private readonly nodes: NodeOps,
  ) {}

  async resolve(ref: string): Promise<Versioned<Task>> {
    const owner = await this.ctx.ipam.owner(claimKey.name('task', ref));
    const found = await this.ctx.tasks.get(owner ?? ref);
    if (found) return found;
    const matches = (await this.ctx.tasks.list()).filter((t) => t.id.startsWith(ref));
    if (matches.length === 1) return (await this.ctx.tasks.get(matches[0]!.id))!;
    throw new NotFoundError(`task ${ref} not found`);
  }

  async list(serviceRef?: string): Promise<Task[]> {
    const all = await this.ctx.tasks.list();
    const svc = serviceRef ? (await this.services.resolve(serviceRef)).value.id : undefined;
    return all.filter((t) => !svc || t.service === svc).sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
  }

  /** This node's tasks of a CNI attachment: container `id`, and interface `ifName` when given. */
  async byContainer(id: string, ifName?: string): Promise<Task[]> {
    const mine = (t: Task) => t.node === this.ctx.localNode && t.container?.id === id && (ifName === undefined || t.container.ifName === ifName);
    return (await this.ctx.tasks.list()).filter(mine);
  }

  /**
   * Adds a task. A CNI attachment (`container`) that already has a task on this node gets
   * that task back (the plugin's ADD repeated), when it names the same service and network.
   */
  async add(input: unknown): Promise<Task> {
    const spec = validateSpec.task.assert(input);
    if ((spec.addr === undefined) === (spec.network === undefined)) throw new ValidationError('addr', 'give exactly one of addr (IP:PORT) or network');
    if (spec.ip && !spec.network) throw new ValidationError('ip', 'an ip needs a network');
    if (spec.aliases && !spec.network) throw new ValidationError('aliases', "aliases are names on the task's network: give network too");
    if (spec.container && spec.netns === undefined) throw new ValidationError('container', 'a container attachment needs its namespace: give netns too');
    if (spec.netns !== undefined) {
      if (!spec.network) throw new ValidationError('netns', 'a namespace is attached to a network: give network too');
      if (spec.node !== undefined && spec.node !== this.ctx.localNode) throw new ValidationError('netns', "a namespace is attached by its own node's agent: send task add to that node");
      if (!existsSync(spec.netns)) throw new ValidationError('netns', `${spec.netns} does not exist`);
    }
    const svc = await this.services.resolve(spec.service).catch((err) => {
      throw err instanceof NotFoundError ? new ValidationError('service', err.message) : err;
    });
    if (spec.container) {
      const [have] = await this.byContainer(spec.container.id, spec.container.ifName);
      if (have) return this.#sameAttachment(have, svc.value, spec);
    }
    const node = await this.nodes.resolve(spec.node ?? this.ctx.localNode).catch((err) => {
      throw err instanceof NotFoundError ? new ValidationError('node', err.message) : err;
    });
    const attach = spec.network ? await this.#placement(spec, svc.value) : undefined;
    if (spec.name && (await this.ctx.ipam.owner(claimKey.name('task', spec.name)))) throw new ConflictError(`task ${spec.name} already exists`, 'name');
    const id = newId();
    const { ctx } = this;
    return transaction(async (undo) => {
      const name = await this.#claimName(id, spec.name, svc.value.name, undo);
      const addresses: Task['addresses'] = [];
      if (attach) {
        const { net, aliases } = attach;
        let ip = spec.ip;
        if (ip) {
          await ctx.ipam.claim(claimKey.ip(net.id, ip), id, 'task').catch((err) => {
            throw err instanceof ConflictError ? new ConflictError(`${ip} is ${err.message}`, 'ip') : err;
          });
        } else {
          ip = await ctx.ipam.allocIp(net.id, parseCidr(net.subnet)!, id, 'task');
        }
        const claimed = ip;
        undo(() => ctx.ipam.release(claimKey.ip(net.id, claimed), id));
        addresses.push({ network: net.id, ip, ...(aliases && { aliases }) });
      }
      const task: Task = {
        id,
        name,
        service: svc.value.id,
        node: node.value.id,
        ...(spec.addr && { addr: spec.addr }),
        addresses,
        ...(spec.netns !== undefined && { netns: spec.netns }),
        ...(spec.container && { container: spec.container }),
        weight: spec.weight ?? 1,
        state: 'running',
        createdAt: ctx.now(),
      };
      await ctx.tasks.create(id, task);
      return task;
    });
  }

  async remove(ref: string): Promise<Task> {
    const { value: task, revision } = await this.resolve(ref);
    await this.ctx.tasks.delete(task.id, revision);
    for (const a of task.addresses) await this.ctx.ipam.release(claimKey.ip(a.network, a.ip), task.id);
    await this.ctx.ipam.release(claimKey.name('task', task.name), task.id);
    return task;
  }

  /**
   * The task already made for a container's interface, if the repeated add asks for the same.
   * Another namespace is refused too: that task's attachment (and the result built from it)
   * is not in the namespace asked for.
   */
  async #sameAttachment(have: Task, svc: Service, spec: TaskSpec): Promise<Task> {
    const net = (await this.networks.resolve(spec.network!).catch(() => undefined))?.value;
    if (have.service !== svc.id || have.addresses[0]?.network !== net?.id) {
      throw new ConflictError(`container ${spec.container!.id} interface ${spec.container!.ifName} is already task ${have.name}, of another service or network`, 'container');
    }
    if (have.netns !== spec.netns) {
      throw new ConflictError(`container ${spec.container!.id} interface ${spec.container!.ifName} is already task ${have.name}, in namespace ${have.netns ?? '(none)'}`, 'container');
    }
    return have;
  }

  /**
   * The task's network checked before anything is written: the service is attached to
   * it, a given ip is usable and free, the aliases clash with no other name there.
   */
  async #placement(spec: TaskSpec, svc: Service): Promise<{ net: Network; aliases?: string[] }> {
    const { ctx } = this;
    const net = (await this.networks.resolve(spec.network!).catch((err) => {
      throw err instanceof NotFoundError ? new ValidationError('network', err.message) : err;
    })).value;
    if (!svc.networks.some((n) => n.network === net.id)) throw new ValidationError('network', `service ${svc.name} is not attached to network ${net.name}`);
    if (spec.ip) {
      const problem = addressProblem(net, spec.ip);
      if (problem) throw new ValidationError('ip', `${spec.ip} is not a usable address of ${net.name} (${net.subnet}): ${problem}`);
      const holder = await holderOf(ctx, claimKey.ip(net.id, spec.ip));
      if (holder) throw new ConflictError(`${spec.ip} is already in use by ${holder}`, 'ip');
    }
    const aliases = normalizeAliases(spec.aliases, spec.name ?? '');
    const clash = aliases && taskAliasClash(await ctx.services.list(), await ctx.tasks.list(), { service: svc.id, network: net.id, networkName: net.name, aliases });
    if (clash) throw new ConflictError(clash.message, clash.field);
    return { net, ...(aliases && { aliases }) };
  }

  /** A given name must be free; otherwise `<service>.<slot>` with the lowest free slot, as Swarm names tasks. */
  async #claimName(id: string, wanted: string | undefined, service: string, undo: (s: () => Promise<void>) => void): Promise<string> {
    if (wanted) {
      await this.ctx.ipam.claim(claimKey.name('task', wanted), id, 'task').catch((err) => {
        throw err instanceof ConflictError ? new ConflictError(`task ${wanted} already exists`, 'name') : err;
      });
      undo(() => this.ctx.ipam.release(claimKey.name('task', wanted), id));
      return wanted;
    }
    // The lowest free slot, as Swarm does. A plain create per slot: one round trip for
    // a taken slot, where claim() would add a read to report who holds it.
    for (let slot = 1; ; slot++) {
      const name = `${service}.${slot}`;
      try {
        await this.ctx.claims.create(claimKey.name('task', name), { owner: id, kind: 'task' });
      } catch (err) {
        if (err instanceof ConflictError) continue;
        throw err;
      }
      undo(() => this.ctx.ipam.release(claimKey.name('task', name), id));
      return name;
    }
  }
}
