/**
 * What the plugin prints (CNI spec section 5): the ADD result built from the interface
 * the agent read back from the namespace, the VERSION reply, and error replies.
 *
 *   ADD: {cniVersion, interfaces: [{name: CNI_IFNAME, mac, mtu (1.1.0), sandbox: CNI_NETNS}],
 *         ips: [{address: IP/prefix, gateway, interface: <index>}],
 *         routes: [{dst: 0.0.0.0/0, gw: gateway}]   (only when the attach installed it),
 *         dns: {nameservers: [gateway], + the configuration's domain/search/options}}
 *
 * With a `prevResult` (a plugin before us in the chain), ours is appended to it, as the
 * spec asks of a plugin that is given one.
 */
import type { Attachment } from '../api/index.js';
import { CURRENT_VERSION, DEFAULT_ROUTE, GC_STATUS_VERSION, SUPPORTED_VERSIONS } from './constants.js';
import { CniError } from './errors.js';
import type { CniErrorReply, CniResult, PluginConfig, VersionReply } from './types.js';

export function addResult(conf: Pick<PluginConfig, 'cniVersion' | 'prevResult' | 'dns'>, a: Attachment): CniResult {
  const prev = conf.prevResult;
  const interfaces = [...(prev?.interfaces ?? []), { name: a.ifName, mac: a.mac, ...(conf.cniVersion === GC_STATUS_VERSION && { mtu: a.mtu }), sandbox: a.netns }];
  const ips = [...(prev?.ips ?? []), { address: a.address, gateway: a.gateway, interface: interfaces.length - 1 }];
  const routes = [...(prev?.routes ?? []), ...(a.defaultRoute ? [{ dst: DEFAULT_ROUTE, gw: a.gateway }] : [])];
  const nameservers = [a.gateway, ...(prev?.dns?.nameservers ?? []).filter((n) => n !== a.gateway)];
  return {
    cniVersion: conf.cniVersion,
    interfaces,
    ips,
    ...(routes.length > 0 && { routes }),
    dns: { ...prev?.dns, ...conf.dns, nameservers },
  };
}

/** VERSION: the version asked in (section 5 "VERSION Success"), or the newest when none was. */
export function versionReply(asked: string | undefined): VersionReply {
  return { cniVersion: asked ?? CURRENT_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}

/** The error reply of any failure; one that is not a CniError is this plugin's bug, reported as the agent code's fallback. */
export function errorReply(err: unknown, cniVersion: string | undefined, fallbackCode: number): CniErrorReply {
  const version = cniVersion ?? CURRENT_VERSION;
  if (err instanceof CniError) return { cniVersion: version, code: err.code, msg: err.message, ...(err.details && { details: err.details }) };
  return { cniVersion: version, code: fallbackCode, msg: 'internal error', details: err instanceof Error ? err.message : String(err) };
}
