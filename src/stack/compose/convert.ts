/**
 * Stage 6: the merged tree to a StackSpec. Networks first (all declared ones are
 * checked, the ones services use are kept, as docker creates only those), then
 * services, which resolve their networks; then what only the whole stack can show:
 * a published port used twice.
 */
import type { Source, StackNetwork, StackService, StackSpec } from '../types.js';
import { failAt } from './errors.js';
import { convertNetwork } from './networks.js';
import type { Notes } from './notes.js';
import { convertService } from './services.js';
import { optionalMapping, type MapNode } from './tree.js';
import { stackLabels } from './values.js';

/** The network a service joins when it lists none, created as `STACK_default` unless the files declare it. */
const DEFAULT_NETWORK = 'default';

export function toStackSpec(root: MapNode, stack: string, notes: Notes): StackSpec {
  const declared = new Map<string, StackNetwork>();
  for (const [key, n] of optionalMapping(root.value.get('networks')) ?? []) declared.set(key, convertNetwork(key, n, stack, notes));
  const used = new Set<string>();
  let implicit: StackNetwork | undefined;
  const network = (key: string, at: Source): StackNetwork => {
    used.add(key);
    const found = declared.get(key);
    if (found) return found;
    if (key !== DEFAULT_NETWORK) throw failAt(at, `network ${key} is not defined (declare it under the top-level networks:)`);
    implicit ??= implicitDefault(stack, at);
    return implicit;
  };
  const services = [...(optionalMapping(root.value.get('services')) ?? [])].map(([key, n]) => convertService(key, n, stack, network));
  checkPublished(services);
  const networks = [...declared.values()].filter((n) => used.has(n.key));
  return { name: stack, networks: implicit ? [...networks, implicit] : networks, services };
}

function implicitDefault(stack: string, firstUser: Source): StackNetwork {
  const name = `${stack}_${DEFAULT_NETWORK}`;
  return { key: DEFAULT_NETWORK, name, external: false, spec: { name, labels: stackLabels([], stack, {}) }, source: firstUser, sources: {} };
}

/** A published port (and protocol) serves one service: the second use is the error. */
function checkPublished(services: StackService[]): void {
  const first = new Map<string, Source>();
  for (const s of services) {
    s.spec.ports?.forEach((p, i) => {
      if (p.published === undefined) return;
      const key = `${p.published}/${p.protocol ?? 'tcp'}`;
      const at = s.portSources[i]!;
      const before = first.get(key);
      if (before) throw failAt(at, `published port ${key} is already used by ${before.path}${before.file === at.file ? '' : ` (${before.file})`}`);
      first.set(key, at);
    });
  }
}
