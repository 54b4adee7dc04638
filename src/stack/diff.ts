/**
 * A re-deploy is an update: the ServiceUpdate that turns a running service into what the
 * file says, naming only what changed (whole-list replacement of ports, networks and
 * labels, which the agent applies keeping unchanged ports' listeners and VIPs), or
 * undefined when the service is already what the file says: it is then not written at
 * all, and its connections cannot notice a deploy.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Service, ServiceSpec, ServiceUpdate } from '../api/index.js';
import { matchPorts, normalizeAliases, normalizePorts } from '../api/index.js';

type NetItem = NonNullable<ServiceSpec['networks']>[number];

export function serviceDiff(cur: Service, spec: ServiceSpec, netId: (ref: string) => string | undefined): ServiceUpdate | undefined {
  const up: ServiceUpdate = {};
  const endpointMode = spec.endpointMode ?? 'vip';
  if (endpointMode !== cur.endpointMode) up.endpointMode = endpointMode;
  const lb = spec.lb ?? 'rr';
  if (lb !== cur.lb) up.lb = lb;
  const proxyProtocol = spec.proxyProtocol ?? 'none';
  if (proxyProtocol !== cur.proxyProtocol) up.proxyProtocol = proxyProtocol;
  if (!isDeepStrictEqual(spec.healthCheck, cur.healthCheck)) up.healthCheck = spec.healthCheck ?? null;
  if (!samePorts(spec.ports ?? [], cur.ports)) up.ports = spec.ports ?? [];
  if (!sameNetworks(spec.networks ?? [], cur, netId)) up.networks = spec.networks ?? [];
  if (!isDeepStrictEqual(spec.labels ?? {}, cur.labels)) up.labels = spec.labels ?? {};
  return Object.keys(up).length ? up : undefined;
}

/**
 * Ports as multisets, matched as the agent matches a whole-list update (control's
 * matchPorts): a port the file leaves to auto-assignment matches one assigned before (in
 * the auto range), not one published explicitly before (8080:80 -> 80 gets a fresh port).
 * The planner has refused a published port given twice (normalizePorts) before this.
 */
function samePorts(want: NonNullable<ServiceSpec['ports']>, have: Service['ports']): boolean {
  return want.length === have.length && matchPorts(have, normalizePorts(want, 'ports')).every((kept) => kept !== undefined);
}

function sameNetworks(want: NetItem[], cur: Service, netId: (ref: string) => string | undefined): boolean {
  if (want.length !== cur.networks.length) return false;
  return want.every((item) => {
    const n = typeof item === 'string' ? { target: item } : item;
    const have = cur.networks.find((x) => x.network === netId(n.target));
    if (!have) return false;
    if (n.ipv4Address !== undefined && n.ipv4Address !== have.vip) return false;
    return isDeepStrictEqual(aliasSet(n.aliases, cur.name), aliasSet(have.aliases, cur.name));
  });
}

/**
 * Aliases as the agent keeps them (its normalizeAliases: deduplicated case-insensitively,
 * the service's own name dropped), compared as a set in any case (DNS matches them so).
 */
function aliasSet(aliases: string[] | undefined, name: string): string[] {
  return (normalizeAliases(aliases, name) ?? []).map((a) => a.toLowerCase()).sort();
}
