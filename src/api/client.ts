/**
 * The typed client of the agent API: one method per call, the request and response
 * types of the contract. The CLI, stack deploy and the CNI plugin use only this.
 */
import { ApiError } from '../util/errors.js';
import type { InitRequest, JoinRequest, LeaveRequest, NetworkSpec, NodeUpdate, ServiceSpec, ServiceUpdate, TaskSpec } from './schemas.js';
import type { Reply, Transport } from './transport.js';
import type { AgentEvent, AttachedTask, Conn, Info, JoinResult, JoinToken, KeyRotation, Network, NetworkView, NodeView, Service, Task, TaskView } from './types.js';

const q = (name: string, value: string | undefined) => (value === undefined ? '' : `?${name}=${encodeURIComponent(value)}`);
const ref = (r: string) => encodeURIComponent(r);

export class ApiClient {
  constructor(readonly transport: Transport) {}

  /** One request; a non-2xx reply becomes an ApiError with the agent's code and message. */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.transport.send(method, path, body);
    if (res.status < 200 || res.status >= 300) this.#fail(res);
    return (res.type.includes('json') ? JSON.parse(res.body) : res.body) as T;
  }

  /** A non-2xx reply as an ApiError with the agent's code and message. */
  #fail(res: Reply): never {
    let e: { code?: string; message?: string; field?: string } = {};
    try {
      e = (JSON.parse(res.body) as { error?: typeof e }).error ?? {};
    } catch {
      // not JSON: fall back to the status
    }
    throw new ApiError(e.message ?? `HTTP ${res.status}`, e.code ?? 'EHTTP', res.status, e.field);
  }

  info = () => this.call<Info>('GET', '/v1/info');

  /**
   * The answering agent's events (`GET /v1/events`), each handed to `onEvent`: the kept ones
   * from `since` (epoch ms) on, then live ones until `until` or `close()`. Filters: per key
   * any of its values, every key must match.
   */
  events(o: { since?: number; until?: number; filter?: Partial<Record<'type' | 'action' | 'name' | 'id' | 'service', string[]>> }, onEvent: (e: AgentEvent) => void): { done: Promise<void>; close(): void } {
    const q = new URLSearchParams();
    if (o.since !== undefined) q.set('since', String(Math.max(0, Math.floor(o.since))));
    if (o.until !== undefined) q.set('until', String(Math.max(0, Math.floor(o.until))));
    for (const [k, values] of Object.entries(o.filter ?? {})) for (const v of values) q.append(k, v);
    const s = this.transport.stream(`/v1/events${q.size ? `?${q}` : ''}`, (line) => onEvent(JSON.parse(line) as AgentEvent));
    const done = s.done.catch((err: Error & { reply?: { status: number; type: string; body: string } }) => {
      if (!err.reply) throw err;
      return this.#fail(err.reply);
    });
    return { done, close: s.close };
  }
  metrics = () => this.call<string>('GET', '/metrics');
  conns = (service?: string) => this.call<Conn[]>('GET', `/v1/conns${q('service', service)}`);
  /** Long-polls until this agent applied the service (its first published port listens). */
  wait = (service: string, timeoutMs = 10_000) => this.call<{ service: string; node: string }>('GET', `/v1/wait?service=${ref(service)}&timeout=${timeoutMs}`);

  readonly services = {
    list: () => this.call<Service[]>('GET', '/v1/services'),
    create: (spec: ServiceSpec) => this.call<Service>('POST', '/v1/services', spec),
    inspect: (r: string) => this.call<Service>('GET', `/v1/services/${ref(r)}`),
    update: (r: string, up: ServiceUpdate) => this.call<Service>('PATCH', `/v1/services/${ref(r)}`, up),
    rm: (r: string) => this.call<Service>('DELETE', `/v1/services/${ref(r)}`),
    tasks: (r: string) => this.call<TaskView[]>('GET', `/v1/services/${ref(r)}/tasks`),
  };

  readonly tasks = {
    list: (service?: string) => this.call<TaskView[]>('GET', `/v1/tasks${q('service', service)}`),
    /** With `netns`: attached on the answering node before the reply, which carries the interface. */
    add: (spec: TaskSpec) => this.call<AttachedTask>('POST', '/v1/tasks', spec),
    inspect: (r: string) => this.call<TaskView>('GET', `/v1/tasks/${ref(r)}`),
    rm: (r: string) => this.call<TaskView>('DELETE', `/v1/tasks/${ref(r)}`),
  };

  /**
   * CNI attachments (tasks with `container`) of the answering node, by the runtime's
   * container id and interface name.
   */
  readonly containers = {
    /** This node's attachments, on one network when given. */
    list: (network?: string) => this.call<Task[]>('GET', `/v1/containers${q('network', network)}`),
    /** The attachment's task with its interface read from the namespace now; ENOTFOUND when there is none. */
    inspect: (id: string, ifName: string) => this.call<AttachedTask>('GET', `/v1/containers/${ref(id)}/${ref(ifName)}`),
    /** Removes the attachment's task and detaches it; none there is no error (the tasks removed, maybe none). */
    rm: (id: string, ifName: string) => this.call<Task[]>('DELETE', `/v1/containers/${ref(id)}/${ref(ifName)}`),
  };

  readonly nodes = {
    list: () => this.call<NodeView[]>('GET', '/v1/nodes'),
    inspect: (r: string) => this.call<NodeView>('GET', `/v1/nodes/${ref(r)}`),
    update: (r: string, up: NodeUpdate) => this.call<NodeView>('PATCH', `/v1/nodes/${ref(r)}`, up),
    rm: (r: string, force = false) => this.call<NodeView>('DELETE', `/v1/nodes/${ref(r)}${force ? '?force=1' : ''}`),
    promote: (r: string) => this.call<NodeView>('POST', `/v1/nodes/${ref(r)}/promote`, {}),
    demote: (r: string) => this.call<NodeView>('POST', `/v1/nodes/${ref(r)}/demote`, {}),
  };

  readonly networks = {
    list: () => this.call<Network[]>('GET', '/v1/networks'),
    create: (spec: NetworkSpec) => this.call<Network>('POST', '/v1/networks', spec),
    inspect: (r: string) => this.call<NetworkView>('GET', `/v1/networks/${ref(r)}`),
    rm: (r: string) => this.call<Network>('DELETE', `/v1/networks/${ref(r)}`),
    /** Adds a key to an encrypted network's ring; it becomes primary once every node installed it. */
    rotateKey: (r: string) => this.call<KeyRotation>('POST', `/v1/networks/${ref(r)}/rotate-key`, {}),
  };

  readonly swarm = {
    init: (req: InitRequest) => this.call<JoinResult>('POST', '/v1/swarm/init', req),
    join: (req: JoinRequest) => this.call<JoinResult>('POST', '/v1/swarm/join', req),
    leave: (req: LeaveRequest) => this.call<{ node: string }>('POST', '/v1/swarm/leave', req),
    joinToken: (role: 'worker' | 'manager', rotate = false) => this.call<JoinToken>(rotate ? 'POST' : 'GET', `/v1/swarm/join-token/${role}${rotate ? '/rotate' : ''}`, rotate ? {} : undefined),
  };
}
