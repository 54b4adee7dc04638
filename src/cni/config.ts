/**
 * The plugin's inputs, checked in the order libcni's skel does (CNI spec sections 1-2):
 *
 *   environment (CNI_COMMAND and what the command needs; code 4)
 *   -> stdin decoded (code 6) -> cniVersion supported for the command (code 1)
 *   -> the configuration's keys (code 7; `ipam`, which swarmnet does itself: code 2)
 *
 * Keys this plugin does not know are left alone: runtimes add their own.
 */
import { ALIAS, ARG_SERVICE, COMMANDS, CONTAINER_ID, ERR, GC_STATUS_VERSION, IFNAME, NETWORK_NAME, REQUIRED_ENV, SUPPORTED_VERSIONS, VALID_ATTACHMENTS, type CniCommand, type CniVersion } from './constants.js';
import { CniError } from './errors.js';
import type { CniEnv, CniResult, PluginConfig, ValidAttachment } from './types.js';

type Env = Record<string, string | undefined>;
type Json = Record<string, unknown>;

/** CNI_COMMAND and the variables it needs, present and well-formed. */
export function parseEnv(env: Env): CniEnv {
  const command = env.CNI_COMMAND ?? '';
  if (command === '') throw new CniError(ERR.INVALID_ENV, 'required env variables [CNI_COMMAND] missing', `CNI_COMMAND must be one of ${COMMANDS.join(', ')}`);
  if (!(COMMANDS as readonly string[]).includes(command)) throw new CniError(ERR.INVALID_ENV, `unknown CNI_COMMAND: ${command}`, `CNI_COMMAND must be one of ${COMMANDS.join(', ')}`);
  const cmd = command as CniCommand;
  const missing = REQUIRED_ENV[cmd].filter((name) => !env[name]);
  if (missing.length > 0) throw new CniError(ERR.INVALID_ENV, `required env variables [${missing.join(',')}] missing`, `${cmd} needs ${REQUIRED_ENV[cmd].join(', ')}`);
  const containerId = env.CNI_CONTAINERID ?? '';
  const ifName = env.CNI_IFNAME ?? '';
  if (REQUIRED_ENV[cmd].includes('CNI_CONTAINERID') && !CONTAINER_ID.test(containerId)) {
    throw new CniError(ERR.INVALID_ENV, `invalid CNI_CONTAINERID: ${JSON.stringify(containerId)}`, 'a letter or digit, then letters, digits, _ . or -');
  }
  if (REQUIRED_ENV[cmd].includes('CNI_IFNAME') && !IFNAME.test(ifName)) {
    throw new CniError(ERR.INVALID_ENV, `invalid CNI_IFNAME: ${JSON.stringify(ifName)}`, 'an interface name: 1-15 characters, not . or .., no / : or whitespace');
  }
  const netns = env.CNI_NETNS ?? '';
  // Only where it is used: libcni asks VERSION with CNI_NETNS=dummy (invoke.GetVersionInfo).
  if (REQUIRED_ENV[cmd].includes('CNI_NETNS') && !netns.startsWith('/')) throw new CniError(ERR.INVALID_ENV, `invalid CNI_NETNS: ${JSON.stringify(netns)}`, 'the path of a network namespace (/run/netns/NAME, /proc/PID/ns/net)');
  return { command: cmd, containerId, netns, ifName, args: parseArgs(env.CNI_ARGS ?? '') };
}

