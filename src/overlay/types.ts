/** Seams of the overlay: the frame engine, and what the overlay is asked to make true. */
import type { EngineStat } from './constants.js';

/**
 * Moves frames between TAP devices and VXLAN peers (native/src/vxlan.c). Calls throw
 * an Error with code/errno/syscall. Frames the FDB cannot place arrive at `onControl`.
 */
export interface FrameEngine {
  /** Opens TAP `name` with `mtu`, up, and attaches it to `vni`. */
  addTap(vni: number, name: string, mtu: number): void;
  delTap(vni: number): void;
  /** Frames for `mac` on `vni` are sent to the node at `ip`. */
  fdbSet(vni: number, mac: Buffer, ip: string): void;
  fdbDel(vni: number, mac: Buffer): void;
  /** The node addresses VXLAN is accepted from; anything else is dropped. */
  setPeers(ips: string[]): void;
  /** Writes a frame into the TAP of `vni`, towards the local bridge. */
  write(vni: number, frame: Buffer): void;
  stats(): Record<EngineStat, number>;
  close(): void;
}

/** One overlay network as this node serves it. */
export interface NetworkPlan {
  id: string;
  name: string;
  vni: number;
  /** CIDR, e.g. 10.0.1.0/24. */
  subnet: string;
  /** Containers' default gateway and DNS server; present on every node's bridge. */
  gateway: string;
  /** This node's own address in the network (the bridge's), unique per node. */
  nodeIp: string;
  /** Service VIPs on this network, served here by the routing mesh. */
  vips: string[];
}

/** An endpoint on another node: its MAC goes to `nodeAddr`, its ARP is answered here. */
export interface RemoteEndpoint {
  vni: number;
  ip: string;
  nodeAddr: string;
}

/** A container (network namespace) attached to a network on this node. */
export interface ContainerPlan {
  taskId: string;
  netns: string;
  network: string;
  ip: string;
}

export interface OverlayPlan {
  /** Underlay addresses of the other nodes: the only sources of VXLAN accepted. */
  peers: string[];
  networks: NetworkPlan[];
  remotes: RemoteEndpoint[];
  containers: ContainerPlan[];
}
