/**
 * IP address and port management. Every allocation is a claim key created with
 * compare-and-set in the `ipam` bucket, so two writers (even on different nodes)
 * can never both win the same name, port, subnet, VNI or IP.
 *
 * Claim keys (NATS-safe tokens):
 *   name.<kind>.<name>        unique object names
 *   port.<proto>.<port>       published ports
 *   subnet.<a>.<b>.<c>.<d>_<len>
 *   vni.<n>
 *   ip.<networkId>.<a>.<b>.<c>.<d>
 */
import { ConflictError, ExhaustedError, isCode } from '../util/errors.js';
import { DEFAULT_POOL, DEFAULT_SUBNET_SIZE, PUBLISHED_PORT_MAX, PUBLISHED_PORT_MIN, VNI_MAX, VNI_MIN, type Protocol } from './constants.js';
import { formatCidr, intToIp, overlaps, parseCidr, type Cidr } from './cidr.js';
import type { Collection } from './collection.js';
import type { Claim } from './schema.js';

export const claimKey = {
  name: (kind: string, name: string) => `name.${kind}.${name.toLowerCase()}`,
  port: (proto: Protocol, port: number) => `port.${proto}.${port}`,
  subnet: (c: Cidr) => `subnet.${formatCidr(c).replace('/', '_')}`,
  vni: (vni: number) => `vni.${vni}`,
  ip: (network: string, ip: string) => `ip.${network}.${ip}`,
};

export class Ipam {
  /** Where the next scan starts; per process, so a busy range is not rescanned. */
  readonly #portCursor: Record<Protocol, number> = { tcp: PUBLISHED_PORT_MIN, udp: PUBLISHED_PORT_MIN };
  #vniCursor = VNI_MIN;
  #subnetCursor = 1; // 10.0.0.0/24 is left for an ingress network, as in Swarm
  readonly #pool = parseCidr(DEFAULT_POOL)!;

  constructor(readonly claims: Collection<Claim>) {}

  /** Claims `key` for `owner`; ConflictError naming the holder when taken. */
  async claim(key: string, owner: string, kind: string): Promise<void> {
    try {
      await this.claims.create(key, { owner, kind });
    } catch (err) {
      if (!isCode(err, 'ECONFLICT')) throw err;
      const held = await this.claims.get(key);
      if (held?.value.owner === owner) return; // idempotent re-claim
      throw new ConflictError(`already in use by ${held?.value.kind ?? 'another object'} ${held?.value.owner ?? ''}`.trim());
    }
  }

  async owner(key: string): Promise<string | undefined> {
    return (await this.claims.get(key))?.value.owner;
  }

  /** Releases only if still held by `owner`, so a stale release cannot free someone else's claim. */
  async release(key: string, owner: string): Promise<void> {
    const held = await this.claims.get(key);
    if (held && held.value.owner === owner) await this.claims.delete(key, held.revision);
  }

  async allocPort(proto: Protocol, owner: string): Promise<number> {
    const span = PUBLISHED_PORT_MAX - PUBLISHED_PORT_MIN + 1;
    for (let i = 0; i < span; i++) {
      const port = PUBLISHED_PORT_MIN + ((this.#portCursor[proto] - PUBLISHED_PORT_MIN + i) % span);
      if (await this.#tryClaim(claimKey.port(proto, port), owner, 'service')) {
        this.#portCursor[proto] = port + 1;
        return port;
      }
    }
    throw new ExhaustedError(`no free published port in ${PUBLISHED_PORT_MIN}-${PUBLISHED_PORT_MAX}/${proto}`);
  }

  async allocVni(owner: string): Promise<number> {
    for (let vni = this.#vniCursor; vni <= VNI_MAX; vni++) {
      if (await this.#tryClaim(claimKey.vni(vni), owner, 'network')) {
        this.#vniCursor = vni + 1;
        return vni;
      }
    }
    throw new ExhaustedError('no free VNI');
  }

  /**
   * Claims a subnet. A given subnet must not overlap one in use; otherwise the next
   * free /24 of the default pool is taken.
   */
  async allocSubnet(owner: string, taken: Cidr[], wanted?: Cidr): Promise<Cidr> {
    if (wanted) {
      const clash = taken.find((t) => overlaps(t, wanted));
      if (clash) throw new ConflictError(`${formatCidr(wanted)} overlaps ${formatCidr(clash)}`, 'subnet');
      await this.claim(claimKey.subnet(wanted), owner, 'network');
      return wanted;
    }
    const size = 2 ** (32 - DEFAULT_SUBNET_SIZE);
    const count = this.#pool.size / size;
    for (let i = this.#subnetCursor; i < count; i++) {
      const c: Cidr = { base: this.#pool.base + i * size, prefix: DEFAULT_SUBNET_SIZE, size };
      if (taken.some((t) => overlaps(t, c))) continue;
      if (await this.#tryClaim(claimKey.subnet(c), owner, 'network')) {
        this.#subnetCursor = i + 1;
        return c;
      }
    }
    throw new ExhaustedError(`no free /${DEFAULT_SUBNET_SIZE} left in ${DEFAULT_POOL}`);
  }

  /** Next free host address of a subnet, skipping network, gateway (first host) and broadcast. */
  async allocIp(network: string, subnet: Cidr, owner: string, kind: string): Promise<string> {
    for (let n = subnet.base + 2; n < subnet.base + subnet.size - 1; n++) {
      const ip = intToIp(n);
      if (await this.#tryClaim(claimKey.ip(network, ip), owner, kind)) return ip;
    }
    throw new ExhaustedError(`no free address in ${formatCidr(subnet)}`);
  }

  async #tryClaim(key: string, owner: string, kind: string): Promise<boolean> {
    try {
      await this.claims.create(key, { owner, kind });
      return true;
    } catch (err) {
      if (isCode(err, 'ECONFLICT')) return false;
      throw err;
    }
  }
}
