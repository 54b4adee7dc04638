/**
 * The cluster API: HTTPS on the node's listen address, mutual TLS with the cluster
 * CA. A client must present a certificate of the CA whose node is in the cluster
 * (not removed); only the two calls a joining node makes before it has one (the CA
 * certificate, and admission with a token) are answered without.
 */
import { createServer, type Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { IncomingMessage } from 'node:http';

export interface TlsMaterial {
  ca: string;
  cert: string;
  key: string;
}

/** The authenticated node id of a request, if its client certificate verified against the CA. */
export function peerNode(req: IncomingMessage): string | undefined {
  const socket = req.socket as TLSSocket;
  if (!socket.encrypted || !socket.authorized) return undefined;
  const cn = socket.getPeerCertificate().subject?.CN;
  return typeof cn === 'string' ? cn : undefined;
}

export function createClusterServer(tls: TlsMaterial, handler: (req: IncomingMessage, res: import('node:http').ServerResponse) => void): Server {
  // requestCert without rejectUnauthorized: the joining node has no certificate yet;
  // every route but the join calls checks peerNode() (see Agent #authorize).
  return createServer({ ...tls, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, handler);
}
