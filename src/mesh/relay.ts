/**
 * The native relay engine (native/src/relay.c) as seen from TypeScript: one engine
 * per process, run on this thread's event loop; listeners and relays addressed by id;
 * events dispatched synchronously to per-relay handlers.
 */
import { check, loadAddon, type Addon } from '../native/index.js';

export const RelayEvent = { ACCEPTED: 1, CONNECT_FAILED: 2, EMPTY: 3, DONE: 4 } as const;
export const RelayState = { PENDING: 1, CONNECTING: 2, RUNNING: 3 } as const;

/** A client the engine accepted; the handler decides where it goes. */
export interface Accepted {
  id: number;
  clientIp: string;
  clientPort: number;
  localIp: string;
  localPort: number;
}

export type RelayHandler = (type: number, err: number, bytesIn: number, bytesOut: number) => void;

/**
 * Called for each accepted client. It must `register` the relay's handler before it
 * calls `connect`: the engine runs on this thread and may report a failed connect
 * from inside `connect`.
 */
export type AcceptHandler = (a: Accepted, register: (h: RelayHandler) => void) => void;

export interface ConnectArgs {
  host: string;
  port: number;
  connectTimeoutMs: number;
  header: Buffer | undefined;
  replayLimit: number;
}

/** in_addr.s_addr as read on a little-endian host -> dotted quad. */
function ipOf(v: number): string {
  return `${v & 255}.${(v >>> 8) & 255}.${(v >>> 16) & 255}.${v >>> 24}`;
}

export class NativeRelay {
  readonly #addon: Addon;
  readonly #listeners = new Map<number, AcceptHandler>();
  readonly #handlers = new Map<number, RelayHandler>();
  #nextListener = 1;

  private constructor(addon: Addon) {
    this.#addon = addon;
    check(addon.relayInit((...args) => this.#dispatch(...args)), 'relayInit');
  }

  /**
   * The engine is per process (one thread, one epoll set in C), so there is one
   * NativeRelay per process; undefined when the addon could not be built or loaded.
   */
  static shared(): NativeRelay | undefined {
    if (sharedRelay === null) {
      const addon = loadAddon();
      sharedRelay = addon ? new NativeRelay(addon) : undefined;
    }
    return sharedRelay;
  }

  /** Listens on ip:port; `onAccept` takes each new client. */
  listen(ip: string, port: number, keepaliveS: number, onAccept: AcceptHandler): number {
    const lid = this.#nextListener++;
    check(this.#addon.relayListen(lid, ip, port, keepaliveS), 'listen');
    this.#listeners.set(lid, onAccept);
    return lid;
  }

  unlisten(lid: number): void {
    this.#listeners.delete(lid);
    this.#addon.relayUnlisten(lid);
  }

  connect(id: number, a: ConnectArgs): void {
    check(this.#addon.relayConnect(id, a.host, a.port, a.connectTimeoutMs, a.header, a.replayLimit), 'connect');
  }

  close(id: number, graceful: boolean): void {
    this.#addon.relayClose(id, graceful);
  }

  info(id: number): [bytesIn: number, bytesOut: number, idleMs: number, state: number] | undefined {
    return this.#addon.relayInfo(id);
  }

  #dispatch(id: number, type: number, err: number, bytesIn: number, bytesOut: number, a: number, b: number, c: number, d: number, e: number): void {
    if (type === RelayEvent.ACCEPTED) {
      const onAccept = this.#listeners.get(a);
      let registered = false;
      try {
        onAccept?.({ id, clientIp: ipOf(b), clientPort: c, localIp: ipOf(d), localPort: e }, (h) => {
          registered = true;
          this.#handlers.set(id, h);
        });
      } finally {
        if (!registered) this.#addon.relayClose(id, false); // listener gone meanwhile, or a bug: never leak the client
      }
      return;
    }
    const h = this.#handlers.get(id);
    if (!h) return;
    if (type === RelayEvent.DONE) this.#handlers.delete(id);
    h(type, err, bytesIn, bytesOut);
  }
}

// Process-wide by nature (see shared()); null = not loaded yet.
let sharedRelay: NativeRelay | undefined | null = null;
