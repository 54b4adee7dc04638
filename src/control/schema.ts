/**
 * The data model and its schemas. Every object is validated on write and on read
 * (a stored object may come from another agent or an older version).
 */
import { isIPv4 } from 'node:net';
import { Type, type Static, type TSchema, type TUnion, type TLiteral } from '@sinclair/typebox';
import { FormatRegistry } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { ValidationError } from '../util/errors.js';
import { CIPHERS, KEY_RING_MAX, PROTOCOLS, SCHEDULERS } from './constants.js';
import { parseCidr } from './cidr.js';

FormatRegistry.Set('ipv4', (v) => isIPv4(v));
FormatRegistry.Set('cidr4', (v) => parseCidr(v) !== undefined);
FormatRegistry.Set('endpoint', (v) => parseEndpoint(v) !== undefined);

function literals<const T extends readonly string[]>(values: T): TUnion<TLiteral<T[number]>[]> {
  return Type.Union(values.map((v) => Type.Literal(v))) as TUnion<TLiteral<T[number]>[]>;
}

/**
 * A DNS label: names become DNS names in the embedded DNS. RFC 1123 section 2.1's host
 * name rules plus '_' inside, because stacks name objects STACK_service as docker does
 * (a DNS label may hold any octet, RFC 2181 section 11; docker's DNS answers these).
 */
export const NameSchema = Type.String({ pattern: '^[a-zA-Z0-9](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?$' });
const Id = Type.String({ pattern: '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$' });
/**
 * A network alias of a service or task: one DNS label, '_' allowed as Docker allows it.
 * Stored as given, matched case-insensitively (RFC 4343).
 */
export const AliasSchema = Type.String({ pattern: '^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$', patternHint: "is not a valid alias (one DNS label: letters, digits, '-' and '_', at most 63, starting with a letter or digit)" });
export const AliasesSchema = Type.Array(AliasSchema, { maxItems: 64 });
const Port = Type.Integer({ minimum: 1, maximum: 65535 });
const Ip = Type.String({ format: 'ipv4' });
const Labels = Type.Record(Type.String({ minLength: 1, maxLength: 128 }), Type.String({ maxLength: 1024 }));
/** An absolute path: /run/netns/NAME or /proc/PID/ns/net. */
export const NetnsPath = Type.String({ pattern: '^/[^\\0]*$', maxLength: 4096, patternHint: 'is not an absolute path' });
const Millis = Type.Integer({ minimum: 1, maximum: 86_400_000 });

/**
 * The container runtime's names of a CNI attachment (CNI spec, section 2 "Parameters"):
 * CNI_CONTAINERID (alphanumeric first, then alphanumerics, '_', '.', '-') and CNI_IFNAME
 * (a Linux interface name: 1-15 bytes, not '.' or '..', no '/', ':' or whitespace).
 * An attachment is identified by the pair, on its node.
 */
export const ContainerRefSchema = Type.Object(
  {
    id: Type.String({ pattern: '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,255}$', patternHint: 'is not a container id (CNI_CONTAINERID: a letter or digit, then letters, digits, _ . -)' }),
    ifName: Type.String({ pattern: '^(?!\\.\\.?$)[^/:\\s]{1,15}$', patternHint: 'is not an interface name (1-15 characters, not . or .., no / : or whitespace)' }),
    /**
     * The runtime's network configuration (the CNI config's `name`) that made it: GC's
     * valid-attachments cover one configuration, so GC leaves other configurations' alone.
     */
    config: Type.Optional(Type.String({ pattern: '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$', patternHint: 'is not a CNI network name (letters, digits, _ . -)' })),
  },
  { additionalProperties: false },
);
export type ContainerRef = Static<typeof ContainerRefSchema>;

export const ProtocolSchema = literals(PROTOCOLS);
export const SchedulerSchema = literals(SCHEDULERS);
export const EndpointModeSchema = literals(['vip', 'dnsrr'] as const);
export const ProxyProtocolSchema = literals(['none', 'v1', 'v2'] as const);
export const AvailabilitySchema = literals(['active', 'pause', 'drain'] as const);
export const CipherSchema = literals(CIPHERS);
/** A node's ESP epoch: 8 random bytes in hex, new whenever its overlay engine starts (overlay/esp.ts). */
const EspEpoch = Type.String({ pattern: '^[0-9a-f]{16}$', patternHint: 'is not an ESP epoch (16 hex digits)' });
/** A key generation of a network's key ring. */
const KeyGen = Type.Integer({ minimum: 1, maximum: 0xffffffff });

