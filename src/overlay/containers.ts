/**
 * Attaching a container (a network namespace) to an overlay network on this node:
 *
 *   ip link add swv<task> type veth peer name swp<task>   (host side joins the bridge)
 *   ip link set swp<task> netns <path>
 *   in the namespace: swp<task> -> eth<N>, MAC derived from the IP, address, up,
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
import type { ContainerPlan, NetworkPlan } from './types.js';

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
  let n = 0;
  while (taken.has(`${CONTAINER_IFACE_PREFIX}${n}`)) n++;
  const iface = `${CONTAINER_IFACE_PREFIX}${n}`;
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
  const conf = resolvConfPath(c.netns);
  if (conf) {
    mkdirSync(dirname(conf), { recursive: true });
    // Docker's embedded DNS answers on 127.0.0.11; ours on the gateway, which every node has.
    writeFileSync(conf, `# written by swarmnet for task ${c.taskId}\nnameserver ${net.gateway}\noptions ndots:0\n`);
  }
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
