/**
 * Containers that die without a CNI DEL (the runtime killed, its namespace deleted): a
 * task of this node whose namespace is gone is removed, so it leaves DNS and the
 * routing mesh within a poll interval.
 *
 *   every SWEEP_MS: this node's tasks with a netns (the view)
 *   -> stat(netns): gone, or another namespace than the one first seen at that path
 *   -> remove the task (store) -> detach its veth (the reconciler would, a pass later)
 *
 * Polling, not inotify: a /proc/PID/ns/net path vanishes with its process and nothing
 * notifies; a /run/netns file is unmounted and unlinked by whoever deletes it. One
 * stat per local container per second is cheap. A namespace file that still names a
 * live namespace (a runtime killed so hard it never unmounted it) is not seen as dead:
 * the runtime's DEL or GC removes that task.
 */
import { statSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ControlPlane } from '../control/plane.js';
import type { View } from '../control/view.js';
import type { Overlay } from '../overlay/index.js';
import { NotFoundError } from '../util/errors.js';
import { one, readMetrics } from '../util/metrics.js';

/** How often namespaces are checked: a dead container leaves within about this long. */
export const SWEEP_MS = 1_000;
/** A path that exists but cannot be read: not taken for a death. */
const UNREADABLE = 'unreadable';

interface Deps {
  view: View;
  plane: ControlPlane;
  overlay: Overlay;
  nodeId: string;
  log: Logger;
  /** Default SWEEP_MS. */
  intervalMs?: number;
}

export class ContainerReaper {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  /** task id -> `dev:ino` of its namespace when first seen: a path reused for another namespace is a death too. */
  readonly #identity = new Map<string, string>();
  /** Tasks whose removal failed, so a failure is logged once (it is retried every sweep). */
  readonly #failing = new Set<string>();
  readonly counters = { reaped: 0, failures: 0 };

  constructor(private readonly d: Deps) {}

  start(): void {
    this.#timer = setInterval(() => {
      this.#running ??= this.sweep().finally(() => (this.#running = undefined));
    }, this.d.intervalMs ?? SWEEP_MS);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }

  /** One pass: removes the tasks of this node whose namespace is gone. */
  async sweep(): Promise<void> {
    const live = new Set<string>();
    for (const t of this.d.view.tasks.values()) {
      if (t.node !== this.d.nodeId || !t.netns) continue;
      live.add(t.id);
      const first = this.#identity.get(t.id);
      const now = identity(t.netns, first);
      if (first === undefined && now !== undefined && now !== UNREADABLE) this.#identity.set(t.id, now);
      if (now !== undefined && (first === undefined || first === now || now === UNREADABLE)) continue;
      await this.#reap(t.id, t.netns, now === undefined ? 'its namespace is gone' : 'its namespace path now names another namespace');
    }
    for (const id of this.#identity.keys()) if (!live.has(id)) this.#identity.delete(id);
    for (const id of this.#failing) if (!live.has(id)) this.#failing.delete(id);
  }

  async #reap(id: string, netns: string, why: string): Promise<void> {
    try {
      const t = await this.d.plane.tasks.remove(id);
      this.counters.reaped++;
      this.#failing.delete(id);
      this.d.log.info({ task: t.name, netns }, `container gone (${why}): task removed`);
    } catch (err) {
      if (!(err instanceof NotFoundError)) {
        this.counters.failures++;
        if (!this.#failing.has(id)) this.d.log.warn({ task: id, netns, err: (err as Error).message }, 'cannot remove the task of a dead container (retrying)');
        this.#failing.add(id);
        return;
      }
    }
    this.#identity.delete(id);
    await this.d.overlay.detach(id, netns).catch((err: Error) => {
      this.counters.failures++;
      this.d.log.warn({ task: id, err: err.message }, "cannot delete a dead container's veth");
    });
  }
}

/**
 * `dev:ino` of the namespace a path names (stat follows /proc/PID/ns/net); undefined when
 * there is none; the first identity seen when the path cannot be read (not a death).
 */
function identity(path: string, first: string | undefined): string | undefined {
  try {
    const s = statSync(path);
    return `${s.dev}:${s.ino}`;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? undefined : first ?? UNREADABLE;
  }
}

/** Tasks of containers that died without a CNI DEL, removed by this node. */
export function registerReaperMetrics(registry: Registry, r: ContainerReaper): void {
  const m = readMetrics(registry);
  m.counter('swarmnet_container_tasks_reaped_total', 'Tasks removed because their container namespace was gone (died without a CNI DEL)', [], () => one(r.counters.reaped));
  m.counter('swarmnet_container_reap_errors_total', 'Failed removals or detaches of dead containers (retried on the next sweep)', [], () => one(r.counters.failures));
}
