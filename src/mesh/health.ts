/**
 * Active TCP health checks (optional per service): every interval each backend gets
 * a connect; `retries` consecutive failures take it out of rotation, one success
 * brings it back. Complements passive health (back-off on failed client connects).
 */
import { connect } from 'node:net';
import type { HealthCheck } from '../control/schema.js';
import type { Backend } from './backend.js';
import type { Pool } from './pool.js';

export class HealthChecker {
  #timer: NodeJS.Timeout | undefined;
  readonly #fails = new Map<string, number>();
  #running = false;

  constructor(
    private readonly pool: Pool,
    private check: HealthCheck,
  ) {
    this.#schedule();
  }

  /** Applies a changed check definition (interval, timeout, retries). */
  reconfigure(check: HealthCheck): void {
    if (JSON.stringify(check) === JSON.stringify(this.check)) return;
    this.check = check;
    clearTimeout(this.#timer);
    this.#schedule();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const b of this.pool.backends.values()) b.healthy = true;
  }

  #schedule(): void {
    this.#timer = setTimeout(() => void this.#round(), this.check.interval);
    this.#timer.unref();
  }

  async #round(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    const backends = [...this.pool.backends.values()].filter((b) => !b.draining);
    const results = await Promise.all(backends.map((b) => this.#probe(b).then((ok) => [b, ok] as const)));
    let changed = false;
    for (const [b, ok] of results) {
      const fails = ok ? 0 : (this.#fails.get(b.id) ?? 0) + 1;
      this.#fails.set(b.id, fails);
      const healthy = fails < this.check.retries;
      if (healthy !== b.healthy) {
        b.healthy = healthy;
        changed = true;
      }
    }
    for (const id of [...this.#fails.keys()]) if (!this.pool.backends.has(id)) this.#fails.delete(id);
    if (changed) this.pool.rebuild();
    this.#running = false;
    if (this.#timer) this.#schedule();
  }

  #probe(b: Backend): Promise<boolean> {
    return new Promise((resolve) => {
      const s = connect({ host: b.spec.host, port: b.spec.port });
      const done = (ok: boolean) => {
        clearTimeout(t);
        s.destroy();
        resolve(ok);
      };
      const t = setTimeout(() => done(false), this.check.timeout);
      s.once('connect', () => done(true));
      s.once('error', () => done(false));
    });
  }
}
