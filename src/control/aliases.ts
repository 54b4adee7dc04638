/**
 * Network aliases: extra DNS names of a service (per network) or of a task (on its
 * network), as Docker's `--network name=N,alias=A` and compose's `aliases:`. A name
 * must mean one thing to a client on a network, so an alias may not be the name or an
 * alias of another service on that network, nor a task's name there; the embedded DNS
 * (dns/cluster.ts) then answers it without ambiguity. Aliases are not claims: these
 * checks read the current services and tasks, and are pure so that stack deploy runs
 * the very same check on a whole file before it writes anything.
 *
 * Aliases are stored as given and compared case-insensitively (RFC 4343).
 */
import type { Service, Task } from './schema.js';

export interface Clash {
  /** Relative to the candidate: `networks[1].aliases[0]`, `name`, `aliases[0]`. */
  field: string;
  message: string;
}

/** A service as it would be stored; `network` is a network id (as in Service.networks). */
export interface AliasCandidate {
  /** Absent for a service not created yet. */
  id?: string;
  name: string;
  /** `networkName`: for messages only (the id is shown without it). */
  networks: Array<{ network: string; aliases?: string[]; networkName?: string }>;
}

/** A task's aliases on its network. */
export interface TaskAliasCandidate {
  /** The task's service (id): it and its other tasks are no rivals. */
  service: string;
  network: string;
  networkName?: string;
  aliases: string[];
}

/** Who else answers a name on a network. */
interface Rival {
  /** `service shop_web`, `an alias of task web-a`... */
  what: string;
  /** An alias (rather than a name): a new service's name may not equal one. */
  alias: boolean;
  /** A task's alias: tasks may share one (all their IPs answer). */
  taskAlias: boolean;
}

/**
 * The first clash of a service's aliases (or of its name with others' aliases) on its
 * networks, or undefined. The candidate's own tasks are not rivals: its answer covers them.
 */
export function aliasClash(services: Service[], tasks: Task[], candidate: AliasCandidate): Clash | undefined {
  const own = candidate.name.toLowerCase();
  for (const [i, n] of candidate.networks.entries()) {
    const rivals = rivalsOn(services, tasks, n.network, candidate.id);
    const on = `on network ${n.networkName ?? n.network}`;
    for (const [j, alias] of (n.aliases ?? []).entries()) {
      const key = alias.toLowerCase();
      const r = rivals.get(key);
      if (key !== own && r) return { field: `networks[${i}].aliases[${j}]`, message: `alias ${alias} clashes with ${r.what} ${on}` };
    }
    const r = rivals.get(own);
    if (r?.alias) return { field: 'name', message: `service name ${candidate.name} clashes with ${r.what} ${on}` };
  }
  return undefined;
}

/** A task alias may not be the name or alias of a service on the network, nor another task's name; tasks may share aliases. */
export function taskAliasClash(services: Service[], tasks: Task[], candidate: TaskAliasCandidate): Clash | undefined {
  const rivals = rivalsOn(services, tasks, candidate.network, candidate.service);
  for (const [j, alias] of candidate.aliases.entries()) {
    const r = rivals.get(alias.toLowerCase());
    if (r && !r.taskAlias) return { field: `aliases[${j}]`, message: `alias ${alias} clashes with ${r.what} on network ${candidate.networkName ?? candidate.network}` };
  }
  return undefined;
}

/**
 * Aliases as stored: duplicates (in any case) and the owner's own name dropped, first
 * spelling kept. Undefined when none is left, so the stored object has no empty list.
 */
export function normalizeAliases(aliases: string[] | undefined, ownName: string): string[] | undefined {
  const seen = new Set([ownName.toLowerCase()]);
  const out = (aliases ?? []).filter((a) => !seen.has(a.toLowerCase()) && seen.add(a.toLowerCase()));
  return out.length ? out : undefined;
}

/** Names and aliases answering on `network`, lower-cased, except those of service `self` and its tasks. */
function rivalsOn(services: Service[], tasks: Task[], network: string, self: string | undefined): Map<string, Rival> {
  const out = new Map<string, Rival>();
  // A name or a service's alias outranks a task alias that shares it (a task named later, or a race).
  const add = (name: string, r: Rival) => {
    const cur = out.get(name.toLowerCase());
    if (!cur || (cur.taskAlias && !r.taskAlias)) out.set(name.toLowerCase(), r);
  };
  for (const s of services) {
    const at = s.id !== self && s.networks.find((x) => x.network === network);
    if (!at) continue;
    add(s.name, { what: `service ${s.name}`, alias: false, taskAlias: false });
    for (const a of at.aliases ?? []) add(a, { what: `an alias of service ${s.name}`, alias: true, taskAlias: false });
  }
  for (const t of tasks) {
    const at = t.service !== self && t.addresses.find((x) => x.network === network);
    if (!at) continue;
    add(t.name, { what: `task ${t.name}`, alias: false, taskAlias: false });
    for (const a of at.aliases ?? []) add(a, { what: `an alias of task ${t.name}`, alias: true, taskAlias: true });
  }
  return out;
}
