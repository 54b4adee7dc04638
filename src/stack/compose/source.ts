/**
 * From a StackSpec field back to the compose files: errors found after loading (the
 * planner's, the agent's) name fields such as `services[3].ports[1].published` or
 * `networks[0].subnet`; users need `compose.yml: services.web.ports[1]`.
 */
import type { Source, StackNetwork, StackService, StackSpec } from '../types.js';

const FIELD = /^(services|networks)\[(\d+)\](?:\.(.*))?$/;

/** `compose.yml: services.web.ports[1]` for `services[3].ports[1].published`; undefined when the field names nothing in `spec`. */
export function sourceOf(spec: StackSpec, field: string): string | undefined {
  const m = FIELD.exec(field);
  if (!m) return undefined;
  const entry = m[1] === 'services' ? spec.services[Number(m[2])] : spec.networks[Number(m[2])];
  if (!entry) return undefined;
  const s = locate(entry, m[3] ?? '');
  return `${s.file}: ${s.path}`;
}

/**
 * Where a field of a service or network spec was written: the most precise source known
 * for it (`healthCheck.timeout`, else `healthCheck`), a port's or network's item, or
 * the object itself.
 */
export function locate(entry: StackService | StackNetwork, field: string): Source {
  for (let f = field; f; f = parent(f)) {
    const exact = entry.sources[f];
    if (exact) return exact;
    const item = /^(ports|networks)\[(\d+)\]$/.exec(f);
    if (item && 'portSources' in entry) {
      const found = (item[1] === 'ports' ? entry.portSources : entry.networkSources)[Number(item[2])];
      if (found) return found;
    }
  }
  return entry.source;
}

/** `a.b[2].c` -> `a.b[2]` -> `a.b` -> `a` -> ``. */
function parent(field: string): string {
  const cut = Math.max(field.lastIndexOf('.'), field.lastIndexOf('['));
  return cut < 0 ? '' : field.slice(0, cut);
}
