/**
 * The native splice relay (native/src/relay.c) as seen from TypeScript: one engine
 * per process, relays addressed by id, events dispatched to per-relay handlers.
 */
import { check, loadAddon, type Addon } from '../native/index.js';

export const RelayEvent = { CONNECTED: 1, CONNECT_FAILED: 2, EMPTY: 3, DONE: 4 } as const;

export type RelayHandler = (type: number, err: number, bytesIn: number, bytesOut: number, replay?: Buffer) => void;

export interface RelayStart {
  fd: number;
  host: string;
  port: number;
  connectTimeoutMs: number;
  /** PROXY header and/or replay bytes sent to the task first. */
  prefix: Buffer | undefined;
  /** How many trailing bytes of prefix are client bytes to keep for a further replay. */
  replayHave: number;
  replayLimit: number;
}

export class NativeRelay {
  readonly #addon: Addon;
  readonly #handlers = new Map<number, RelayHandler>();
  #nextId = 1;

  private constructor(addon: Addon) {
    this.#addon = addon;
    check(addon.relayInit((id, type, err, bytesIn, bytesOut, replay) => this.#dispatch(id, type, err, bytesIn, bytesOut, replay)), 'relayInit');
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

  start(args: RelayStart, handler: RelayHandler): number {
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0xfffffff0 ? 1 : this.#nextId + 1;
    check(this.#addon.relayStart(id, args.fd, args.host, args.port, args.connectTimeoutMs, args.prefix, args.replayHave, args.replayLimit), 'relayStart');
    this.#handlers.set(id, handler);
    return id;
  }

  close(id: number, graceful: boolean): void {
    this.#addon.relayClose(id, graceful);
  }

  info(id: number): [bytesIn: number, bytesOut: number, idleMs: number] | undefined {
    return this.#addon.relayInfo(id);
  }

  #dispatch(id: number, type: number, err: number, bytesIn: number, bytesOut: number, replay?: Buffer): void {
    const h = this.#handlers.get(id);
    if (!h) return;
    if (type !== RelayEvent.CONNECTED) this.#handlers.delete(id);
    h(type, err, bytesIn, bytesOut, replay);
  }
}

// Process-wide by nature (see shared()); null = not loaded yet.
let sharedRelay: NativeRelay | undefined | null = null;
