/**
 * The agent's listeners: the API on a unix socket (as dockerd's), and an optional
 * plain-HTTP endpoint that serves Prometheus metrics and nothing else.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { SwarmnetError } from '../util/errors.js';

/** rw for owner and group: root and members of the API group, nobody else (as docker.sock). */
const SOCKET_MODE = 0o660;

export class ListenError extends SwarmnetError {
  override readonly code = 'ELISTEN';
}

/** The gid of `name` in /etc/group, if there is such a group. */
function groupId(name: string): number | undefined {
  try {
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const [n, , gid] = line.split(':');
      if (n === name && gid !== undefined) return Number(gid);
    }
  } catch {
    // no /etc/group: no such group
  }
  return undefined;
}

/** Is an agent answering on this socket already? (A stale file from a crash is replaced.) */
function inUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function listenSocket(path: string, group: string, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true });
  if (existsSync(path)) {
    if (!lstatSync(path).isSocket()) throw new ListenError(`${path} exists and is not a socket`);
    if (await inUse(path)) throw new ListenError(`another agent is listening on ${path}`);
    unlinkSync(path);
  }
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // The socket is created with the process umask; narrow it before anyone can connect.
    // (the bind happens inside listen() for a path, so the umask is put back right after).
    const old = process.umask(0o117);
    try {
      server.listen(path, () => resolve());
    } finally {
      process.umask(old);
    }
  });
  chmodSync(path, SOCKET_MODE);
  const gid = groupId(group);
  if (gid !== undefined && process.getuid?.() === 0) chownSync(path, 0, gid);
  return server;
}

export async function listenMetrics(at: { host: string; port: number }, metrics: () => Promise<string>): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || !req.url?.startsWith('/metrics')) {
      res.writeHead(404).end();
      return;
    }
    metrics().then(
      (text) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(text),
      (err: Error) => res.writeHead(500).end(err.message),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => resolve());
  });
  return server;
}

/** Closes a listener (HTTP or HTTPS) and the connections it holds. */
export async function closeServer(server: Pick<Server, 'close' | 'closeAllConnections'> | undefined): Promise<void> {
  if (!server) return;
  await new Promise<void>((r) => {
    server.close(() => r());
    server.closeAllConnections();
  });
}
