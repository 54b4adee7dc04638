/** Node-to-node calls over the cluster API, with this node's certificate (mutual TLS). */
import { request } from 'node:https';
import { SwarmnetError } from '../../util/errors.js';
import type { TlsMaterial } from './server.js';

export class PeerError extends SwarmnetError {
  override readonly code = 'EPEER';
}

const TIMEOUT_MS = 10_000;

export function callNode(api: string, tls: TlsMaterial, method: string, path: string, body?: unknown): Promise<unknown> {
  const i = api.lastIndexOf(':');
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: api.slice(0, i), port: Number(api.slice(i + 1)), method, path, ...tls, timeout: TIMEOUT_MS, headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
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
