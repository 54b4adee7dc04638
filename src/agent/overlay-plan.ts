/**
 * Desired state (View) -> what the overlay on this node must look like. Pure, so the
 * whole mapping is unit-tested without devices:
 *
 *   every overlay network this node has an address on -> bridge + TAP, with the
 *     service VIPs of that network (served by this node's mesh); an encrypted one with
 *     its key ring (decoded) and the lower MTU ESP leaves room for
 *   every other node's underlay address -> the VXLAN sources accepted, and its ESP epoch
 *   every endpoint on another node (its tasks' IPs and its own addresses) -> FDB + ARP
 *   this node's tasks with a netns -> attached containers
 */
import type { KeyRing, Network, Node, Service, Task } from '../control/schema.js';
import type { View } from '../control/view.js';
import { RING_KEY_BYTES } from '../control/constants.js';
import { encryptedMtu, type ContainerPlan, type NetworkEncryption, type NetworkPlan, type OverlayPlan, type RemoteEndpoint } from '../overlay/index.js';

export interface PlanResult {
  plan: OverlayPlan;
  /** Networks this node has no address on yet (to be claimed; the next pass adds them). */
  missing: Network[];
  /** Networks not carried, with why (an encrypted network whose key ring is not there yet). */
  skipped: Array<{ network: Network; reason: string }>;
}

type ViewLike = Pick<View, 'nodes' | 'networks' | 'services' | 'tasks' | 'keys'>;

export interface PlanOptions {
  /** This node's id. */
  self: string;
  /** This node's ESP epoch (its running engine's, see Runtime). */
  epoch: string;
  /** The overlay MTU (--overlay-mtu); encrypted networks get encryptedMtu of it. */
  mtu: number;
}

export function overlayPlan(view: ViewLike, o: PlanOptions): PlanResult {
  const { self } = o;
  const me = view.nodes.get(self);
  const mine = new Map((me?.addresses ?? []).map((a) => [a.network, a.ip]));
  const vnis = new Map<string, number>();
  const networks: NetworkPlan[] = [];
  const missing: Network[] = [];
  const skipped: PlanResult['skipped'] = [];
  for (const net of view.networks.values()) {
    let encryption: NetworkEncryption | undefined;
    if (net.encrypted) {
      // Never carry in clear text what the user asked to be encrypted: without its ring
      // (made with the network; a moment late on this node, or a network older than
      // rings until a manager makes one) the network is not set up here at all.
      const ring = view.keys.get(net.id);
      encryption = ring && decodeRing(ring);
      if (!encryption) {
        skipped.push({ network: net, reason: ring ? 'encrypted network: its key ring is malformed; not carried' : 'encrypted network: no key ring yet; not carried until it is there' });
        continue;
      }
    }
    vnis.set(net.id, net.vni);
    const nodeIp = mine.get(net.id);
    if (!nodeIp) {
      missing.push(net);
      continue;
    }
    networks.push({
      id: net.id,
      name: net.name,
      vni: net.vni,
      subnet: net.subnet,
      gateway: net.gateway,
      nodeIp,
      vips: vipsOn(view.services.values(), net.id),
      mtu: encryption ? encryptedMtu(o.mtu) : o.mtu,
      ...(encryption && { encryption }),
    });
  }
  const remotes: RemoteEndpoint[] = [];
  const peers: string[] = [];
  const epochs: Record<string, string> = {};
  /**
   * Who gave the epoch of an address: of two records at one address (a node that re-joined
   * under a new id), the one heard from last; a dead node's record stays `ready` in the store.
   * Both heartbeats come from the machine at that address, so their clocks agree.
   */
  const epochOwner = new Map<string, Node>();
  for (const node of view.nodes.values()) {
    if (node.id === self) continue;
    peers.push(node.addr);
    if (node.espEpoch && node.status !== 'removed') {
      const had = epochOwner.get(node.addr);
      if (!had || node.lastSeen > had.lastSeen) {
        epochs[node.addr] = node.espEpoch;
        epochOwner.set(node.addr, node);
      }
    }
    for (const a of node.addresses ?? []) {
      const vni = vnis.get(a.network);
      if (vni !== undefined) remotes.push({ vni, ip: a.ip, nodeAddr: node.addr });
    }
  }
  const containers: ContainerPlan[] = [];
  for (const t of view.tasks.values()) {
    if (t.node === self) {
      const a = t.addresses[0];
      if (t.netns && a && vnis.has(a.network)) containers.push({ taskId: t.id, netns: t.netns, network: a.network, ip: a.ip, ...(t.container && { ifName: t.container.ifName }) });
      continue;
    }
    const node = view.nodes.get(t.node);
    if (!node) continue;
    for (const a of t.addresses) {
      const vni = vnis.get(a.network);
      if (vni !== undefined) remotes.push({ vni, ip: a.ip, nodeAddr: node.addr });
    }
  }
  return { plan: { peers, epoch: o.epoch, epochs, networks, remotes, containers }, missing, skipped };
}

/** A stored ring as the overlay takes it: keys as bytes. Undefined when a key is not RING_KEY_BYTES long. */
function decodeRing(ring: KeyRing): NetworkEncryption | undefined {
  const keys = ring.keys.map((k) => ({ gen: k.gen, key: Buffer.from(k.key, 'base64') }));
  if (keys.some((k) => k.key.length !== RING_KEY_BYTES)) return undefined;
  return { cipher: ring.cipher, keys, primary: ring.primary };
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
