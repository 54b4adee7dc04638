/**
 * Attaching a container (a network namespace) to an overlay network on this node:
 *
 *   ip link add swv<task> type veth peer name swp<task>   (host side joins the bridge)
 *   ip link set swp<task> netns <path>
 *   in the namespace: swp<task> -> the name asked for (a CNI attachment's CNI_IFNAME,
 *   which must be free) or the first free eth<N>, MAC derived from the IP, address, up,
 *   default route via the gateway (when the namespace has none)
 *   /etc/netns/<name>/resolv.conf -> nameserver <gateway> (named namespaces, which
 *   `ip netns exec` bind-mounts over /etc/resolv.conf)
 *
 * Detaching deletes the host side; the kernel removes the peer with it.
 */
import { mkdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CONTAINER_IFACE_PREFIX, NAMES } from './constants.js';
import { deleteLink, ip, ipBatchIn, ipIn, listLinks } from './links.js';
import { formatMac, macForIp } from './mac.js';
import { prefixLength } from './bridge.js';
import type { ContainerInterface, ContainerPlan, NetworkPlan } from './types.js';

/** The namespace already has an interface of the name asked for (CNI: an ADD must then fail). */
export class InterfaceTakenError extends Error {
  readonly code = 'EEXIST';
}

/** /etc/netns/<name>/resolv.conf for a namespace under /run/netns; undefined for other paths. */
export function resolvConfPath(netns: string): string | undefined {
  const m = /^\/(?:var\/)?run\/netns\/([^/]+)$/.exec(netns);
  return m ? join('/etc/netns', m[1]!, 'resolv.conf') : undefined;
}

export async function attachContainer(c: ContainerPlan, net: NetworkPlan, mtu: number): Promise<void> {
  const host = NAMES.vethHost(c.taskId);
  const peer = NAMES.vethPeer(c.taskId);
  const inside = await listLinks(c.netns);
  const taken = new Set(inside.map((l) => l.ifname));
  if (c.ifName !== undefined && taken.has(c.ifName)) throw new InterfaceTakenError(`interface ${c.ifName} already exists in ${c.netns}`);
  let n = 0;
  while (taken.has(`${CONTAINER_IFACE_PREFIX}${n}`)) n++;
  const iface = c.ifName ?? `${CONTAINER_IFACE_PREFIX}${n}`;
  const hasDefault = (await ipIn(c.netns, 'route', 'show', 'default')).trim() !== '';
  await deleteLink(host);
  await ip('link', 'add', host, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', peer, 'mtu', String(mtu));
  try {
    await ip('link', 'set', peer, 'netns', c.netns);
    await ip('link', 'set', host, 'master', NAMES.bridge(net.vni), 'up');
    await ipBatchIn(c.netns, [
      'link set lo up',
      `link set ${peer} name ${iface}`,
      `link set ${iface} address ${formatMac(macForIp(c.ip))} up`,
      `addr add ${c.ip}/${prefixLength(net.subnet)} dev ${iface}`,
      ...(hasDefault ? [] : [`route add default via ${net.gateway} dev ${iface}`]),
    ]);
  } catch (err) {
    await deleteLink(host);
    throw err;
  }
  // A CNI attachment's runtime writes the container's resolv.conf from the result's dns
  // (podman does); a file here would only be left behind.
  const conf = c.ifName === undefined ? resolvConfPath(c.netns) : undefined;
  if (conf) {
    mkdirSync(dirname(conf), { recursive: true });
    // Docker's embedded DNS answers on 127.0.0.11; ours on the gateway, which every node has.
    writeFileSync(conf, `# written by swarmnet for task ${c.taskId}\nnameserver ${net.gateway}\noptions ndots:0\n`);
  }
}

/**
 * The interface holding `ip` in the namespace as it really is (name, MAC, MTU, prefix),
 * and whether the namespace's default route goes via `gateway` on it; undefined when no
 * interface there has the address.
 */
export async function readInterface(netns: string, ip: string, gateway: string): Promise<ContainerInterface | undefined> {
  type Addr = { ifname: string; address?: string; mtu?: number; addr_info?: Array<{ local: string; prefixlen: number }> };
  // Not `-4`: that leaves the link's MAC out of the JSON.
  const links = JSON.parse((await ipIn(netns, '-j', 'addr', 'show')) || '[]') as Addr[];
  const link = links.find((l) => l.addr_info?.some((a) => a.local === ip));
  const addr = link?.addr_info?.find((a) => a.local === ip && a.prefixlen !== undefined);
  if (!link || !addr) return undefined;
  const routes = JSON.parse((await ipIn(netns, '-j', '-4', 'route', 'show', 'default')) || '[]') as Array<{ gateway?: string; dev?: string }>;
  return {
    name: link.ifname,
    mac: link.address ?? '',
    mtu: link.mtu ?? 0,
    address: `${ip}/${addr.prefixlen}`,
    gateway,
    defaultRoute: routes.some((r) => r.dev === link.ifname && r.gateway === gateway),
  };
}

export async function detachContainer(taskId: string, netns: string | undefined): Promise<void> {
  await deleteLink(NAMES.vethHost(taskId));
  const conf = netns && resolvConfPath(netns);
  if (!conf) return;
  rmSync(conf, { force: true });
  try {
    rmdirSync(dirname(conf));
  } catch {
    // not empty or already gone: someone else's files stay
  }
}

/** Our host-side veths: the prefix and exactly 12 more characters. */
export function isContainerVeth(name: string): boolean {
  return name.length === NAMES.vethPrefix.length + 12 && name.startsWith(NAMES.vethPrefix);
}