export const NodeSchema = Type.Object({
  id: Id,
  addr: Ip,
  hostname: Type.String({ maxLength: 255 }),
  availability: AvailabilitySchema,
  labels: Labels,
  /** `removed`: taken out of the cluster by a manager; kept so its heartbeats cannot bring it back. */
  status: literals(['ready', 'down', 'removed'] as const),
  /** In a cluster made by `swarmnet init`: managers run nats-server and sign certificates. */
  role: Type.Optional(literals(['manager', 'worker'] as const)),
  /** Cluster API of the node (mutual TLS), `IP:PORT`. */
  api: Type.Optional(Type.String({ maxLength: 64 })),
  /** Managers: ports of their nats-server (clients, routes). */
  nats: Type.Optional(Type.Object({ client: Port, cluster: Port })),
  /** Milliseconds since the epoch of the last heartbeat. */
  lastSeen: Type.Integer({ minimum: 0 }),
  /**
   * The node's own address on each overlay network it serves (its bridge's), unique in
   * the network so traffic the node originates there (mesh to task) can be answered.
   */
  addresses: Type.Optional(Type.Array(Type.Object({ network: Id, ip: Ip }), { maxItems: 4096 })),
  /** Written by the node with its heartbeats: the epoch of its running overlay engine (its ESP SAs derive from it). */
  espEpoch: Type.Optional(EspEpoch),
  /**
   * Written by the node after its overlay applied a plan: per encrypted network (id), the
   * highest key generation whose inbound SAs it has installed. A new key becomes primary
   * (senders use it) once every live node on the network reports it (keys.ts).
   */
  espInstalled: Type.Optional(Type.Record(Type.String({ pattern: '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$' }), Type.Integer({ minimum: 0, maximum: 0xffffffff }), { additionalProperties: false, maxProperties: 4096 })),
});
export type Node = Static<typeof NodeSchema>;

export const NetworkSchema = Type.Object({
  id: Id,
  name: NameSchema,
  driver: Type.Literal('overlay'),
  vni: Type.Integer({ minimum: 1, maximum: 0xffffff }),
  subnet: Type.String({ format: 'cidr4' }),
  gateway: Ip,
  /** Its traffic between nodes travels in ESP (the key ring is in the `keys` bucket). */
  encrypted: Type.Boolean(),
  /** Set on encrypted networks; absent on networks made before ciphers could be chosen (the default then). */
  cipher: Type.Optional(CipherSchema),
  attachable: Type.Boolean(),
  labels: Labels,
  createdAt: Type.Integer({ minimum: 0 }),
});
export type Network = Static<typeof NetworkSchema>;

export const PortConfigSchema = Type.Object({
  protocol: ProtocolSchema,
  target: Port,
  published: Port,
  /** ingress: every node listens and balances to any task; host: only nodes with tasks, to local tasks. */
  mode: literals(['ingress', 'host'] as const),
});
export type PortConfig = Static<typeof PortConfigSchema>;

export const HealthCheckSchema = Type.Object({
  interval: Millis,
  timeout: Millis,
  /** Consecutive failures before a task leaves rotation. */
  retries: Type.Integer({ minimum: 1, maximum: 100 }),
});
export type HealthCheck = Static<typeof HealthCheckSchema>;

export const ServiceSchema = Type.Object({
  id: Id,
  name: NameSchema,
  endpointMode: EndpointModeSchema,
  ports: Type.Array(PortConfigSchema, { maxItems: 64 }),
  /** `aliases`: extra DNS names of the service on that network only; absent when none. */
  networks: Type.Array(Type.Object({ network: Id, vip: Type.Optional(Ip), aliases: Type.Optional(AliasesSchema) }), { maxItems: 16 }),
  lb: SchedulerSchema,
  proxyProtocol: ProxyProtocolSchema,
  healthCheck: Type.Optional(HealthCheckSchema),
  labels: Labels,
  createdAt: Type.Integer({ minimum: 0 }),
  updatedAt: Type.Integer({ minimum: 0 }),
});
export type Service = Static<typeof ServiceSchema>;

