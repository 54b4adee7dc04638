/**
 * The nats-server configuration of a manager, rendered from one options object (a pure
 * function: the supervisor writes the text, tests read it).
 *
 *   clients  : TLS with the cluster CA, the client's certificate subject is its user
 *              (verify_and_map), and the users are exactly the cluster's nodes
 *   jetstream: store_dir in the agent's data dir, server_name = node id
 *   cluster  : routes to the other managers, mutually TLS-verified with the same CA;
 *              left out while the manager is alone (see `isClustered`)
 *
 * Behaviour of nats-server 2.9.10 (Debian) that shapes this file, found with real
 * processes:
 * - A server with a cluster block and no routes refuses JetStream ("JetStream cluster
 *   requires configured routes or solicited leafnode for the system account") and
 *   exits. With routes to peers that are not up yet (or to itself) it starts, but its
 *   JetStream meta group expects max(2, routes) peers and has no leader until a second
 *   server joins. So a lone manager runs without a cluster block, standalone.
 * - A removed user is cut off by rewriting `users` and reloading (SIGHUP): on reload
 *   every client is authorized again and the removed ones are closed at once with
 *   "-ERR 'Authorization Violation'" (nats.js reports AuthorizationError).
 * - With verify_and_map the user is looked up by the certificate subject rendered as
 *   Go's pkix RDNSequence.String() (RFC 4514 escaping), so `CN=<id>` for our certs,
 *   which carry no DNS or email SANs (those would be matched first).
 */
import { isIP } from 'node:net';
import { ValidationError } from '../../util/errors.js';

/** NATS client and route ports, as nats-server's own defaults. */
export const NATSD_DEFAULTS = { clientPort: 4222, clusterPort: 6222 } as const;

/** The NATS cluster name: the same on every manager (routes of another name are refused). */
export const CLUSTER_NAME = 'swarmnet';

export interface NatsdTls {
  /** This node's certificate (subject `CN=<node id>`, EKU serverAuth + clientAuth). */
  certFile: string;
  keyFile: string;
  /** The cluster CA: clients and routes must present a certificate it signed. */
  caFile: string;
  /**
   * The route identity (`CN=swarmnet:route`, which only managers can make): routes
   * present it and accept only it, so no node certificate (a worker's, a removed
   * node's) can join the cluster as a server. Without it, routes verify the chain only.
   */
  routeCertFile?: string;
  routeKeyFile?: string;
}

/** The one subject every manager's route certificate has (see trust `identityName`). */
export const ROUTE_USER = 'CN=swarmnet:route';

export interface NatsdConfig {
  /** JetStream server name: the node id (JetStream peers are known by it). */
  serverName: string;
  /** Address to listen on, clients and routes alike. */
  host: string;
  clientPort: number;
  clusterPort: number;
  /** JetStream store directory (in the agent's data dir). */
  storeDir: string;
  tls: NatsdTls;
  /** `host:port` of the other managers' route ports (`[v6]:port` for IPv6); none = standalone. */
  routes: string[];
  /** Node ids allowed to connect. This server's own node is always one of them. */
  users: string[];
  /** Where nats-server writes its pid (the supervisor finds a server left by an earlier run). */
  pidFile?: string;
  /**
   * Only this node may create streams: set while the supervisor adopts a standalone
   * server's streams into the cluster, so no other agent creates an empty one of the
   * same name first (which would hide the standalone copy).
   */
  lockStreams?: boolean;
  /**
   * The CN of this manager's own system-account identity (`sys:<node id>`, a
   * certificate it signs for itself and never hands out, see trust `identityName`):
   * JetStream meta-group operations such as removing a demoted manager's peer need it.
   */
  systemUser?: string;
}



/** The JetStream API subject that creates a stream (a KV bucket), `$JS.API.STREAM.CREATE.<name>`. */
const STREAM_CREATE = '$JS.API.STREAM.CREATE.>';

/** A cluster block only with routes: see the file header for why a lone manager runs standalone. */
export function isClustered(o: Pick<NatsdConfig, 'routes'>): boolean {
  return o.routes.length > 0;
}

/** The JetStream placement tag naming one server, so a stream can be put on that node. */
export function nodeTag(serverName: string): string {
  return `node:${serverName}`;
}

/**
 * The verify_and_map user of a node: its certificate subject as nats-server renders it
 * (Go `pkix.RDNSequence.String`: `,+"\<>;` escaped, `#` at the start and a space at
 * either end too, RFC 4514 section 2.4).
 */
export function certUser(nodeId: string): string {
  let out = '';
  for (let i = 0; i < nodeId.length; i++) {
    const c = nodeId[i]!;
    const escape = ',+"\\<>;'.includes(c) || (c === ' ' && (i === 0 || i === nodeId.length - 1)) || (c === '#' && i === 0);
    out += escape ? `\\${c}` : c;
  }
  return `CN=${out}`;
}

/**
 * A double-quoted string of the NATS config language, whose lexer knows only the escapes
 * \xXX \t \n \r \" \\ (conf/lex.go lexStringEscape). Quoted, `$` is no variable reference.
 */
