/** Fixed addresses on overlay networks (a task's `ip`, a service's `ipv4Address`): which are usable, who holds one. */
import { contains, ipToInt, parseCidr } from './cidr.js';
import type { Context } from './context.js';
import type { Network } from './schema.js';

/**
 * Why `ip` cannot be given out on `net`, or undefined when it can: outside the subnet,
 * or its network, broadcast or gateway address (RFC 919 section 7; IPAM skips them too).
 */
export function addressProblem(net: Network, ip: string): string | undefined {
  const subnet = parseCidr(net.subnet)!;
  if (!contains(subnet, ip)) return 'outside the subnet';
  const n = ipToInt(ip);
  if (n === subnet.base) return 'the network address';
  if (n === subnet.base + subnet.size - 1) return 'the broadcast address';
  if (ip === net.gateway) return 'the gateway address';
  return undefined;
}

/** Who holds an IPAM claim, for messages: `service web`, `task web.2`, `node n1`; undefined when free. */
export async function holderOf(ctx: Context, key: string): Promise<string | undefined> {
  const claim = (await ctx.claims.get(key))?.value;
  if (!claim) return undefined;
  const { owner, kind } = claim;
  if (kind === 'vip' || kind === 'service') return `service ${(await ctx.services.get(owner))?.value.name ?? owner}`;
  if (kind === 'task') return `task ${(await ctx.tasks.get(owner))?.value.name ?? owner}`;
  return `${kind} ${owner}`;
}
