/** Node-to-node calls over the cluster API, with this node's certificate (mutual TLS). */
import { request, type RequestOptions } from 'node:https';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { parseIdentity } from '../../trust/index.js';
import { SwarmnetError } from '../../util/errors.js';
import type { TlsMaterial } from './server.js';

export class PeerError extends SwarmnetError {
  override readonly code = 'EPEER';
}

const TIMEOUT_MS = 10_000;

/** Who must answer: a certificate of that node (either identity), or a manager's. */
export interface Expect {
  nodeId?: string;
  manager?: boolean;
}

/**
 * Server check beyond the chain: the address dialled in the certificate's IP SANs (as
 * Node does), and the identity expected, so that no other member can stand in.
 */
export function identityCheck(expect: Expect): (host: string, cert: PeerCertificate) => Error | undefined {
  return (host, cert) => {
    const err = checkServerIdentity(host, cert);
    if (err) return err;
    const who = parseIdentity(String(cert.subject?.CN ?? ''));
    if (expect.manager && who.identity !== 'manager') return new Error(`${host} answered with a certificate that is not a manager's`);
    if (expect.nodeId !== undefined && who.nodeId !== expect.nodeId) return new Error(`${host} answered as node ${who.nodeId}, not ${expect.nodeId}`);
    return undefined;
  };
}

/** One JSON request over HTTPS: the status and the body as text (the caller reads it). */
export function httpsJson(o: RequestOptions & { body?: unknown; timeoutMs: number }): Promise<{ status: number; body: string }> {
  const { body, timeoutMs, ...options } = o;
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request({ ...options, timeout: timeoutMs, headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(payload);
  });
}

/** `IP:PORT` (a stored, already validated cluster address) -> host and port. */
export function splitHostPort(text: string): { host: string; port: number } {
  const i = text.lastIndexOf(':');
  return { host: text.slice(0, i), port: Number(text.slice(i + 1)) };
}

export async function callNode(api: string, tls: TlsMaterial, method: string, path: string, body: unknown, expect: Expect): Promise<unknown> {
  let res;
  try {
    res = await httpsJson({ ...splitHostPort(api), method, path, ...tls, checkServerIdentity: identityCheck(expect), body, timeoutMs: TIMEOUT_MS });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new PeerError(`${api}: ${code === 'ETIMEDOUT' ? 'timed out' : (code ?? (err as Error).message)}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.body);
  } catch {
    parsed = res.body;
  }
  if (res.status >= 300) throw new PeerError(`${api}: ${(parsed as { error?: { message?: string } })?.error?.message ?? `HTTP ${res.status}`}`);
  return parsed;
}
