/**
 * Where an agent listens and keeps its state by default, in one place for the agent
 * and its clients: a root agent uses system paths (as dockerd's /run/docker.sock),
 * anyone else their own.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

const isRoot = () => process.getuid?.() === 0;

/** `--data-dir` default (env SWARMNET_DATA_DIR). */
export function defaultDataDir(): string {
  if (process.env.SWARMNET_DATA_DIR) return process.env.SWARMNET_DATA_DIR;
  return isRoot() ? '/var/lib/swarmnet' : join(homedir(), '.local', 'share', 'swarmnet');
}

/** The agent's API socket: /run/swarmnet.sock for root, else in $XDG_RUNTIME_DIR or the data dir. */
export function defaultSocket(): string {
  if (isRoot()) return '/run/swarmnet.sock';
  return join(process.env.XDG_RUNTIME_DIR ?? defaultDataDir(), 'swarmnet.sock');
}

/** The cluster API port (Docker Swarm's management port). */
export const CLUSTER_API_PORT = 2377;
/** nats-server's client and route ports on managers (NATS defaults). */
export const NATS_CLIENT_PORT = 4222;
export const NATS_CLUSTER_PORT = 6222;
/** Group whose members may use the API socket (as Docker's `docker` group). */
export const API_GROUP = 'swarmnet';