/** CNI_ARGS: `K=V` pairs separated by ';' (section 2); an empty value is allowed, a pair without '=' is not. */
export function parseArgs(text: string): Record<string, string> {
  const args: Record<string, string> = {};
  for (const pair of text.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CniError(ERR.INVALID_ENV, `invalid CNI_ARGS: ${JSON.stringify(pair)} is not KEY=VALUE`, 'CNI_ARGS is KEY=VALUE pairs separated by ;');
    args[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return args;
}

/** The cniVersion of a configuration when it can be read (for error replies); else undefined. */
export function versionOf(text: string): string | undefined {
  try {
    const v = (JSON.parse(text) as Json | null)?.cniVersion;
    return typeof v === 'string' && v !== '' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** The network configuration on stdin, checked for `command`. */
export function parseConfig(text: string, command: CniCommand, defaultSocket: string): PluginConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new CniError(ERR.DECODE, 'failed to decode the network configuration', (err as Error).message);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new CniError(ERR.DECODE, 'failed to decode the network configuration', 'it is not a JSON object');
  const c = raw as Json;
  const cniVersion = version(c.cniVersion, command);
  const name = str(c, 'name', { required: true });
  if (!NETWORK_NAME.test(name)) throw invalid('name', name, 'a letter or digit, then letters, digits, _ . or -');
  if ('ipam' in c) throw new CniError(ERR.UNSUPPORTED_FIELD, `unsupported field ipam: ${JSON.stringify(c.ipam)}`, 'swarmnet allocates container addresses itself (the network\'s subnet): remove "ipam"');
  const given = str(c, 'socket');
  const socket = (given ?? defaultSocket).replace(/^unix:\/\//, '');
  if (!socket.startsWith('/')) throw invalid('socket', given, "the agent's API socket: an absolute path or unix://PATH");
  const service = str(c, 'service');
  const argsService = argService(c.args);
  const dns = dnsPassThrough(c.dns);
  const validAttachments = command === 'GC' ? attachments(c[VALID_ATTACHMENTS]) : undefined;
  return {
    cniVersion,
    name,
    type: str(c, 'type', { required: true }),
    network: str(c, 'network') ?? name,
    socket,
    aliases: aliasesOf(c.runtimeConfig, name),
    ...(service !== undefined && { service }),
    ...(argsService !== undefined && { argsService }),
    ...(dns && { dns }),
    ...(isObject(c.prevResult) && { prevResult: c.prevResult as unknown as CniResult }),
    ...(validAttachments && { validAttachments }),
  };
}

function version(v: unknown, command: CniCommand): CniVersion {
  const supported = `supported: ${SUPPORTED_VERSIONS.join(', ')}`;
  if (typeof v !== 'string' || !(SUPPORTED_VERSIONS as readonly string[]).includes(v)) {
    throw new CniError(ERR.INCOMPATIBLE_VERSION, `incompatible CNI version: ${v === undefined ? 'none given' : JSON.stringify(v)}`, supported);
  }
  if ((command === 'GC' || command === 'STATUS') && v !== GC_STATUS_VERSION) {
    throw new CniError(ERR.INCOMPATIBLE_VERSION, `config version ${v} does not allow ${command}`, `${command} needs cniVersion ${GC_STATUS_VERSION}`);
  }
  return v as CniVersion;
}

function str(c: Json, key: string, o: { required: true }): string;
function str(c: Json, key: string): string | undefined;
function str(c: Json, key: string, o?: { required: true }): string | undefined {
  const v = c[key];
  if (v === undefined && !o?.required) return undefined;
  if (typeof v !== 'string' || v === '') throw invalid(key, v, v === undefined ? 'required' : 'a non-empty string');
  return v;
}

function invalid(key: string, value: unknown, want: string): CniError {
  return new CniError(ERR.INVALID_CONFIG, `invalid network configuration: ${key} ${value === undefined ? 'missing' : JSON.stringify(value)}`, `${key}: ${want}`);
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `args.cni.SWARMNET_SERVICE` (CNI CONVENTIONS.md "args in network config"). */
function argService(args: unknown): string | undefined {
  if (args === undefined) return undefined;
  const v = isObject(args) && isObject(args.cni) ? args.cni[ARG_SERVICE] : undefined;
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') throw invalid(`args.cni.${ARG_SERVICE}`, v, 'a service name');
  return v;
}

/** `runtimeConfig.aliases`: network name -> names (CNI CONVENTIONS.md, podman's --network-alias); this network's. */
function aliasesOf(runtimeConfig: unknown, network: string): string[] {
  if (!isObject(runtimeConfig) || runtimeConfig.aliases === undefined) return [];
  const all = runtimeConfig.aliases;
  if (!isObject(all)) throw invalid('runtimeConfig.aliases', all, 'an object of network name -> list of names');
  const mine = all[network];
  if (mine === undefined) return [];
  if (!Array.isArray(mine) || mine.some((a) => typeof a !== 'string')) throw invalid(`runtimeConfig.aliases.${network}`, mine, 'a list of names');
  return mine as string[];
}

function dnsPassThrough(dns: unknown): PluginConfig['dns'] {
  if (!isObject(dns)) return undefined;
  const list = (v: unknown) => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined);
  const out: NonNullable<PluginConfig['dns']> = {};
  if (typeof dns.domain === 'string') out.domain = dns.domain;
  const search = list(dns.search);
  const options = list(dns.options);
  if (search) out.search = search;
  if (options) out.options = options;
  return Object.keys(out).length > 0 ? out : undefined;
}

/** GC: required, so that a runtime that forgot it does not remove every attachment. */
function attachments(v: unknown): ValidAttachment[] {
  const ok = Array.isArray(v) && v.every((a) => isObject(a) && typeof a.containerID === 'string' && typeof a.ifname === 'string');
  if (!ok) throw invalid(VALID_ATTACHMENTS, v, 'GC needs the list of {containerID, ifname} still in use');
  return (v as ValidAttachment[]).map((a) => ({ containerID: a.containerID, ifname: a.ifname }));
}

/**
 * The container's aliases that can be task aliases (one DNS label each), deduplicated
 * case-insensitively; the others are returned apart (reported on stderr, not fatal:
 * runtimes add names of their own, such as podman's container name).
 */
export function usableAliases(aliases: string[]): { usable: string[]; dropped: string[] } {
  const seen = new Set<string>();
  const usable: string[] = [];
  const dropped: string[] = [];
  for (const a of aliases) {
    if (!ALIAS.test(a)) dropped.push(a);
    else if (!seen.has(a.toLowerCase())) {
      seen.add(a.toLowerCase());
      usable.push(a);
    }
  }
  return { usable, dropped };
}
