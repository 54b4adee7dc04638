/**
 * Stacks through the agent API (stack/ is a client of api/, as the CLI is): deploy
 * plans against the agent's current state and only then writes; rm removes services
 * before networks (a network in use cannot go), as `docker stack rm` does.
 */
import type { ApiClient, Network, Service } from '../api/index.js';
import { NotFoundError } from '../util/errors.js';
import { STACK_LABEL } from './labels.js';
import { planStack, PlanError, type Plan } from './plan.js';
import type { StackSpec } from './types.js';

/** `log`: progress lines (stdout in the CLI); `warn`: warnings (stderr, as the loader's). */
export async function deployStack(api: ApiClient, stack: StackSpec, o: { prune: boolean; log: (line: string) => void; warn: (line: string) => void }): Promise<Plan> {
  const [networks, services, tasks] = await Promise.all([api.networks.list(), api.services.list(), api.tasks.list()]);
  const plan = planStack(stack, { networks, services, tasks }, o);
  for (const w of plan.warnings) o.warn(`warning: ${w}`);
  // Past the plan, a write fails only when the state changed under us (another client):
  // the error names the object being written.
  const step = async (field: string, what: string, write: () => Promise<unknown>) => {
    o.log(what);
    try {
      await write();
    } catch (err) {
      throw new PlanError(field, (err as Error).message, { cause: err });
    }
  };
  for (const { index, spec } of plan.createNetworks) await step(`networks[${index}]`, `Creating network ${spec.name}`, () => api.networks.create(spec));
  for (const s of plan.removeServices) await step(`services`, `Removing service ${s.name}`, () => api.services.rm(s.id));
  for (const { index, name, update } of plan.updateServices) await step(`services[${index}]`, `Updating service ${name}`, () => api.services.update(name, update));
  for (const { index, spec } of plan.createServices) await step(`services[${index}]`, `Creating service ${spec.name}`, () => api.services.create(spec));
  return plan;
}

export interface StackObjects {
  services: Service[];
  networks: Network[];
}

export async function stackObjects(api: ApiClient, name: string): Promise<StackObjects> {
  const [services, networks] = await Promise.all([api.services.list(), api.networks.list()]);
  return { services: services.filter((s) => s.labels[STACK_LABEL] === name), networks: networks.filter((n) => n.labels[STACK_LABEL] === name) };
}

/** Every stack with its counts of services and networks, by name. */
export async function listStacks(api: ApiClient): Promise<Array<{ name: string; services: number; networks: number }>> {
  const [services, networks] = await Promise.all([api.services.list(), api.networks.list()]);
  const out = new Map<string, { name: string; services: number; networks: number }>();
  const entry = (name: string) => out.get(name) ?? out.set(name, { name, services: 0, networks: 0 }).get(name)!;
  for (const s of services) if (s.labels[STACK_LABEL] !== undefined) entry(s.labels[STACK_LABEL]).services++;
  for (const n of networks) if (n.labels[STACK_LABEL] !== undefined) entry(n.labels[STACK_LABEL]).networks++;
  return [...out.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Services first (with their tasks), then networks. A network another stack's or a
 * lone service still uses is left, and said; the rest of the stack goes anyway.
 */
export async function removeStack(api: ApiClient, name: string, o: { log: (line: string) => void; warn: (line: string) => void }): Promise<{ left: string[] }> {
  const { services, networks } = await stackObjects(api, name);
  if (!services.length && !networks.length) throw new NotFoundError(`nothing found in stack: ${name}`);
  for (const s of services) {
    o.log(`Removing service ${s.name}`);
    await api.services.rm(s.id);
  }
  const left: string[] = [];
  for (const n of networks) {
    o.log(`Removing network ${n.name}`);
    await api.networks.rm(n.id).catch((err: Error) => {
      left.push(n.name);
      o.warn(`warning: network ${n.name} not removed: ${err.message}`);
    });
  }
  return { left };
}
