/**
 * How a client reaches an agent: HTTP over the agent's unix socket (the default,
 * guarded by file permissions), or HTTPS with a client certificate of the cluster CA
 * over TCP (`tcp://HOST:PORT`). There is no plain-TCP API.
 */
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiError } from '../util/errors.js';

export type Endpoint = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** TLS material of a client: the cluster CA and a node certificate (PEM). */
export interface ClientTls {
  ca: string;
  cert: string;
  key: string;
}

/** `unix:///run/swarmnet.sock`, `/path.sock`, `tcp://10.0.0.1:2377` or `10.0.0.1:2377`. */
export function parseEndpoint(text: string): Endpoint {
  if (text.startsWith('unix://')) return { kind: 'unix', path: text.slice('unix://'.length) };
  if (text.startsWith('/')) return { kind: 'unix', path: text };
  const m = /^(?:tcp:\/\/)?([^\s:/]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(text);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new ApiError(`--host: '${text}' is not unix://PATH or tcp://HOST:PORT`, 'EUSAGE', 0);
  return { kind: 'tcp', host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

export function formatEndpoint(e: Endpoint): string {
  return e.kind === 'unix' ? `unix://${e.path}` : `tcp://${e.host}:${e.port}`;
}

/**
 * Reads `ca.pem` and a certificate from a directory (a node's trust dir): a manager's
 * `manager.pem` + `manager-key.pem` when there (manager calls need that identity), else
 * `node.pem` + `node-key.pem`.
 */
export function loadClientTls(dir: string): ClientTls {
  try {
    const who = existsSync(join(dir, 'manager.pem')) && existsSync(join(dir, 'manager-key.pem')) ? 'manager' : 'node';
    return { ca: readFileSync(join(dir, 'ca.pem'), 'utf8'), cert: readFileSync(join(dir, `${who}.pem`), 'utf8'), key: readFileSync(join(dir, `${who}-key.pem`), 'utf8') };
  } catch (err) {
    throw new ApiError(`a TCP API needs the cluster's certificates: cannot read them in ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); set --cert-dir or SWARMNET_CERT_DIR`, 'ETLS', 0);
  }
}

export interface Reply {
  status: number;
  type: string;
  body: string;
}

/** A long-lived GET whose reply is read line by line (NDJSON). */
export interface LineStream {
  /** Settles when the agent ends the reply (resolves) or the connection fails (rejects). */
  done: Promise<void>;
  close(): void;
}

/** What a client sends over; one call per request. */
export interface Transport {
  readonly target: string;
  send(method: string, path: string, body?: unknown): Promise<Reply>;
  /** GET `path` and hand every line of a 2xx reply to `onLine`; a non-2xx reply rejects `done` with its body as a Reply. */
  stream(path: string, onLine: (line: string) => void): LineStream;
}

const TIMEOUT_MS = 120_000;

export function transport(endpoint: Endpoint, tls?: ClientTls): Transport {
  const target = formatEndpoint(endpoint);
  const base: RequestOptions =
    endpoint.kind === 'unix'
      ? { socketPath: endpoint.path }
      : { host: endpoint.host, port: endpoint.port, ...(tls && { ca: tls.ca, cert: tls.cert, key: tls.key }) };
  const request = endpoint.kind === 'unix' ? httpRequest : httpsRequest;
  return {
    target,
    send: (method, path, body) =>
      new Promise<Reply>((resolve, reject) => {
        const payload = body === undefined ? undefined : JSON.stringify(body);
        const req = request({ ...base, method, path, timeout: TIMEOUT_MS, headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error('timed out')));
        req.on('error', (err: NodeJS.ErrnoException) => reject(unreachable(target, err)));
        req.end(payload);
      }),
    stream: (path, onLine) => {
      let req: ReturnType<typeof request> | undefined;
      let closed = false;
      const done = new Promise<void>((resolve, reject) => {
        req = request({ ...base, method: 'GET', path }, (res: IncomingMessage) => {
          const ok = (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300;
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            buf += c;
            if (!ok) return;
            let nl: number;
            while ((nl = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, nl);
              buf = buf.slice(nl + 1);
              if (line) onLine(line);
            }
          });
          res.on('end', () => (ok ? resolve() : reject(Object.assign(new Error('stream refused'), { reply: { status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: buf } }))));
          res.on('error', (err) => (closed ? resolve() : reject(err)));
        });
        req.on('error', (err: NodeJS.ErrnoException) => (closed ? resolve() : reject(unreachable(target, err))));
        req.end();
      });
      return {
        done,
        close: () => {
          closed = true;
          req?.destroy();
        },
      };
    },
  };
}

function unreachable(target: string, err: NodeJS.ErrnoException): ApiError {
  const why = err.code ?? err.message;
  if (err.code === 'EACCES') return new ApiError(`permission denied on the agent socket ${target} (root or the 'swarmnet' group may use it)`, 'EACCES', 0);
  return new ApiError(`cannot reach the agent at ${target} (${why}); is 'swarmnet agent' running?`, 'EUNREACHABLE', 0);
}
