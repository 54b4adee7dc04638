/**
 * Desired state (View) -> what the overlay on this node must look like. Pure, so the
 * whole mapping is unit-tested without devices:
 *
 *   every overlay network this node has an address on -> bridge + TAP, with the
 *     service VIPs of that network (served by this node's mesh)
 *   every other node's underlay address -> the VXLAN sources accepted
 *   every endpoint on another node (its tasks' IPs and its own addresses) -> FDB + ARP
 *   this node's tasks with a netns -> attached containers
 */
import type { Network, Service, Task } from '../control/schema.js';
import type { View } from '../control/view.js';
import type { ContainerPlan, NetworkPlan, OverlayPlan, RemoteEndpoint } from '../overlay/index.js';

export interface PlanResult {
  plan: OverlayPlan;
  /** Networks this node has no address on yet (to be claimed; the next pass adds them). */
  missing: Network[];
  /** Networks not carried, with why (encryption comes with ESP support). */
  skipped: Array<{ network: Network; reason: string }>;
}

type ViewLike = Pick<View, 'nodes' | 'networks' | 'services' | 'tasks'>;

export function overlayPlan(view: ViewLike, self: string): PlanResult {
  const me = view.nodes.get(self);
  const mine = new Map((me?.addresses ?? []).map((a) => [a.network, a.ip]));
  const vnis = new Map<string, number>();
  const networks: NetworkPlan[] = [];
  const missing: Network[] = [];
  const skipped: PlanResult['skipped'] = [];
  for (const net of view.networks.values()) {
    if (net.encrypted) {
      // Never carry in clear text what the user asked to be encrypted.
      skipped.push({ network: net, reason: 'encrypted overlays need ESP, which this version does not carry' });
      continue;
    }
    vnis.set(net.id, net.vni);
    const nodeIp = mine.get(net.id);
    if (!nodeIp) {
      missing.push(net);
      continue;
    }
    networks.push({ id: net.id, name: net.name, vni: net.vni, subnet: net.subnet, gateway: net.gateway, nodeIp, vips: vipsOn(view.services.values(), net.id) });
  }
  const remotes: RemoteEndpoint[] = [];
  const peers: string[] = [];
  for (const node of view.nodes.values()) {
    if (node.id === self) continue;
    peers.push(node.addr);
    for (const a of node.addresses ?? []) {
      const vni = vnis.get(a.network);
      if (vni !== undefined) remotes.push({ vni, ip: a.ip, nodeAddr: node.addr });
    }
  }
  const containers: ContainerPlan[] = [];
  for (const t of view.tasks.values()) {
    if (t.node === self) {
      const a = t.addresses[0];
      if (t.netns && a && vnis.has(a.network)) containers.push({ taskId: t.id, netns: t.netns, network: a.network, ip: a.ip });
      continue;
    }
    const node = view.nodes.get(t.node);
    if (!node) continue;
    for (const a of t.addresses) {
      const vni = vnis.get(a.network);
      if (vni !== undefined) remotes.push({ vni, ip: a.ip, nodeAddr: node.addr });
    }
  }
  return { plan: { peers, networks, remotes, containers }, missing, skipped };
}

function vipsOn(services: Iterable<Service>, network: string): string[] {
  const out: string[] = [];
  for (const s of services) {
    if (s.endpointMode !== 'vip') continue;
    for (const n of s.networks) if (n.network === network && n.vip) out.push(n.vip);
  }
  return out.sort();
}

/** Backends of a service's VIP on `network`: its running tasks with an address there. */
export function vipBackendsOf(tasks: readonly Task[], network: string): Array<{ task: Task; ip: string }> {
  const out: Array<{ task: Task; ip: string }> = [];
  for (const t of tasks) {
    const a = t.addresses.find((x) => x.network === network);
    if (a) out.push({ task: t, ip: a.ip });
  }
  return out;
}
