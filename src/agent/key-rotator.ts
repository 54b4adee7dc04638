/**
 * Rotates and promotes the key rings of encrypted networks (control/keys.ts) on a timer.
 * Runs on the single-node agent, on every agent of a `--nats` cluster, and on the
 * managers of a cluster made with `init`; several rotators at once are safe (every
 * change is a compare-and-set whose condition is checked again on the fresh ring).
 *
 * Each check, for every encrypted network in the view:
 *
 *   no ring                      -> make one (a network from before rings)
 *   newest key not primary yet   -> promote it once every live node on the network has
 *                                   installed it, or once it has waited past the timeout
 *                                   (timed here on the monotonic clock: never our wall
 *                                   clock against another manager's `createdAt`)
 *   newest key older than period -> rotate (add a key; the next checks promote it)
 *   ring without network         -> remove it, when still so a while later (a network
 *                                   removal that failed between the two deletes)
 *
 * The period is compared with the ring's `createdAt`, the wall clock of the manager
 * that made the key: at a 12 h period, clocks minutes apart move a rotation by minutes,
 * which is harmless.
 */
import type { Logger } from 'pino';
import type { ControlPlane } from '../control/plane.js';
import type { View } from '../control/view.js';
import { newest } from '../control/keys.js';

/** How often rings are looked at (at most; shorter for very short test periods). */
const CHECK_MS = 2_000;
/** A ring seen without its network for this long (monotonic) is an orphan. */
const ORPHAN_GRACE_MS = 10_000;

export interface KeyRotatorOptions {
  plane: ControlPlane;
  view: View;
  log: Logger;
  /** Rotate a ring whose newest key is this old (--key-rotation). */
  rotationMs: number;
  /** Promote a waiting key after this long even if a node has not reported it (default keys.ts). */
  promoteTimeoutMs?: number;
  /** Check interval (default CHECK_MS, or less for short periods). */
  checkMs?: number;
  /** Monotonic milliseconds (default performance.now); injectable for tests. */
  now?: () => number;
}

export class KeyRotator {
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  /** `${network}/${gen}` -> monotonic time this rotator first saw that key waiting. */
  readonly #waiting = new Map<string, number>();
  /** network id -> monotonic time its ring was first seen without the network. */
  readonly #orphans = new Map<string, number>();
  /** Checks that failed (the store unreachable, a race lost eight times); logged at the top of the loop. */
  failures = 0;
  rotations = 0;
  promotions = 0;

  constructor(private readonly o: KeyRotatorOptions) {
    this.#now = o.now ?? (() => performance.now());
  }

  start(): void {
    const every = this.o.checkMs ?? Math.max(100, Math.min(CHECK_MS, Math.floor(this.o.rotationMs / 2)));
    this.#timer = setInterval(() => void this.check(), every);
    this.#timer.unref();
    void this.check();
  }

  /** Stops the timer and waits for a check under way (the store closes next). */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** One pass over every ring; never throws (a failed ring is logged and tried on the next pass). */
  check(): Promise<void> {
    this.#running ??= this.#check().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #check(): Promise<void> {
    const { view, plane, log } = this.o;
    const now = this.#now();
    const waiting = new Set<string>();
    for (const net of view.networks.values()) {
      if (!net.encrypted) continue;
      try {
        const ring = view.keys.get(net.id);
        if (!ring) {
          // Usually the view has the network a moment before its ring (two watches).
          if ((await plane.keys.ensure(net)).created) log.info({ network: net.name }, 'key ring made for an encrypted network that had none');
          continue;
        }
        const last = newest(ring);
        if (ring.primary !== last.gen) {
          const key = `${net.id}/${last.gen}`;
          waiting.add(key);
          const since = this.#waiting.get(key) ?? now;
          this.#waiting.set(key, since);
          const r = await plane.keys.promote(net.id, { isUp: (n) => view.liveness.up(n), waitedMs: now - since, ...(this.o.promoteTimeoutMs !== undefined && { timeoutMs: this.o.promoteTimeoutMs }) });
          if (r.promoted) {
            this.promotions++;
            if (r.forced) log.warn({ network: net.name, gen: r.gen, waitedMs: Math.round(now - since), notInstalledOn: r.waitingFor }, 'network key promoted after the timeout: these nodes never reported it installed');
            else log.info({ network: net.name, gen: r.gen }, 'network key promoted: every node on the network installed it');
          }
          continue;
        }
        if (plane.ctx.now() - last.createdAt < this.o.rotationMs) continue;
        const r = await plane.keys.rotateNetwork(net, { ifOlderThanMs: this.o.rotationMs });
        if (r.rotated) {
          this.rotations++;
          log.info({ network: net.name, gen: r.gen }, 'network key rotated: new key being installed');
        }
      } catch (err) {
        this.failures++;
        log.warn({ network: net.name, err: (err as Error).message }, 'key rotation check failed; retrying');
      }
    }
    for (const key of this.#waiting.keys()) if (!waiting.has(key)) this.#waiting.delete(key);
    await this.#removeOrphans(now);
  }

  async #removeOrphans(now: number): Promise<void> {
    const { view, plane, log } = this.o;
    for (const id of this.#orphans.keys()) if (!view.keys.has(id) || view.networks.has(id)) this.#orphans.delete(id);
    for (const id of view.keys.keys()) {
      if (view.networks.has(id)) continue;
      const since = this.#orphans.get(id);
      if (since === undefined) {
        this.#orphans.set(id, now);
        continue;
      }
      if (now - since < ORPHAN_GRACE_MS) continue;
      try {
        // The store, not the view, decides: the network may be being created right now.
        if (await plane.ctx.networks.get(id)) continue;
        await plane.keys.remove(id);
        this.#orphans.delete(id);
        log.info({ network: id }, 'key ring of a removed network deleted');
      } catch (err) {
        this.failures++;
        log.warn({ network: id, err: (err as Error).message }, 'cannot delete the key ring of a removed network; retrying');
      }
    }
  }
}
