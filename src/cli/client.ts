/** The CLI's HTTP client for an agent's API. */
import { ApiError } from '../util/errors.js';

export const DEFAULT_API = '127.0.0.1:2377';

export class Client {
  constructor(readonly host: string) {}

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`http://${this.host}${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new ApiError(`cannot reach the agent at ${this.host} (${cause?.code ?? cause?.message ?? (err as Error).message}); is 'swarmnet agent' running?`, 'EUNREACHABLE', 0);
    }
    const text = await res.text();
    if (!res.ok) {
      let e: { code?: string; message?: string } = {};
      try {
        e = (JSON.parse(text) as { error?: typeof e }).error ?? {};
      } catch {
        // not JSON: fall through to the status line
      }
      throw new ApiError(e.message ?? `${res.status} ${res.statusText}`, e.code ?? 'EHTTP', res.status);
    }
    const type = res.headers.get('content-type') ?? '';
    return (type.includes('json') ? JSON.parse(text) : text) as T;
  }

  get = <T>(path: string) => this.call<T>('GET', path);
  post = <T>(path: string, body: unknown) => this.call<T>('POST', path, body);
  patch = <T>(path: string, body: unknown) => this.call<T>('PATCH', path, body);
  del = <T>(path: string) => this.call<T>('DELETE', path);
}
