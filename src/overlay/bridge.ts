/**
 * One Linux bridge per overlay network on this node, with the network's TAP as a
 * port. The bridge carries this node's own address (the primary, so traffic the
 * node originates into the overlay has a source that is unique in the cluster),
 * the gateway and the VIPs (/32, answered locally on every node):
 *
 *   container eth0 --veth-- snbr<vni> --port-- sntap<vni> ==VXLAN== other nodes
 *                           | nodeIp/len, gateway/32, vip/32...
 */
import { addressesOf, ip, listLinks } from './links.js';
import { formatMac, macForIp } from './mac.js';
import { NAMES } from './constants.js';
import type { NetworkPlan } from './types.js';

export function prefixLength(subnet: string): number {
  return Number(subnet.split('/')[1]);
}

export async function ensureBridge(net: NetworkPlan, mtu: number): Promise<void> {
  const br = NAMES.bridge(net.vni);
  const links = await listLinks();
  if (!links.some((l) => l.ifname === br)) await ip('link', 'add', br, 'mtu', String(mtu), 'type', 'bridge');
  // The bridge's MAC is the one every other node derives for nodeIp.
  await ip('link', 'set', br, 'address', formatMac(macForIp(net.nodeIp)), 'mtu', String(mtu), 'up');
  await syncAddresses(br, net);
}

export async function attachTap(vni: number, mtu: number): Promise<void> {
  await ip('link', 'set', NAMES.tap(vni), 'master', NAMES.bridge(vni), 'mtu', String(mtu), 'up');
}

/** Adds what is missing (the node address first, so it is the primary) and removes the rest. */
export async function syncAddresses(br: string, net: NetworkPlan): Promise<void> {
  const want = [`${net.nodeIp}/${prefixLength(net.subnet)}`, `${net.gateway}/32`, ...net.vips.map((v) => `${v}/32`)];
  const have = await addressesOf(br);
  if (have[0] !== undefined && have[0] !== want[0]) {
    // A different primary (node address changed): start over so the new one is primary.
    await ip('addr', 'flush', 'dev', br);
    have.length = 0;
  }
  for (const a of want) if (!have.includes(a)) await ip('addr', 'add', a, 'dev', br);
  for (const a of have) if (!want.includes(a)) await ip('addr', 'del', a, 'dev', br);
}
