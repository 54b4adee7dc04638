/**
 * What a node remembers of the cluster it belongs to (`<data-dir>/cluster.json`, 0600):
 * enough to start again after a restart without the join token. Its certificates
 * live beside it in `<data-dir>/trust/` (see src/trust).
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { validator } from '../../control/schema.js';
import { writeAtomic } from '../../trust/index.js';

const Port = Type.Integer({ minimum: 1, maximum: 65535 });

export const ClusterStateSchema = Type.Object({
  clusterId: Type.String({ minLength: 1 }),
  role: Type.Union([Type.Literal('manager'), Type.Literal('worker')]),
  advertiseAddr: Type.String({ format: 'ipv4' }),
  /** Cluster API (mutual TLS), `IP:PORT` to bind. */
  listenAddr: Type.String({ minLength: 3 }),
  natsPort: Port,
  natsClusterPort: Port,
  /** NATS client URLs of the managers known at the last change (`tls://IP:PORT`). */
  nats: Type.Array(Type.String()),
  /** nats-server routes of the other managers (`IP:PORT`). */
  routes: Type.Array(Type.String()),
  /** Cluster API addresses of the managers. */
  managers: Type.Array(Type.String()),
  /** Managers: the node ids their nats-server admits, as last synced (so a restart starts with them). */
  users: Type.Optional(Type.Array(Type.String())),
});
export type ClusterState = Static<typeof ClusterStateSchema>;

const check = validator(ClusterStateSchema);
const file = (dataDir: string) => join(dataDir, 'cluster.json');

export function readClusterState(dataDir: string): ClusterState | undefined {
  if (!existsSync(file(dataDir))) return undefined;
  return check.assert(JSON.parse(readFileSync(file(dataDir), 'utf8')), 'cluster.json');
}

export async function writeClusterState(dataDir: string, s: ClusterState): Promise<void> {
  await writeAtomic(file(dataDir), JSON.stringify(s, null, 2) + '\n', 0o600);
}

export function removeClusterState(dataDir: string): void {
  rmSync(file(dataDir), { force: true });
}
