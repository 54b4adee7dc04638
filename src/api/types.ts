/**
 * The response types of the agent API: what clients (the CLI, stack deploy, the CNI
 * plugin) get back. Stored objects are the control plane's schemas; everything else
 * the agent adds (observed state, cluster membership) is declared here.
 */
import type { Network, Node, Service, Task } from '../control/schema.js';
import type { CipherName } from '../control/constants.js';

export type { Network, Node, Service, Task };

/** `GET /v1/info`. */
export interface Info {
  node: string;
  version: string;
  /** Open listeners of the routing mesh, `proto/ip:port`. */
  listening: string[];
  /** How this agent keeps state: alone, in a cluster it was joined to, or on a NATS the user runs. */
  mode: 'single' | 'cluster' | 'nats';
  cluster?: ClusterInfo;
}

export interface ClusterInfo {
  id: string;
  role: 'manager' | 'worker';
  /** Cluster API address of this node (mutual TLS), `IP:PORT`. */
  listenAddr: string;
  advertiseAddr: string;
  /** This node's certificate: when it stops being valid. */
  certExpires: string;
}

/** A task with what this agent observes of it. */
export type TaskView = Task & { observed: { state: string; active: number } };

/**
 * A container's overlay interface as the agent read it back from the namespace after
 * attaching: what a CNI result reports (the MAC and prefix are the interface's own).
 */
export interface Attachment {
  /** The namespace (the task's `netns`). */
  netns: string;
  /** Interface name in the namespace. */
  ifName: string;
  mac: string;
  mtu: number;
  /** `IP/prefix`. */
  address: string;
  /** The network's gateway, also the containers' DNS server. */
  gateway: string;
  /** The attach installed the default route via the gateway (the namespace had none). */
  defaultRoute: boolean;
}

/**
 * A task attached to a namespace on the answering node, with its interface as it is now
 * (`POST /v1/tasks` with netns, `GET /v1/containers/{id}/{ifName}`). `attachment` is
 * absent when the interface is not there (the namespace gone, the link deleted).
 */
export type AttachedTask = Task & { attachment?: Attachment };

/**
 * `GET /v1/networks/{ref}` of an encrypted network: its key ring's state and the ESP
 * security associations of the answering node. Never key material.
 */
export interface NetworkEncryptionView {
  cipher: CipherName;
  /** The generation senders use; absent while the network has no ring yet. */
  primary?: number;
  /** Ascending generations; a newest key that is not primary is being installed. */
  keys: Array<{ gen: number; createdAt: number; ageSeconds: number; primary: boolean }>;
  /** SAs installed on the node that answered (each node has its own, with each peer). */
  sas: EspSa[];
}

/** One ESP security association of a node (no key). */
export interface EspSa {
  /** Network id. */
  network: string;
  gen: number;
  dir: 'in' | 'out';
  spi: number;
  /** The other node's underlay address. */
  peer: string;
  /** Last sequence number sent (out) or highest accepted (in): 64-bit, decimal. */
  seq: string;
}

/** `GET /v1/networks/{ref}`: the network, and for an encrypted one its encryption state. */
export type NetworkView = Network & { encryption?: NetworkEncryptionView };

/** `POST /v1/networks/{ref}/rotate-key`: the new generation (primary once every node installed it). */
export interface KeyRotation {
  network: string;
  gen: number;
}

/** A node as this agent judges it: status from heartbeats received, on its own clock. */
export type NodeView = Node & { heardMsAgo?: number };

/** One flow of the connection table (`swarmnet conn ls`, like `ipvsadm -Lnc`). */
export interface Conn {
  proto: string;
  state: string;
  client: string;
  local: string;
  service: string;
  backend: string | undefined;
  backendName: string | undefined;
  expiresInMs: number;
  bytesIn: number;
  bytesOut: number;
}

/** `POST /v1/swarm/init`, `POST /v1/swarm/join`: what the node became. */
export interface JoinResult {
  node: string;
  role: 'manager' | 'worker';
  /** `swarmnet join ...` lines for more nodes (init, and managers). */
  joinCommands?: { worker: string; manager: string };
}

/** `GET /v1/swarm/join-token/:role`. */
export interface JoinToken {
  role: 'manager' | 'worker';
  token: string;
  /** Managers' cluster API addresses a new node may join through. */
  managers: string[];
}

/** What an event is about (`swarmnet events --filter type=...`). */
export const EVENT_TYPES = ['service', 'task', 'network', 'node', 'key', 'cert'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/**
 * `GET /v1/events`: one change seen by the answering agent, as `docker events` prints
 * them. Actions by type:
 *   service, network   create | update | remove
 *   task               create | update | remove (the stored task), and what this node's
 *                      routing mesh observes of it: up | down (health check failing) |
 *                      backoff (connections failing) | drain
 *   node               join | ready | down | leave
 *   key                rotate (a new key being installed) | promote (senders switched to it)
 *   cert               renew (this node's certificate)
 */
export interface AgentEvent {
  /** Position in the agent's event log; ascending, never reused within one agent run. */
  seq: number;
  /** When, as an ISO 8601 time with milliseconds. */
  time: string;
  type: EventType;
  action: string;
  /** The object's id (the node's id for cert) and name. */
  id: string;
  name: string;
  /** Details: service of a task, its address, the network of a key and its generation... */
  attributes: Record<string, string>;
}
