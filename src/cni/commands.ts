/**
 * The CNI commands against the local agent's API (src/api), one function each:
 *
 *   ADD    network checked -> service named (CNI_ARGS, config, aliases) -> POST /v1/tasks
 *          {netns, container} (the agent attaches before replying) -> result from the reply
 *   DEL    DELETE /v1/containers/{id}/{ifName} (none there: success)
 *   CHECK  GET /v1/containers/{id}/{ifName}: the task, its namespace, its interface as in prevResult
 *   GC     this network's attachments of this node not in cni.dev/valid-attachments removed
 *   STATUS the agent answers
 *
 * Agent errors become CNI codes in one place (`fromApi`).
 */
import { statSync } from 'node:fs';
import type { ApiClient, AttachedTask, Network } from '../api/index.js';
import { ApiError } from '../util/errors.js';
import { ARG_POD_NAME, ARG_SERVICE, ERR, TASK_NAME, type CniCommand, type ErrorCode } from './constants.js';
import { usableAliases } from './config.js';
import { CniError } from './errors.js';
import { addResult } from './result.js';
import type { CniEnv, CniResult, PluginConfig } from './types.js';

export interface Invocation {
  env: CniEnv;
  conf: PluginConfig;
  api: ApiClient;
  /** Notes for the runtime's log (stderr): never part of the result. */
  warn(line: string): void;
}

/** Runs one command; ADD returns its result, the others nothing (their success prints nothing). */
export async function runCommand(inv: Invocation): Promise<CniResult | undefined> {
  const op = { ADD: add, DEL: del, CHECK: check, GC: gc, STATUS: status } as const;
  const command = inv.env.command;
  if (command === 'VERSION') return undefined;
  try {
    return await op[command](inv);
  } catch (err) {
    throw err instanceof ApiError ? fromApi(err, command) : err;
  }
}

async function add({ env, conf, api, warn }: Invocation): Promise<CniResult> {
  if (nsIdentity(env.netns) === undefined) throw new CniError(ERR.UNKNOWN_CONTAINER, `container unknown: ${env.netns} does not exist`, `container ${env.containerId}`);
  const net = await api.networks.inspect(conf.network).catch((err: unknown) => {
    if (err instanceof ApiError && err.code === 'ENOTFOUND') {
      throw new CniError(ERR.INVALID_CONFIG, `unknown network: ${conf.network}`, `no swarmnet network ${conf.network} (the configuration's "network", default its "name"); create it with: swarmnet network create ${conf.network}`);
    }
    throw err;
  });
  const { usable, dropped } = usableAliases(conf.aliases);
  if (dropped.length > 0) warn(`aliases that are not DNS labels are left out: ${dropped.join(', ')}`);
  const service = await serviceOf({ env, conf, api }, net, usable);
  const aliases = usable.filter((a) => a.toLowerCase() !== service.toLowerCase());
  const podName = env.args[ARG_POD_NAME];
  const name = podName !== undefined && TASK_NAME.test(podName) ? podName : undefined;
  const spec = {
    service,
    network: net.id,
    netns: env.netns,
    container: { id: env.containerId, ifName: env.ifName, config: conf.name },
    ...(aliases.length > 0 && { aliases }),
  };
  let task: AttachedTask;
  try {
    task = await api.tasks.add({ ...spec, ...(name && { name }) });
  } catch (err) {
    // The container's name is taken by another task (another node's container, say): the default name then.
    if (!(name && err instanceof ApiError && err.code === 'ECONFLICT' && err.field === 'name')) throw err;
    task = await api.tasks.add(spec);
  }
  if (!task.attachment) throw new CniError(ERR.ATTACH, `interface ${env.ifName} not found in ${env.netns} after attaching`, `task ${task.name}`);
  return addResult(conf, task.attachment);
}

/**
 * The service a container joins: CNI_ARGS SWARMNET_SERVICE, else the configuration's
 * `args.cni.SWARMNET_SERVICE`, else its `service`, else the first alias that is the name
 * of a service attached to the network.
 */
async function serviceOf({ env, conf, api }: Pick<Invocation, 'env' | 'conf' | 'api'>, net: Network, aliases: string[]): Promise<string> {
  const named = env.args[ARG_SERVICE] || conf.argsService || conf.service;
  if (named) return named;
  if (aliases.length > 0) {
    const onNet = (await api.services.list()).filter((s) => s.networks.some((n) => n.network === net.id));
    for (const a of aliases) {
      const svc = onNet.find((s) => s.name.toLowerCase() === a.toLowerCase());
      if (svc) return svc.name;
    }
  }
  const tried = aliases.length > 0 ? `no alias (${aliases.join(', ')}) is a service of network ${net.name}` : 'the container has no aliases';
  throw new CniError(ERR.INVALID_CONFIG, `no service: ${tried}`, `name the service in CNI_ARGS (${ARG_SERVICE}=NAME), in the configuration ("service"), or give the container an alias that is a service's name (podman --network-alias)`);
}

async function del({ env, api }: Invocation): Promise<undefined> {
  await api.containers.rm(env.containerId, env.ifName);
  return undefined;
}