export const TaskSchema = Type.Object({
  id: Id,
  name: Type.String({ pattern: '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$' }),
  service: Id,
  node: Id,
  /** An endpoint outside any overlay: `IP` or `IP:PORT`. PORT serves the service's first port; other ports reach IP:TARGET. */
  addr: Type.Optional(Type.String({ format: 'endpoint' })),
  /** `aliases`: extra DNS names of the task on that network, answering with `ip`; absent when none. */
  addresses: Type.Array(Type.Object({ network: Id, ip: Ip, aliases: Type.Optional(AliasesSchema) }), { maxItems: 16 }),
  /** A container's network namespace (a path on the task's node), attached to addresses[0]'s network. */
  netns: Type.Optional(NetnsPath),
  /** Set by the CNI plugin: the runtime's container id and the interface name in `netns`. */
  container: Type.Optional(ContainerRefSchema),
  weight: Type.Integer({ minimum: 0, maximum: 65535 }),
  state: literals(['running', 'shutdown'] as const),
  createdAt: Type.Integer({ minimum: 0 }),
});
export type Task = Static<typeof TaskSchema>;

/**
 * The key ring of an encrypted network (`keys` bucket, key = network id). Keys are 32
 * random bytes (base64), the input keying material every node derives its ESP SAs from
 * (overlay/esp.ts). 1 to KEY_RING_MAX keys in ascending generation; `primary` is the one
 * senders use, every key of the ring is accepted on receipt.
 *
 * Key material: never logged, never returned by the API (the `secret` mark keeps it out
 * of validation messages too).
 */
export const KeyRingSchema = Type.Object({
  network: Id,
  cipher: CipherSchema,
  keys: Type.Array(
    Type.Object({
      gen: KeyGen,
      key: Type.String({ pattern: '^[A-Za-z0-9+/]{43}=$', secret: true }),
      /** Milliseconds since the epoch, on the wall clock of the manager that made it. */
      createdAt: Type.Integer({ minimum: 0 }),
    }),
    { minItems: 1, maxItems: KEY_RING_MAX },
  ),
  primary: KeyGen,
});
export type KeyRing = Static<typeof KeyRingSchema>;

/** What the schema cannot say: generations strictly ascending, and the primary one of them. */
function keyRingRule(r: KeyRing): [string, string] | undefined {
  for (let i = 1; i < r.keys.length; i++) if (r.keys[i]!.gen <= r.keys[i - 1]!.gen) return [`keys[${i}].gen`, 'generations must ascend'];
  if (!r.keys.some((k) => k.gen === r.primary)) return ['primary', `${r.primary} is not a generation of the ring`];
  return undefined;
}

/** An IPAM claim: who holds a name, port, subnet, VNI or IP. Created with compare-and-set. */
export const ClaimSchema = Type.Object({ owner: Type.String({ minLength: 1 }), kind: Type.String() });
export type Claim = Static<typeof ClaimSchema>;

/** A compiled validator that throws ValidationError naming the first bad field. */
export interface Validator<T> {
  check(value: unknown): value is T;
  assert(value: unknown, prefix?: string): T;
}

export function validator<S extends TSchema>(schema: S): Validator<Static<S>> {
  const compiled: TypeCheck<S> = TypeCompiler.Compile(schema);
  return {
    check: (value): value is Static<S> => compiled.Check(value),
    assert(value, prefix = '') {
      if (compiled.Check(value)) return value;
      const found = compiled.Errors(value).First();
      if (!found) throw new ValidationError(prefix, 'invalid');
      const first = deepest(found);
      throw new ValidationError(joinPath(prefix, first.path), describe(first));
    },
  };
}

/**
 * A union's own error says only "Expected union value". When one of its branches got
 * further into the value (`{target, aliases: ["bad!"]}` against string | object), that
 * branch's error names the field that is wrong: report it instead.
 */
