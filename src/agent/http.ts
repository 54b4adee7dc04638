/** Minimal JSON-over-HTTP plumbing for the agent API: routing, bodies, error mapping. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SwarmnetError, ValidationError } from '../util/errors.js';

/**
 * Who is asking: a user of the local socket (file permissions let them in), a cluster
 * node that proved a certificate of the CA, or nobody yet (TLS without a certificate).
 */
export type Caller = { kind: 'local' } | { kind: 'node'; nodeId: string; manager: boolean } | { kind: 'anonymous' };

/**
 * Which callers a route serves: `member` is the default (local socket or a cluster node);
 * `manager`: the local socket or a manager proving its manager identity (a certificate
 * only CA-key holders can make, see trust `identityName`).
 */
export type Access = 'local' | 'manager' | 'member' | 'public';

export interface Request {
  caller: Caller;
  params: string[];
  query: URLSearchParams;
  body: unknown;
}

export type Handler = (req: Request) => Promise<unknown>;

/** A handler's result that writes its own response: a long-lived stream (`GET /v1/events`). */
export class Streamed {
  constructor(readonly start: (res: ServerResponse, req: IncomingMessage) => void) {}
}

export interface Route {
  method: string;
  pattern: RegExp;
  handler: Handler;
  access: Access;
}

/** Error code -> HTTP status; callers (the CLI) branch on the code in the body. */
const STATUS: Record<string, number> = { EINVALID: 400, EAUTH: 403, ENOTFOUND: 404, ECONFLICT: 409, EREVISION: 409, EEXHAUSTED: 409, EJOIN: 502, EMODE: 503 };
const MAX_BODY = 1 << 20;

export function route(method: string, path: string, handler: Handler, access: Access = 'member'): Route {
  const pattern = new RegExp('^' + path.replace(/:[a-z]+/g, '([^/]+)') + '$');
  return { method, pattern, handler, access };
}

function allows(access: Access, caller: Caller): boolean {
  if (access === 'public') return true;
  if (access === 'local') return caller.kind === 'local';
  if (access === 'manager') return caller.kind === 'local' || (caller.kind === 'node' && caller.manager);
  return caller.kind !== 'anonymous';
}

export async function dispatch(routes: Route[], req: IncomingMessage, res: ServerResponse, caller: Caller): Promise<void> {
  try {
    const url = new URL(req.url ?? '/', 'http://agent');
    let allowed = false;
    for (const r of routes) {
      const m = r.pattern.exec(url.pathname);
      if (!m) continue;
      allowed = true;
      if (r.method !== req.method) continue;
      if (!allows(r.access, caller)) {
        const message = { local: 'only on the local socket of the node', manager: "a manager's certificate is required", member: 'a client certificate of this cluster is required', public: '' }[r.access];
        return send(res, 403, JSON.stringify({ error: { code: 'EAUTH', message } }), 'application/json');
      }
      const body = req.method === 'POST' || req.method === 'PATCH' ? await readJson(req) : undefined;
      const result = await r.handler({ caller, params: m.slice(1).map(decodeURIComponent), query: url.searchParams, body });
      if (result instanceof Streamed) return result.start(res, req);
      if (typeof result === 'string') return send(res, 200, result, 'text/plain; version=0.0.4; charset=utf-8');
      return send(res, req.method === 'POST' ? 201 : 200, JSON.stringify(result ?? {}), 'application/json');
    }
    const err = allowed ? { code: 'EMETHOD', message: `${req.method} not allowed on ${url.pathname}` } : { code: 'ENOTFOUND', message: `no such endpoint ${url.pathname}` };
    send(res, allowed ? 405 : 404, JSON.stringify({ error: err }), 'application/json');
  } catch (err) {
    const e = err as SwarmnetError & { field?: string };
    const status = STATUS[e.code] ?? 500;
    const payload = { code: e.code ?? 'EINTERNAL', message: e.message, ...(e.field && { field: e.field }) };
    send(res, status, JSON.stringify({ error: payload }), 'application/json');
  }
}

function send(res: ServerResponse, status: number, body: string, type: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new ValidationError('body', `larger than ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new ValidationError('body', 'not valid JSON');
  }
}
