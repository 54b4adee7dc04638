/**
 * Published ports of a service spec, pure: defaults filled, duplicates refused, and on
 * a whole-list update (`ports`, what stack deploy sends) each wanted port matched to the
 * current port it keeps, so that an unchanged port keeps its claim and its listener
 * (connections through it survive the update).
 */
import { ValidationError } from '../util/errors.js';
import { PUBLISHED_PORT_MAX, PUBLISHED_PORT_MIN } from './constants.js';
import type { PortConfig } from './schema.js';
import type { PortSpec } from './spec.js';

/** A port as it will be stored; `auto`: `published` is to be assigned (0 until then). */
export type WantedPort = PortConfig & { auto: boolean };

/** Fills defaults and rejects a published port given twice in one spec. */
export function normalizePorts(specs: PortSpec[], field: string): WantedPort[] {
  const out = specs.map((p) => ({
    protocol: p.protocol ?? 'tcp',
    target: p.target,
    published: p.published ?? 0,
    mode: p.mode ?? 'ingress',
    auto: p.published === undefined,
  }));
  out.forEach((p, i) => {
    if (!p.auto && out.findIndex((q) => !q.auto && q.protocol === p.protocol && q.published === p.published) !== i) {
      throw new ValidationError(`${field}[${i}].published`, `port ${p.published}/${p.protocol} is given twice`);
    }
  });
  return out;
}

/**
 * For each wanted port, the current port it keeps, or undefined (a new claim). A port
 * keeps a current one equal in protocol, target, mode and published port; one without
 * a published port keeps a current port of the same protocol, target and mode that was
 * auto-assigned (in the auto range), so a re-deploy does not move it. An explicit port
 * changed to auto (8080:80 -> 80) gets a fresh one, as in Docker.
 */
export function matchPorts(current: PortConfig[], wanted: WantedPort[]): Array<PortConfig | undefined> {
  const free = [...current];
  const take = (w: WantedPort, published: (n: number) => boolean): PortConfig | undefined => {
    const i = free.findIndex((c) => c.protocol === w.protocol && c.target === w.target && c.mode === w.mode && published(c.published));
    return i < 0 ? undefined : free.splice(i, 1)[0];
  };
  // Explicit ports first, so an auto one cannot take the port an explicit one names.
  const out = wanted.map((w) => (w.auto ? undefined : take(w, (n) => n === w.published)));
  wanted.forEach((w, i) => {
    if (w.auto) out[i] = take(w, (n) => n >= PUBLISHED_PORT_MIN && n <= PUBLISHED_PORT_MAX);
  });
  return out;
}

/** `tcp/8080`: a published port's identity (its claim). */
export const portId = (p: Pick<PortConfig, 'protocol' | 'published'>) => `${p.protocol}/${p.published}`;
