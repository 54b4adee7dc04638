/**
 * Request schemas of the agent API. The object specs (services, tasks, networks,
 * nodes) are the control plane's (`control/spec.ts`); the cluster calls are here.
 * Unknown fields are refused so that a typo is an error, not an ignored option.
 */
import { Type, type Static } from '@sinclair/typebox';
import { validator } from '../control/schema.js';

export { validateSpec, type NetworkSpec, type NodeUpdate, type PortSpec, type ServiceSpec, type ServiceUpdate, type TaskSpec } from '../control/spec.js';

const strict = { additionalProperties: false } as const;
const Ip = Type.String({ format: 'ipv4' });
/** `IP:PORT` (the cluster API of a node). */
const HostPort = Type.String({ pattern: '^[^\\s:/]+:\\d{1,5}$', patternHint: 'is not HOST:PORT' });
const Port = Type.Integer({ minimum: 1, maximum: 65535 });
const Role = Type.Union([Type.Literal('manager'), Type.Literal('worker')]);
/** Certificate lifetime: a minute at least (renewal needs room; short lives are for tests), ten years at most. */
const Expiry = Type.Integer({ minimum: 60_000, maximum: 10 * 365 * 86_400_000 });

/** `swarmnet init` (local socket only). */
export const InitRequestSchema = Type.Object(
  {
    advertiseAddr: Type.Optional(Ip),
    listenAddr: Type.Optional(HostPort),
    certExpiryMs: Type.Optional(Expiry),
    natsPort: Type.Optional(Port),
    natsClusterPort: Type.Optional(Port),
  },
  strict,
);
export type InitRequest = Static<typeof InitRequestSchema>;

/** `swarmnet join --token T MANAGER:PORT` (local socket only). */
export const JoinRequestSchema = Type.Object(
  {
    token: Type.String({ minLength: 1, maxLength: 256 }),
    remote: HostPort,
    advertiseAddr: Type.Optional(Ip),
    listenAddr: Type.Optional(HostPort),
    natsPort: Type.Optional(Port),
    natsClusterPort: Type.Optional(Port),
  },
  strict,
);
export type JoinRequest = Static<typeof JoinRequestSchema>;

export const LeaveRequestSchema = Type.Object({ force: Type.Optional(Type.Boolean()) }, strict);
export type LeaveRequest = Static<typeof LeaveRequestSchema>;

export const NodeRemoveSchema = Type.Object({ force: Type.Optional(Type.Boolean()) }, strict);

/**
 * Node to manager, over TLS pinned to the cluster CA: the secret of a join token and
 * a certificate request. The manager answers with a certificate (and, for a manager
 * token, the CA key), see `AdmitResult`.
 */
export const AdmitRequestSchema = Type.Object(
  {
    secret: Type.String({ minLength: 1, maxLength: 64 }),
    csr: Type.String({ minLength: 1, maxLength: 8192 }),
    nodeId: Type.String({ pattern: '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$' }),
    hostname: Type.String({ maxLength: 255 }),
    advertiseAddr: Ip,
    listenAddr: HostPort,
    natsPort: Port,
    natsClusterPort: Port,
  },
  strict,
);
export type AdmitRequest = Static<typeof AdmitRequestSchema>;

export interface AdmitResult {
  clusterId: string;
  role: Static<typeof Role>;
  caCert: string;
  cert: string;
  /** Managers only: the CA key, so that every manager can sign (as Swarm's managers do). */
  caKey?: string;
  /** NATS client URLs of the managers, `tls://IP:PORT`. */
  nats: string[];
  /** nats-server cluster routes of the managers, `IP:PORT`. */
  routes: string[];
  /** Cluster API addresses of the managers. */
  managers: string[];
  certExpiryMs: number;
}

/** Node to manager over mutual TLS: a new certificate for the same node before the old expires. */
export const RenewRequestSchema = Type.Object({ csr: Type.String({ minLength: 1, maxLength: 8192 }) }, strict);

export const validateApi = {
  init: validator(InitRequestSchema),
  join: validator(JoinRequestSchema),
  leave: validator(LeaveRequestSchema),
  nodeRemove: validator(NodeRemoveSchema),
  admit: validator(AdmitRequestSchema),
  renew: validator(RenewRequestSchema),
};
