/** Real clients for integration tests. */
import { createSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import DgramAsPromised, { TimeoutError } from 'dgram-as-promised';

export interface ReqOpts {
  localAddress?: string;
  timeoutMs?: number;
}

/** Opens a TCP connection, sends `line\n`, resolves with the first reply line. */
export function tcpRequest(host: string, port: number, line = 'hello', o: ReqOpts = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, ...(o.localAddress && { localAddress: o.localAddress }) });
    let buf = '';
    const timer = setTimeout(() => s.destroy(new Error('timeout')), o.timeoutMs ?? 5000);
    s.on('connect', () => s.write(line + '\n'));
    s.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        s.end();
        resolve(buf.slice(0, nl));
      }
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('close', () => {
      clearTimeout(timer);
      if (!buf.includes('\n')) reject(new Error(`closed without reply (${buf})`));
    });
  });
}

/** A TCP connection kept open; `ask` sends a line and awaits one reply line. */
export async function openConn(host: string, port: number): Promise<{ sock: Socket; ask(line: string): Promise<string>; close(): void }> {
  const sock = connect({ host, port });
  await new Promise<void>((res, rej) => {
    sock.once('connect', res);
    sock.once('error', rej);
  });
  let buf = '';
  const waiters: Array<(l: string) => void> = [];
  sock.on('data', (d) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      waiters.shift()?.(l);
    }
  });
  sock.on('error', () => undefined);
  return {
    sock,
    ask: (line) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no reply')), 5000);
        waiters.push((l) => {
          clearTimeout(timer);
          resolve(l);
        });
        sock.write(line + '\n');
      }),
    close: () => sock.destroy(),
  };
}

/** Sends one datagram from a fresh socket, resolves with the reply. */
export async function udpRequest(host: string, port: number, payload: string, timeoutMs = 3000): Promise<string> {
  const s = DgramAsPromised.createSocket('udp4').setTimeout(timeoutMs);
  try {
    // Listening before sending: a reply on loopback can come back before send() resolves.
    const pending = s.recv();
    await s.send(payload, port, host);
    const reply = await pending.catch((err: Error) => {
      throw err instanceof TimeoutError ? new Error('udp timeout') : err;
    });
    if (!reply) throw new Error('udp socket closed before a reply');
    return reply.msg.toString();
  } finally {
    await s.close();
  }
}

/** A UDP client socket kept open (one flow through the mesh); `ask` sends and awaits the next datagram back. */
export async function openUdp(host: string, port: number): Promise<{ port: number; ask(payload: string | Buffer, timeoutMs?: number): Promise<Buffer>; close(): void }> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  const waiters: Array<(m: Buffer) => void> = [];
  s.on('message', (m) => waiters.shift()?.(m));
  return {
    port: s.address().port,
    ask: (payload, timeoutMs = 3000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(got), 1);
          reject(new Error(`udp: no reply from ${host}:${port} within ${timeoutMs} ms`));
        }, timeoutMs);
        const got = (m: Buffer) => {
          clearTimeout(timer);
          resolve(m);
        };
        waiters.push(got);
        s.send(payload, port, host);
      }),
    close: () => s.close(),
  };
}

export function countBy<T>(items: T[]): Map<T, number> {
  const m = new Map<T, number>();
  for (const i of items) m.set(i, (m.get(i) ?? 0) + 1);
  return m;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `fn` until it holds, every `everyMs`; throws naming `what` (and `detail()`) after `ms`.
 * For cluster convergence, which is asynchronous by design.
 */
export async function until(what: string, fn: () => Promise<boolean>, ms: number, detail: () => Promise<string> = async () => '', everyMs = 150): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what} ${await detail()}`.trim());
}