async function check({ env, conf, api }: Invocation): Promise<undefined> {
  const here = nsIdentity(env.netns);
  if (here === undefined) throw new CniError(ERR.UNKNOWN_CONTAINER, `container unknown: ${env.netns} does not exist`, `container ${env.containerId}`);
  const task = await api.containers.inspect(env.containerId, env.ifName).catch((err: unknown) => {
    if (err instanceof ApiError && err.code === 'ENOTFOUND') throw new CniError(ERR.UNKNOWN_CONTAINER, `container unknown: no task of container ${env.containerId} interface ${env.ifName}`, err.message);
    throw err;
  });
  const fail = (what: string) => new CniError(ERR.CHECK_FAILED, `attachment not as expected: ${what}`, `task ${task.name}, container ${env.containerId}`);
  if (task.netns === undefined || nsIdentity(task.netns) !== here) throw fail(`the task is attached to ${task.netns ?? 'no namespace'}, not ${env.netns}`);
  const a = task.attachment;
  if (!a || a.ifName !== env.ifName) throw fail(`interface ${env.ifName} with ${task.addresses[0]?.ip ?? 'its address'} is not in ${env.netns}`);
  const prev = conf.prevResult;
  if (!prev) return undefined; // the runtime must send it (section 2 "CHECK"); without it, the agent's word is all
  const i = (prev.interfaces ?? []).findIndex((x) => x.name === env.ifName && (x.sandbox === undefined || x.sandbox === env.netns));
  const mac = prev.interfaces?.[i]?.mac;
  if (i < 0) throw fail(`prevResult has no interface ${env.ifName}`);
  if (mac && mac.toLowerCase() !== a.mac.toLowerCase()) throw fail(`MAC ${a.mac}, prevResult says ${mac}`);
  const want = (prev.ips ?? []).filter((ip) => ip.interface === i).map((ip) => ip.address);
  if (want.some((w) => w !== a.address)) throw fail(`address ${a.address}, prevResult says ${want.join(', ')}`);
  return undefined;
}

async function gc({ conf, api, warn }: Invocation): Promise<undefined> {
  const valid = new Set(conf.validAttachments!.map((v) => `${v.containerID}/${v.ifname}`));
  const mine = await api.containers.list(conf.network).catch((err: unknown) => {
    if (err instanceof ApiError && err.code === 'ENOTFOUND') return []; // the network is gone: nothing of it left
    throw err;
  });
  const failed: string[] = [];
  for (const t of mine) {
    const c = t.container!;
    // Another configuration's attachments are not in this list: they are not this GC's to judge.
    if (c.config !== conf.name || valid.has(`${c.id}/${c.ifName}`)) continue;
    try {
      await api.containers.rm(c.id, c.ifName);
      warn(`GC: removed task ${t.name} (container ${c.id} interface ${c.ifName})`);
    } catch (err) {
      failed.push(`${c.id}/${c.ifName}: ${(err as Error).message}`);
    }
  }
  if (failed.length > 0) throw new CniError(ERR.TRY_AGAIN, `GC: ${failed.length} attachment(s) not removed`, failed.join('; '));
  return undefined;
}

async function status({ api }: Invocation): Promise<undefined> {
  await api.info();
  return undefined;
}

/** Agent API failures as CNI errors: the agent unreachable or its store down is transient (11; STATUS: 50). */
export function fromApi(err: ApiError, command: CniCommand): CniError {
  const e = (code: ErrorCode, msg: string) => new CniError(command === 'STATUS' ? ERR.NOT_AVAILABLE : code, msg, err.message, { cause: err });
  switch (err.code) {
    case 'EUNREACHABLE':
      return e(ERR.TRY_AGAIN, 'the swarmnet agent is not reachable');
    case 'EACCES':
      return e(ERR.ACCESS, "no permission on the swarmnet agent's socket");
    case 'ESTORE':
    case 'EMODE':
    case 'EREVISION': // the task changed under a concurrent write: the same call may succeed now
      return e(ERR.TRY_AGAIN, 'the swarmnet agent cannot serve this now');
    case 'EINVALID':
      // The namespace could not be attached (or the overlay is off on the node): not the configuration's fault.
      if (err.field === 'netns') return e(ERR.ATTACH, 'cannot attach the container');
      return e(ERR.INVALID_CONFIG, `invalid network configuration: ${err.message}`);
    case 'ENOTFOUND':
      return e(ERR.INVALID_CONFIG, err.message);
    case 'ECONFLICT':
    case 'EEXHAUSTED':
      return e(ERR.CONFLICT, `refused by the swarmnet agent: ${err.message}`);
    default:
      return e(ERR.AGENT, `the swarmnet agent failed: ${err.message}`);
  }
}

/** `dev:ino` of a namespace file (stat follows /proc/PID/ns/net): one namespace has one; undefined when none. */
function nsIdentity(path: string): string | undefined {
  try {
    const s = statSync(path);
    return `${s.dev}:${s.ino}`;
  } catch {
    return undefined;
  }
}
