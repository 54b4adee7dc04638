/**
 * The plugin's inputs (environment, network configuration) as parsed, and the CNI
 * result shapes it prints (CNI spec section 5 "Result Types").
 */
import type { CniCommand, CniVersion } from './constants.js';

/** The CNI_* environment of one invocation, checked for the command. */
export interface CniEnv {
  command: CniCommand;
  containerId: string;
  /** Empty when not given (DEL may come without it: the namespace is already gone). */
  netns: string;
  ifName: string;
  /** CNI_ARGS, `K=V;K=V`. */
  args: Record<string, string>;
}

/** One attachment GC is told is still in use. */
export interface ValidAttachment {
  containerID: string;
  ifname: string;
}

/**
 * This plugin's configuration (one plugin object of a configuration list, or a .conf),
 * with what the runtime inserted (runtimeConfig, prevResult, cni.dev/...).
 */
export interface PluginConfig {
  cniVersion: CniVersion;
  /** The network configuration's name (the runtime's network). */
  name: string;
  type: string;
  /** The swarmnet overlay network: `network`, default `name`. */
  network: string;
  /** `service`: the service its containers become tasks of (else CNI_ARGS or an alias names it). */
  service?: string;
  /** The agent's API socket: `socket`, default the local agent's (src/api defaultSocket). */
  socket: string;
  /** `args.cni.SWARMNET_SERVICE` (CNI conventions: how Multus passes a pod's cni-args). */
  argsService?: string;
  /** `runtimeConfig.aliases[name]` (the `aliases` capability: podman's --network-alias). */
  aliases: string[];
  /** Passed through into the result's dns (the well-known `dns` key); nameservers are always the gateway. */
  dns?: Pick<CniDns, 'domain' | 'search' | 'options'>;
  /** The chain's result so far (ADD), or the ADD's result (CHECK, DEL). */
  prevResult?: CniResult;
  /** GC only. */
  validAttachments?: ValidAttachment[];
}

export interface CniInterface {
  name: string;
  mac?: string;
  /** 1.1.0 on. */
  mtu?: number;
  sandbox?: string;
}

export interface CniIp {
  /** `IP/prefix`. */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** "ADD Success" (section 5). */
export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIp[];
  routes?: CniRoute[];
  dns?: CniDns;
}

/** "Error" (section 5): printed on stdout, the exit status non-zero. */
export interface CniErrorReply {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

/** "VERSION Success" (section 5). */
export interface VersionReply {
  cniVersion: string;
  supportedVersions: string[];
}