function deepest(e: ValueError): ValueError {
  let best = e;
  if (e.type !== ValueErrorType.Union) return best;
  for (const branch of e.errors) {
    const f = branch.First();
    if (f && f.path.length > best.path.length) best = deepest(f);
  }
  return best;
}

/** `/ports/0/published` -> `ports[0].published`. */
function joinPath(prefix: string, pointer: string): string {
  let out = prefix;
  for (const part of pointer.split('/').slice(1)) {
    out += /^\d+$/.test(part) ? `[${part}]` : out ? `.${part}` : part;
  }
  return out;
}

/** A validator that also enforces `rule` (cross-field constraints): [field, problem] when broken. */
export function refine<T>(v: Validator<T>, rule: (value: T) => [string, string] | undefined): Validator<T> {
  return {
    check: (value): value is T => v.check(value) && rule(value) === undefined,
    assert(value, prefix = '') {
      const ok = v.assert(value, prefix);
      const broken = rule(ok);
      if (broken) throw new ValidationError(joinPath(prefix, '/' + broken[0].replace(/\[(\d+)\]/g, '/$1').replace(/\./g, '/')), broken[1]);
      return ok;
    },
  };
}

/** Human wording for the errors users actually hit; TypeBox's message otherwise. */
function describe(e: ValueError): string {
  // Key material never appears in a message (they are logged: `skipping malformed stored object`).
  if ((e.schema as { secret?: boolean }).secret) return 'is malformed (value withheld: key material)';
  const s = e.schema as { anyOf?: Array<{ const?: unknown }>; minimum?: number; maximum?: number; format?: string; pattern?: string; patternHint?: string; unionHint?: string };
  if (e.type === ValueErrorType.Union && s.anyOf?.every((x) => x.const !== undefined)) {
    return `must be one of ${s.anyOf.map((x) => String(x.const)).join(', ')} (got ${JSON.stringify(e.value)})`;
  }
  if ((e.type === ValueErrorType.NumberMinimum || e.type === ValueErrorType.NumberMaximum || e.type === ValueErrorType.IntegerMinimum || e.type === ValueErrorType.IntegerMaximum) && s.minimum !== undefined && s.maximum !== undefined) {
    return `must be from ${s.minimum} to ${s.maximum} (got ${JSON.stringify(e.value)})`;
  }
  if (e.type === ValueErrorType.StringFormat) return `${JSON.stringify(e.value)} is not a valid ${FORMAT_NAMES[s.format ?? ''] ?? s.format}`;
  if (e.type === ValueErrorType.StringPattern && s.patternHint) return `${JSON.stringify(e.value)} ${s.patternHint}`;
  if (e.type === ValueErrorType.Union && s.unionHint) return s.unionHint;
  if (e.type === ValueErrorType.StringPattern) return `${JSON.stringify(e.value)} is not a valid name (letters, digits, '-' and '_', at most 63, starting and ending with a letter or digit)`;
  if (e.type === ValueErrorType.ObjectRequiredProperty) return 'is required';
  if (e.type === ValueErrorType.ObjectAdditionalProperties) return 'unknown field';
  return e.message;
}

const FORMAT_NAMES: Record<string, string> = { ipv4: 'IPv4 address', cidr4: 'IPv4 CIDR (a.b.c.d/len)', endpoint: 'endpoint (IP or IP:PORT)' };

/** Parses `IP` or `IP:PORT`; undefined when malformed. */
export function parseEndpoint(v: string): { ip: string; port?: number } | undefined {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})(?::(\d{1,5}))?$/.exec(v);
  if (!m || !isIPv4(m[1]!)) return undefined;
  if (m[2] === undefined) return { ip: m[1]! };
  const port = Number(m[2]);
  return port >= 1 && port <= 65535 ? { ip: m[1]!, port } : undefined;
}

export const validate = {
  node: validator(NodeSchema),
  network: validator(NetworkSchema),
  service: validator(ServiceSchema),
  task: validator(TaskSchema),
  claim: validator(ClaimSchema),
  keyRing: refine(validator(KeyRingSchema), keyRingRule),
};
