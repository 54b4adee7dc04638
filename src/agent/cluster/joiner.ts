/**
 * The joining node's side of `swarmnet join --token T MANAGER:PORT` (as swarmkit's
 * node/ca join): the token's CA digest pins the cluster before any secret is sent.
 *
 *   1. fetch the CA certificate from the manager over TLS, unverified: nothing secret
 *      is sent, and what comes back is checked against the digest in the token;
 *   2. a digest mismatch ends here: that manager belongs to another cluster;
 *   3. over TLS verified against that CA (the manager proves a certificate of it for
 *      the address dialled), send the token's secret and a CSR; receive a certificate.
 */
import type { RequestOptions } from 'node:https';
import type { AdmitRequest, AdmitResult } from '../../api/index.js';
import { caMatchesDigest, parseToken } from '../../trust/index.js';
import { AuthError, ConflictError, SwarmnetError, ValidationError } from '../../util/errors.js';
import { httpsJson, identityCheck } from './peer.js';

/** A join that could not reach a manager or was refused by it. */
export class JoinError extends SwarmnetError {
  override readonly code = 'EJOIN';
}

/** A manager admits within seconds; more while its JetStream elects leaders (a manager just joined). */
const TIMEOUT_MS = 30_000;

const call = (o: RequestOptions & { body?: unknown }) => httpsJson({ ...o, timeoutMs: TIMEOUT_MS });

function remoteOf(text: string): { host: string; port: number } {
  const m = /^([^\s:/]+):(\d{1,5})$/.exec(text);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new ValidationError('remote', `'${text}' is not MANAGER:PORT`);
  return { host: m[1]!, port: Number(m[2]) };
}

/** Steps 1-2: the cluster CA, pinned by the token. */
export async function fetchPinnedCa(token: string, remoteText: string): Promise<{ caCert: string; secret: string; remote: { host: string; port: number } }> {
  const t = parseToken(token);
  const remote = remoteOf(remoteText);
  let res;
  try {
    res = await call({ ...remote, method: 'GET', path: '/v1/swarm/ca', rejectUnauthorized: false });
  } catch (err) {
    throw new JoinError(`no manager answers at ${remoteText} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); nothing was sent`, { cause: err });
  }
  if (res.status !== 200) throw new JoinError(`${remoteText} is not a swarmnet manager (HTTP ${res.status} for the CA); nothing was sent`);
  const caCert = (JSON.parse(res.body) as { cert?: string }).cert ?? '';
  if (!caMatchesDigest(caCert, t.caDigest)) throw new AuthError(`the manager at ${remoteText} belongs to another cluster (its CA does not match the token's digest); the token's secret was not sent`);
  return { caCert, secret: t.secret, remote };
}

/** Step 3: the secret and CSR, over TLS verified against the pinned CA. */
export async function requestAdmission(remote: { host: string; port: number }, caCert: string, req: AdmitRequest): Promise<AdmitResult> {
  let res;
  try {
    // Only a manager's certificate (which only CA-key holders can make) gets the secret.
    res = await call({ ...remote, method: 'POST', path: '/v1/swarm/admit', ca: caCert, rejectUnauthorized: true, checkServerIdentity: identityCheck({ manager: true }), body: req });
  } catch (err) {
    throw new JoinError(`cannot reach the manager at ${remote.host}:${remote.port} over TLS pinned to the cluster CA (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
  let reply: { error?: { code?: string; message?: string } } & Partial<AdmitResult>;
  try {
    reply = JSON.parse(res.body) as typeof reply;
  } catch {
    throw new JoinError(`${remote.host}:${remote.port} answered the join with something that is not JSON (HTTP ${res.status})`);
  }
  if (res.status !== 201 && res.status !== 200) {
    // The manager's own reason, kept as the same kind of error (a wrong token is EAUTH, a taken id ECONFLICT).
    const message = `the manager refused the join: ${reply.error?.message ?? `HTTP ${res.status}`}`;
    if (reply.error?.code === 'EAUTH') throw new AuthError(message);
    if (reply.error?.code === 'ECONFLICT') throw new ConflictError(message);
    throw new JoinError(message);
  }
  return reply as AdmitResult;
}
