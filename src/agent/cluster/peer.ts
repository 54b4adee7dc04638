/** Node-to-node calls over the cluster API, with this node's certificate (mutual TLS). */
import { request } from 'node:https';
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

export function callNode(api: string, tls: TlsMaterial, method: string, path: string, body: unknown, expect: Expect): Promise<unknown> {
  const i = api.lastIndexOf(':');
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: api.slice(0, i), port: Number(api.slice(i + 1)), method, path, ...tls, checkServerIdentity: identityCheck(expect), timeout: TIMEOUT_MS, headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = text;
          }
          if ((res.statusCode ?? 0) >= 300) return reject(new PeerError(`${api}: ${(parsed as { error?: { message?: string } })?.error?.message ?? `HTTP ${res.statusCode}`}`));
          resolve(parsed);
        });
      },
    );
    req.on('timeout', () => req.destroy(new PeerError(`${api}: timed out`)));
    req.on('error', (err) => reject(err instanceof PeerError ? err : new PeerError(`${api}: ${(err as NodeJS.ErrnoException).code ?? err.message}`, { cause: err })));
    req.end(payload);
  });
}
