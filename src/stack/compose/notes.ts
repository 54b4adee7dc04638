/**
 * What a deploy tells the user without failing: keys it ignores (one line per kind, so
 * a real file with images, volumes and replicas gives one line, not fifty) and unset
 * variables (one line each).
 */
import type { Source } from '../types.js';

export class Notes {
  /** Keys outside the networking half (image, volumes, deploy.replicas...). */
  private readonly ignored = new Set<string>();
  /** Networking a compose file can ask for that swarmnet does not do (dns, ipv6_address, a host IP...). */
  private readonly unsupported = new Set<string>();
  private readonly builds = new Set<string>();
  private readonly unset = new Map<string, Source>();

  ignore(path: string): void {
    this.ignored.add(path);
  }

  unsupport(what: string): void {
    this.unsupported.add(what);
  }

  build(path: string): void {
    this.builds.add(path);
  }

  /** An unset variable without a default: the first place it is used. */
  unsetVariable(name: string, at: Source): void {
    if (!this.unset.has(name)) this.unset.set(name, at);
  }

  lines(): string[] {
    const out: string[] = [];
    for (const [name, at] of this.unset) out.push(`variable ${name} is not set, substituting an empty string (${at.file}: ${at.path})`);
    // As docker stack deploy says it ("Ignoring unsupported options: build").
    if (this.builds.size) out.push(`build is not supported by stack deploy, ignored: ${[...this.builds].join(', ')}`);
    if (this.ignored.size) out.push(`ignored (not networking): ${[...this.ignored].join(', ')}`);
    if (this.unsupported.size) out.push(`ignored (not supported by swarmnet): ${[...this.unsupported].join(', ')}`);
    return out;
  }
}
