/**
 * What users send (API/CLI input), as opposed to what is stored (schema.ts).
 * Unknown fields are rejected so a typo is an error, not a silently ignored option.
 */
import { Type, type Static } from '@sinclair/typebox';
import { CipherSchema, EndpointModeSchema, HealthCheckSchema, NameSchema, ProtocolSchema, ProxyProtocolSchema, SchedulerSchema, AvailabilitySchema, NetnsPath, refine, validator } from './schema.js';

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

export const ServiceSpecSchema = Type.Object(
  {
    name: NameSchema,
    endpointMode: Type.Optional(EndpointModeSchema),
    ports: Type.Optional(Type.Array(PortSpecSchema, { maxItems: 64 })),
    /** Network names or ids. */
    networks: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { maxItems: 16 })),
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
    portsAdd: Type.Optional(Type.Array(PortSpecSchema, { maxItems: 64 })),
    /** Removes ports by target port, as `docker service update --publish-rm`. */
    portsRm: Type.Optional(Type.Array(Type.Object({ target: Port, protocol: Type.Optional(ProtocolSchema) }, strict))),
    networksAdd: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
    networksRm: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
    labelsAdd: Type.Optional(Labels),
    labelsRm: Type.Optional(Type.Array(Type.String())),
  },
  strict,
);
export type ServiceUpdate = Static<typeof ServiceUpdateSchema>;

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
  serviceUpdate: validator(ServiceUpdateSchema),
  task: validator(TaskSpecSchema),
  network: refine(validator(NetworkSpecSchema), networkSpecRule),
  nodeUpdate: validator(NodeUpdateSchema),
};
