/**
 * What users send (API/CLI input), as opposed to what is stored (schema.ts).
 * Unknown fields are rejected so a typo is an error, not a silently ignored option.
 */
import { Type, type Static } from '@sinclair/typebox';
import { AliasesSchema, CipherSchema, EndpointModeSchema, HealthCheckSchema, NameSchema, ProtocolSchema, ProxyProtocolSchema, SchedulerSchema, AvailabilitySchema, ContainerRefSchema, NetnsPath, refine, validator } from './schema.js';

const Port = Type.Integer({ minimum: 1, maximum: 65535 });
const Labels = Type.Record(Type.String({ minLength: 1, maxLength: 128 }), Type.String({ maxLength: 1024 }));
const strict = { additionalProperties: false } as const;

export const PortSpecSchema = Type.Object(
  {
    protocol: Type.Optional(ProtocolSchema),
    target: Port,
    /** Omitted: auto-assigned from 30000-32767. */
    published: Type.Optional(Port),
    mode: Type.Optional(Type.Union([Type.Literal('ingress'), Type.Literal('host')])),
  },
  strict,
);
export type PortSpec = Static<typeof PortSpecSchema>;

/**
 * A service's attachment to a network: its name or id, or docker's long form with the
 * service's aliases on that network and its VIP there (`ipv4Address`, vip mode only;
 * allocated when absent).
 */
export const NetworkAttachmentSchema = Type.Union(
  [
    Type.String({ minLength: 1 }),
    Type.Object(
      {
        target: Type.String({ minLength: 1 }),
        aliases: Type.Optional(AliasesSchema),
        ipv4Address: Type.Optional(Type.String({ format: 'ipv4' })),
      },
      strict,
    ),
  ],
  { unionHint: 'must be a network name or id, or {target, aliases?, ipv4Address?}' },
);
export type NetworkAttachment = Static<typeof NetworkAttachmentSchema>;
const Attachments = Type.Array(NetworkAttachmentSchema, { maxItems: 16 });
const Ports = Type.Array(PortSpecSchema, { maxItems: 64 });

export const ServiceSpecSchema = Type.Object(
  {
    name: NameSchema,
    endpointMode: Type.Optional(EndpointModeSchema),
    ports: Type.Optional(Ports),
    networks: Type.Optional(Attachments),
    lb: Type.Optional(SchedulerSchema),
    proxyProtocol: Type.Optional(ProxyProtocolSchema),
    healthCheck: Type.Optional(HealthCheckSchema),
    labels: Type.Optional(Labels),
  },
  strict,
);
export type ServiceSpec = Static<typeof ServiceSpecSchema>;

export const ServiceUpdateSchema = Type.Object(
  {
    endpointMode: Type.Optional(EndpointModeSchema),
    lb: Type.Optional(SchedulerSchema),
    proxyProtocol: Type.Optional(ProxyProtocolSchema),
    /** null removes the health check. */
    healthCheck: Type.Optional(Type.Union([HealthCheckSchema, Type.Null()])),
    /**
     * The whole list (what stack deploy sends): a port equal to a current one keeps its
     * claim and listener; one without `published` keeps the auto-assigned port of its
     * target. Not with portsAdd/portsRm.
     */
    ports: Type.Optional(Ports),
    portsAdd: Type.Optional(Ports),
    /** Removes ports by target port, as `docker service update --publish-rm`. */
    portsRm: Type.Optional(Type.Array(Type.Object({ target: Port, protocol: Type.Optional(ProtocolSchema) }, strict))),
    /** The whole list: a network kept keeps its VIP (unless another ipv4Address is asked); aliases are replaced. Not with networksAdd/networksRm. */
    networks: Type.Optional(Attachments),
    /** In the long form, an already attached network gets the aliases (and ipv4Address) given here; a plain name for it changes nothing. */
    networksAdd: Type.Optional(Attachments),
    networksRm: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
    /** The whole set. Not with labelsAdd/labelsRm. */
    labels: Type.Optional(Labels),
    labelsAdd: Type.Optional(Labels),
    labelsRm: Type.Optional(Type.Array(Type.String())),
  },
  strict,
);
export type ServiceUpdate = Static<typeof ServiceUpdateSchema>;

/** A whole list replaces; add/rm edit: both at once would leave the outcome to the order of application. */
function serviceUpdateRule(u: ServiceUpdate): [string, string] | undefined {
  const pairs: Array<[keyof ServiceUpdate, keyof ServiceUpdate, keyof ServiceUpdate]> = [
    ['ports', 'portsAdd', 'portsRm'],
    ['networks', 'networksAdd', 'networksRm'],
    ['labels', 'labelsAdd', 'labelsRm'],
  ];
  for (const [whole, add, rm] of pairs) {
    const edit = u[add] !== undefined ? add : u[rm] !== undefined ? rm : undefined;
    if (u[whole] !== undefined && edit) return [whole, `give ${whole} (the whole list) or ${add}/${rm}, not both (${edit} given too)`];
  }
  return undefined;
}

export const TaskSpecSchema = Type.Object(
  {
    service: Type.String({ minLength: 1 }),
    name: Type.Optional(Type.String({ pattern: '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$' })),
    /** `IP` or `IP:PORT` of an endpoint reachable from the node. */
    addr: Type.Optional(Type.String({ format: 'endpoint' })),
    network: Type.Optional(Type.String({ minLength: 1 })),
    ip: Type.Optional(Type.String({ format: 'ipv4' })),
    node: Type.Optional(Type.String({ minLength: 1 })),
    weight: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
    /** Attach this network namespace (a container) to `network` on the receiving agent's node. */
    netns: Type.Optional(NetnsPath),
    /** DNS names of this task on `network` (several tasks may share one: all their IPs answer). */
    aliases: Type.Optional(AliasesSchema),
    /**
     * With `netns`: the CNI attachment (container id, interface name in the namespace) this
     * task is. The interface gets that name; one task per pair on a node (adding it again
     * returns the task already there).
     */
    container: Type.Optional(ContainerRefSchema),
  },
  strict,
);
export type TaskSpec = Static<typeof TaskSpecSchema>;

export const NetworkSpecSchema = Type.Object(
  {
    name: NameSchema,
    driver: Type.Optional(Type.Literal('overlay')),
    subnet: Type.Optional(Type.String({ format: 'cidr4' })),
    /** ESP between nodes (`network create --opt encrypted`). */
    encrypted: Type.Optional(Type.Boolean()),
    /** Only with `encrypted: true`; default aes-128-gcm. */
    cipher: Type.Optional(CipherSchema),
    attachable: Type.Optional(Type.Boolean()),
    labels: Type.Optional(Labels),
  },
  strict,
);
export type NetworkSpec = Static<typeof NetworkSpecSchema>;

/** A cipher means nothing on a clear network: say so rather than store a network that is not what was asked. */
function networkSpecRule(s: NetworkSpec): [string, string] | undefined {
  if (s.cipher !== undefined && s.encrypted !== true) return ['cipher', 'is only for encrypted networks (encrypted: true)'];
  return undefined;
}

export const NodeUpdateSchema = Type.Object(
  { availability: Type.Optional(AvailabilitySchema), labels: Type.Optional(Labels) },
  strict,
);
export type NodeUpdate = Static<typeof NodeUpdateSchema>;

export const validateSpec = {
  service: validator(ServiceSpecSchema),
  serviceUpdate: refine(validator(ServiceUpdateSchema), serviceUpdateRule),
  task: validator(TaskSpecSchema),
  network: refine(validator(NetworkSpecSchema), networkSpecRule),
  nodeUpdate: validator(NodeUpdateSchema),
};
