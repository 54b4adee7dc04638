/**
 * A stack as compose files describe it, in the agent API's own terms: what
 * `stack deploy` creates or updates. Plain JSON (it may travel as a request body).
 * Every object remembers where in the files it came from, so that an error found
 * later (by the planner, by the agent) can name the file and the compose path.
 */
import type { NetworkSpec, ServiceSpec } from '../api/index.js';

export interface StackSpec {
  name: string;
  /** The networks the services use, in the order the files declare them (an implicit `default` last). */
  networks: StackNetwork[];
  services: StackService[];
}

/** A compose file and a path in it, e.g. `{ file: 'compose.yml', path: 'services.web.ports[1]' }`. */
export interface Source {
  /** As the user gave it on the command line (or the `.env` beside the first file). */
  file: string;
  path: string;
}

export interface StackNetwork {
  /** The compose key (`front`, `default`). */
  key: string;
  /** `NAME_front`, or its `name:`; an external network's `name:` or key. */
  name: string;
  /** Must exist already; never created, updated or removed by the stack. */
  external: boolean;
  /** Absent when external. Exactly the body of POST /v1/networks. */
  spec?: NetworkSpec;
  /** Where it is declared (for the implicit `default`: the first service that joins it). */
  source: Source;
  /** Where each NetworkSpec field was set: `subnet`, `encrypted`, `labels.KEY`... (see sourceOf). */
  sources: Record<string, Source>;
}

/** A service's attachment to a network in docker's long form (control/spec.ts accepts it beside a plain name). */
export interface StackAttachment {
  /** The network's name (StackNetwork.name). */
  target: string;
  /** The file's `aliases`, then the service's compose key (docker adds it: `web` resolves inside the stack). */
  aliases?: string[];
  /** compose `ipv4_address`: the service's VIP on that network. */
  ipv4Address?: string;
}

/** A ServiceSpec whose networks are always in the long form. */
export type StackServiceSpec = Omit<ServiceSpec, 'networks'> & { networks: StackAttachment[] };

export interface StackService {
  /** The compose key (`web`). */
  key: string;
  /** Exactly the body of POST /v1/services. Fields the files leave out are absent (agent defaults). */
  spec: StackServiceSpec;
  /** Where it is defined (the first file that names it). */
  source: Source;
  /** For each spec.ports[i]: where it came from (a short-syntax range gives several ports one source). */
  portSources: Source[];
  /** For each spec.networks[i]: where it came from (the service itself for the implicit `default`). */
  networkSources: Source[];
  /** Where other ServiceSpec fields were set: `endpointMode`, `lb`, `healthCheck.timeout`, `labels.KEY`, `networks[1].aliases[0]`... */
  sources: Record<string, Source>;
}