export function quote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    if (ch === '\\' || ch === '"') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

/** The configuration file's text. Throws ValidationError on an option nats-server would reject or misread. */
export function renderConfig(o: NatsdConfig): string {
  validate(o);
  const users = unique([o.serverName, ...o.users]);
  const routes = unique(o.routes).map(routeUrl);
  const tls = (verify: 'verify_and_map' | 'verify') =>
    [`cert_file: ${quote(o.tls.certFile)}`, `key_file: ${quote(o.tls.keyFile)}`, `ca_file: ${quote(o.tls.caFile)}`, `${verify}: true`];
  const lines = [
    '# Written by the swarmnet agent, which supervises this server: edits are overwritten.',
    `server_name: ${quote(o.serverName)}`,
    '# Lets a stream be placed on this node by tag (adopting standalone streams into the cluster).',
    `server_tags: [${quote(nodeTag(o.serverName))}]`,
    `host: ${quote(o.host)}`,
    `port: ${o.clientPort}`,
    ...(o.pidFile ? [`pid_file: ${quote(o.pidFile)}`] : []),
    '',
    'jetstream {',
    `  store_dir: ${quote(o.storeDir)}`,
    '}',
    '',
    '# Clients: mutual TLS with the cluster CA; the certificate subject names the user.',
    'tls {',
    ...indent(tls('verify_and_map')),
    '}',
    '# Exactly the cluster nodes: a node removed from this list is disconnected on reload.',
    'authorization {',
    '  users = [',
    ...users.map((u) =>
      o.lockStreams && u !== o.serverName
        ? `    { user: ${quote(certUser(u))}, permissions: { publish: { deny: [${quote(STREAM_CREATE)}] } } }`
        : `    { user: ${quote(certUser(u))} }`,
    ),
    '  ]',
    '}',
  ];
  if (o.systemUser) {
    lines.push(
      '',
      '# The system account: only this manager\'s own system identity (meta-group operations).',
      'accounts {',
      `  SYS { users = [ { user: ${quote(certUser(o.systemUser))} } ] }`,
      '}',
      'system_account: SYS',
    );
  }
  if (routes.length > 0) {
    lines.push(
      '',
      '# Routes between managers, verified both ways with the cluster CA (a route presents',
      '# its route certificate; its IP SAN is checked against the address dialled) and',
      '# authorized only as the managers\' route identity.',
      'cluster {',
      `  name: ${quote(CLUSTER_NAME)}`,
      `  host: ${quote(o.host)}`,
      `  port: ${o.clusterPort}`,
      '  tls {',
      ...(o.tls.routeCertFile && o.tls.routeKeyFile
        ? indent([`cert_file: ${quote(o.tls.routeCertFile)}`, `key_file: ${quote(o.tls.routeKeyFile)}`, `ca_file: ${quote(o.tls.caFile)}`, 'verify_and_map: true'], 4)
        : indent(tls('verify'), 4)),
      '  }',
      ...(o.tls.routeCertFile && o.tls.routeKeyFile ? [`  authorization { user: ${quote(ROUTE_USER)} }`] : []),
      '  routes = [',
      ...routes.map((r) => `    ${quote(r)}`),
      '  ]',
      '}',
    );
  }
  return lines.join('\n') + '\n';
}

function validate(o: NatsdConfig): void {
  if (!o.serverName || /\s/.test(o.serverName)) throw new ValidationError('serverName', 'must be a non-empty name without spaces');
  if (!o.host) throw new ValidationError('host', 'is required');
  for (const [field, port] of [['clientPort', o.clientPort], ['clusterPort', o.clusterPort]] as const) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ValidationError(field, `${port} is not a TCP port`);
  }
  if (o.clientPort === o.clusterPort) throw new ValidationError('clusterPort', 'must differ from clientPort');
  for (const [field, path] of [['storeDir', o.storeDir], ['tls.certFile', o.tls.certFile], ['tls.keyFile', o.tls.keyFile], ['tls.caFile', o.tls.caFile]] as const) {
    if (!path) throw new ValidationError(field, 'is required');
  }
  o.users.forEach((u, i) => {
    if (!u) throw new ValidationError(`users[${i}]`, 'is empty');
  });
  o.routes.forEach((r, i) => routeUrl(r, i));
}

/** `host:port` as a route URL; IPv6 hosts must be bracketed. */
function routeUrl(hostPort: string, i = 0): string {
  let u: URL;
  try {
    u = new URL(`nats://${hostPort}`);
  } catch {
    throw new ValidationError(`routes[${i}]`, `${hostPort} is not host:port`);
  }
  const bare = u.hostname.replace(/^\[|\]$/g, '');
  if (!u.port || u.username || u.password || (u.pathname !== '' && u.pathname !== '/') || u.search || u.hash || (bare.includes(':') && isIP(bare) !== 6)) {
    throw new ValidationError(`routes[${i}]`, `${hostPort} is not host:port`);
  }
  return `nats://${u.host}`;
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)];
}

function indent(lines: string[], n = 2): string[] {
  return lines.map((l) => ' '.repeat(n) + l);
}
