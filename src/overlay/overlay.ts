/**
 * The overlay on this node, made to match an OverlayPlan (level-triggered, like the mesh):
 *
 *   plan -> engine (opened with the first network) -> bridges + TAPs per network
 *   -> FDB (remote endpoint MAC -> its node) -> ARP table -> containers attach/detach
 *
 * Encrypted networks get security associations from their key ring (esp.ts): with every
 * other node serving the network, one inbound SA per key of the ring (installed first)
 * and one outbound SA under the primary key; the engine drops their frames when no
 * outbound SA exists, so nothing leaves in clear.
 *
 * Control frames from the engine (ARP requests, unknown unicast) are answered here:
 * an ARP request for a remote endpoint gets a reply built from the plan; anything
 * else is counted and dropped, never flooded.
 */
import type { Logger } from 'pino';
import { arpReply, parseArpRequest } from './arp.js';
import { attachTap, ensureBridge, syncAddresses } from './bridge.js';
import { NAMES } from './constants.js';
import { attachContainer, detachContainer, isContainerVeth, readInterface } from './containers.js';
import { deleteLink, linkExists, listLinks } from './links.js';
import { macForIp } from './mac.js';
import { deriveSa } from './esp.js';
import type { ContainerInterface, ContainerPlan, FrameEngine, NetworkPlan, OverlayPlan, SaDirection, SecurityAssociation } from './types.js';

export interface OverlayOptions {
  /** This node's underlay address (the engine's, and an end of every SA). */
  addr: string;
  log: Logger;
  /** Test-only: the first sequence number of outbound SAs (to cross 2^32 quickly). */
  espSeqStart?: bigint;
  /** Opens the frame engine; called once, when the first network appears. */
  openEngine(onControl: (vni: number, frame: Buffer) => void): FrameEngine;
  /** A network's bridge is up with its addresses (the agent starts container DNS on the gateway). */
  onNetworkUp?(net: NetworkPlan): Promise<void>;
  onNetworkDown?(net: NetworkPlan): void;
}

export interface OverlayError {
  key: string;
  error: Error;
}

/** An installed SA as the overlay knows it (the engine has the key). */
interface SaRecord {
  network: string;
  gen: number;
  dir: SaDirection;
  spi: number;
  vni: number;
  peer: string;
}

/** What `network inspect` shows of an SA: never key material. */
export interface SaView {
  network: string;
  gen: number;
  dir: SaDirection;
  spi: number;
  peer: string;
  /** Last sequence number sent (out) or highest accepted (in), 64-bit, as a decimal string. */
  seq: string;
}

interface Attached {
  plan: ContainerPlan;
  /** Seen in a plan since it was attached: only then may its absence mean removal. */
  seen: boolean;
  /** When `task add --netns` attached it (ms); unseen past UNSEEN_GRACE_MS, its task is gone. */
  attachedAt: number;
}

/**
 * In a cluster the view learns of a task after `task add` returned; a container attached
 * for a task that never shows up within this long (removed right away) is detached.
 */
const UNSEEN_GRACE_MS = 30_000;

export class Overlay {
  #engine: FrameEngine | undefined;
  readonly #networks = new Map<string, NetworkPlan>();
  /** `${vni}/${ip}` -> node address. */
  readonly #fdb = new Map<string, string>();
  /** vni -> ip -> MAC, for the ARP proxy. */
  #arp = new Map<number, Map<string, Buffer>>();
  readonly #containers = new Map<string, Attached>();
  /** Tasks whose attach failed, so a broken namespace is logged once, not every pass. */
  readonly #failed = new Set<string>();
  /**
   * Tasks detached by `detach()` (their task removed through the API) while a plan may
   * still list them: never attached again; forgotten once plans no longer list them.
   */
  readonly #detached = new Set<string>();
  #chain: Promise<unknown> = Promise.resolve();
  #peers = '';
  /** Links were listed once (stale veths of an earlier run removed). */
  #scanned = false;
  /** Installed SAs: `in:<vni>:<peer>:<gen>` / `out:<vni>:<peer>`. */
  readonly #sas = new Map<string, SaRecord>();
  /**
   * Sequence numbers of SAs taken out of the engine, by `dir/spi/peer`: one installed again
   * in this engine's life (its network or peer gone for a pass, then back) resumes where it
   * stopped, so a nonce is never used twice with its key and the replay window is not reset.
   */
  readonly #retired = new Map<string, bigint>();
  /** network id -> the newest key generation whose inbound SAs are all installed. */
  #installed: Record<string, number> = {};
  readonly counters = { arpReplies: 0, arpUnanswered: 0, unknownUnicast: 0 };

  constructor(private readonly o: OverlayOptions) {}

  /** Applies `plan`; returns what could not be done (the rest is done). */
  apply(plan: OverlayPlan): Promise<OverlayError[]> {
    return this.#serial(() => this.#apply(plan));
  }

  /**
   * Attaches one container now (the API's `task add --netns`), once its network is up here.
   * A task attached before (its veth there: a CNI ADD repeated after an agent restart, before
   * a pass adopted it) is adopted, not attached twice.
   */
  attach(c: ContainerPlan): Promise<void> {
    return this.#serial(async () => {
      if (this.#containers.has(c.taskId)) return; // a reconciler pass got there first
      const net = this.#networks.get(c.network);
      if (!net) throw Object.assign(new Error(`network ${c.network} is not set up on this node yet`), { code: 'ENOTREADY' });
      if (!(await linkExists(NAMES.vethHost(c.taskId)))) await attachContainer(c, net, net.mtu);
      this.#containers.set(c.taskId, { plan: c, seen: false, attachedAt: Date.now() });
    });
  }

  /**
   * Detaches a container now, its task just removed (CNI DEL, `task rm`, a dead
   * container): a pass would too, once the view has caught up.
   */
  detach(taskId: string, netns: string | undefined): Promise<void> {
    return this.#serial(async () => {
      this.#detached.add(taskId);
      this.#containers.delete(taskId);
      this.#failed.delete(taskId);
      await detachContainer(taskId, netns);
    });
  }

  /** A container's interface as its namespace has it; undefined when not there or its network is not served here. */
  async inspect(c: ContainerPlan): Promise<ContainerInterface | undefined> {
    const net = this.#networks.get(c.network);
    return net && readInterface(c.netns, c.ip, net.gateway);
  }

  hasNetwork(id: string): boolean {
    return this.#networks.has(id);
  }

  attached(): ContainerPlan[] {
    return [...this.#containers.values()].map((a) => a.plan);
  }

  engineStats(): ReturnType<FrameEngine['stats']> | undefined {
    return this.#engine?.stats();
  }

  /**
   * For each encrypted network served here: the newest key generation every peer's
   * inbound SAs are installed for (what the node reports, so senders switch to a key
   * only once every receiver has it).
   */
  installed(): Record<string, number> {
    return { ...this.#installed };
  }

  /** Installed SAs with their sequence numbers, for `network inspect`; no keys. */
  securityAssociations(): SaView[] {
    const seqs = new Map((this.#engine?.saList() ?? []).map((s) => [`${s.dir}/${s.spi}/${s.peer}`, s.seq]));
    return [...this.#sas.values()].map((r) => ({ network: r.network, gen: r.gen, dir: r.dir, spi: r.spi, peer: r.peer, seq: String(seqs.get(`${r.dir}/${r.spi}/${r.peer}`) ?? 0n) }));
  }

  /**
   * Stops the engine; its TAPs vanish with their fds. Bridges and containers' links stay,
   * as kube-proxy leaves its rules: local traffic keeps flowing and a restarted agent
   * adopts them (or removes what its tasks no longer need).
   */
  close(): Promise<void> {
    return this.#serial(async () => {
      for (const net of this.#networks.values()) this.o.onNetworkDown?.(net);
      this.#networks.clear();
      this.#engine?.close();
      this.#engine = undefined;
      // A new engine comes with a new epoch: new SAs, fresh counters.
      this.#sas.clear();
      this.#retired.clear();
    });
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(fn, fn);
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async #apply(plan: OverlayPlan): Promise<OverlayError[]> {
    const errors: OverlayError[] = [];
    const attempt = async (key: string, fn: () => Promise<void> | void) => {
      try {
        await fn();
      } catch (error) {
        errors.push({ key, error: error as Error });
      }
    };
    if (plan.networks.length && !this.#engine) {
      try {
        this.#engine = this.o.openEngine((vni, frame) => this.#onControl(vni, frame));
      } catch (error) {
        return [{ key: 'engine', error: error as Error }];
      }
    }
    const engine = this.#engine;
    const wanted = new Map(plan.networks.map((n) => [n.id, n]));
    if (!this.#scanned) await attempt('stale bridges', () => this.#removeStaleBridges(plan));
    for (const [id, net] of this.#networks) {
      const next = wanted.get(id);
      if (next && next.vni === net.vni && next.nodeIp === net.nodeIp && next.subnet === net.subnet && next.mtu === net.mtu && !next.encryption === !net.encryption) continue;
      await attempt(`network ${net.name}`, () => this.#removeNetwork(net));
    }
    for (const net of plan.networks) {
      const cur = this.#networks.get(net.id);
      if (cur && sameList(cur.vips, net.vips) && cur.gateway === net.gateway) {
        this.#networks.set(net.id, net); // the newest key ring
        continue;
      }
      await attempt(`network ${net.name}`, async () => {
        if (cur) await syncAddresses(NAMES.bridge(net.vni), net);
        else await this.#addNetwork(net, engine!);
        this.#networks.set(net.id, net);
      });
    }
    if (engine) {
      const peers = [...new Set(plan.peers)].sort().join(',');
      if (peers !== this.#peers) {
        await attempt('peers', () => engine.setPeers(plan.peers));
        this.#peers = peers;
      }
      this.#syncFdb(plan, engine, errors);
      this.#syncSas(plan, engine, errors);
    }
    await this.#syncContainers(plan, errors);
    return errors;
  }

  /** Bridges of networks removed while no agent ran here. */
  async #removeStaleBridges(plan: OverlayPlan): Promise<void> {
    const keep = new Set(plan.networks.map((n) => NAMES.bridge(n.vni)));
    for (const l of await listLinks()) {
      if (l.ifname.startsWith(NAMES.bridgePrefix) && /^\d+$/.test(l.ifname.slice(NAMES.bridgePrefix.length)) && !keep.has(l.ifname)) await deleteLink(l.ifname);
    }
  }

  async #addNetwork(net: NetworkPlan, engine: FrameEngine): Promise<void> {
    await ensureBridge(net, net.mtu);
    const encrypted = net.encryption !== undefined;
    try {
      engine.addTap(net.vni, NAMES.tap(net.vni), net.mtu, encrypted);
    } catch (err) {
      if ((err as { code?: string }).code !== 'EEXIST') throw err;
      // A TAP left from an earlier failed attempt in this process, perhaps for another
      // network on the same VNI: made again, so its encryption and MTU are this network's.
      engine.delTap(net.vni);
      engine.addTap(net.vni, NAMES.tap(net.vni), net.mtu, encrypted);
    }
    await attachTap(net.vni, net.mtu);
    await this.o.onNetworkUp?.(net);
  }

  async #removeNetwork(net: NetworkPlan): Promise<void> {
    this.#networks.delete(net.id);
    this.o.onNetworkDown?.(net);
    try {
      this.#engine?.delTap(net.vni);
    } catch {
      // not attached
    }
    await deleteLink(NAMES.bridge(net.vni));
  }

  #syncFdb(plan: OverlayPlan, engine: FrameEngine, errors: OverlayError[]): void {
    const local = new Set([...this.#networks.values()].map((n) => n.vni));
    const want = new Map<string, string>();
    const arp = new Map<number, Map<string, Buffer>>();
    for (const r of plan.remotes) {
      if (!local.has(r.vni)) continue;
      want.set(`${r.vni}/${r.ip}`, r.nodeAddr);
      let m = arp.get(r.vni);
      if (!m) arp.set(r.vni, (m = new Map()));
      m.set(r.ip, macForIp(r.ip));
    }
    for (const [key, addr] of this.#fdb) {
      if (want.get(key) === addr) continue;
      const [vni, ip] = splitKey(key);
      try {
        engine.fdbDel(vni, macForIp(ip));
      } catch {
        // the TAP's network went away with its entries
      }
      this.#fdb.delete(key);
    }
    for (const [key, addr] of want) {
      if (this.#fdb.get(key) === addr) continue;
      const [vni, ip] = splitKey(key);
      try {
        engine.fdbSet(vni, macForIp(ip), addr);
        this.#fdb.set(key, addr);
      } catch (error) {
        errors.push({ key: `fdb ${key}`, error: error as Error });
      }
    }
    this.#arp = arp;
  }

  /**
   * SAs of the encrypted networks served here, with every node that has an address on
   * them (and an epoch): inbound for each key of the ring, then outbound under the
   * primary. A peer's or this node's new epoch, or a new key, gives new SAs.
   */
  #syncSas(plan: OverlayPlan, engine: FrameEngine, errors: OverlayError[]): void {
    const want = new Map<string, { rec: SaRecord; sa: SecurityAssociation }>();
    const installed: Record<string, number> = {};
    for (const net of this.#networks.values()) {
      const enc = net.encryption;
      if (!enc) continue;
      const peers = new Set(plan.remotes.filter((r) => r.vni === net.vni).map((r) => r.nodeAddr));
      for (const peer of peers) {
        const epoch = plan.epochs[peer];
        if (!epoch) continue; // not running an engine yet: it cannot send or receive ESP
        for (const k of enc.keys) {
          const sa = deriveSa(k.key, enc.cipher, { vni: net.vni, gen: k.gen, sender: peer, receiver: this.o.addr, senderEpoch: epoch, receiverEpoch: plan.epoch }, 'in');
          want.set(`in:${net.vni}:${peer}:${k.gen}`, { rec: { network: net.id, gen: k.gen, dir: 'in', spi: sa.spi, vni: net.vni, peer }, sa });
        }
        const primary = enc.keys.find((k) => k.gen === enc.primary);
        if (!primary) continue;
        const sa = deriveSa(primary.key, enc.cipher, { vni: net.vni, gen: primary.gen, sender: this.o.addr, receiver: peer, senderEpoch: plan.epoch, receiverEpoch: epoch }, 'out');
        if (this.o.espSeqStart !== undefined) sa.seq = this.o.espSeqStart;
        want.set(`out:${net.vni}:${peer}`, { rec: { network: net.id, gen: primary.gen, dir: 'out', spi: sa.spi, vni: net.vni, peer }, sa });
      }
      installed[net.id] = Math.max(...enc.keys.map((k) => k.gen));
    }
    const changes = [...want].filter(([key, { rec }]) => {
      const cur = this.#sas.get(key);
      return !cur || cur.spi !== rec.spi || cur.gen !== rec.gen;
    });
    const gone = [...this.#sas].filter(([key]) => !want.has(key));
    if (changes.length === 0 && gone.length === 0) {
      this.#installed = installed;
      return;
    }
    const seqs = new Map(engine.saList().map((s) => [`${s.dir}/${s.spi}/${s.peer}`, s.seq]));
    const retire = (r: SaRecord) => {
      const id = `${r.dir}/${r.spi}/${r.peer}`;
      const seq = seqs.get(id);
      if (seq !== undefined) this.#retired.set(id, seq);
    };
    // Receivers first: an inbound SA is in place before any outbound SA of this pass.
    changes.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)); // 'in:' < 'out:'
    for (const [key, { rec, sa }] of changes) {
      const cur = this.#sas.get(key);
      const last = this.#retired.get(`${rec.dir}/${rec.spi}/${rec.peer}`);
      if (last !== undefined) sa.seq = rec.dir === 'out' ? (last + 1n > (sa.seq ?? 1n) ? last + 1n : sa.seq) : last;
      try {
        engine.saSet(sa); // an outbound SA replaces the one of its (vni, peer) in the engine
        this.#sas.set(key, rec);
      } catch (error) {
        errors.push({ key: `sa ${rec.dir} ${rec.peer} gen ${rec.gen}`, error: error as Error });
        if (rec.dir === 'in') delete installed[rec.network];
        continue;
      }
      if (cur && cur.spi !== rec.spi) {
        retire(cur);
        if (cur.dir === 'in') this.#saDel(engine, cur); // a new epoch's SA took its place
      }
    }
    for (const [key, rec] of gone) {
      retire(rec);
      this.#saDel(engine, rec);
      this.#sas.delete(key);
    }
    this.#installed = installed;
  }

  #saDel(engine: FrameEngine, rec: SaRecord): void {
    try {
      engine.saDel(rec.dir, rec.spi, rec.peer);
    } catch {
      // already gone
    }
  }

  async #syncContainers(plan: OverlayPlan, errors: OverlayError[]): Promise<void> {
    const wanted = new Map(plan.containers.map((c) => [c.taskId, c]));
    for (const id of this.#detached) if (!wanted.has(id)) this.#detached.delete(id);
    // Passes come with every heartbeat: list links only when something may change
    // (and once at start, to clean up after an earlier run).
    const gone = (id: string, a: Attached) => !wanted.has(id) && (a.seen || Date.now() - a.attachedAt > UNSEEN_GRACE_MS);
    const changes = plan.containers.some((c) => !this.#containers.has(c.taskId) && !this.#detached.has(c.taskId) && this.#networks.has(c.network)) || [...this.#containers].some(([id, a]) => gone(id, a));
    for (const c of plan.containers) {
      const have = this.#containers.get(c.taskId);
      if (have) have.seen = true;
    }
    if (!changes && this.#scanned) return;
    this.#scanned = true;
    const veths = new Set((await listLinks().catch(() => [])).map((l) => l.ifname).filter(isContainerVeth));
    for (const c of plan.containers) {
      if (this.#containers.has(c.taskId) || this.#detached.has(c.taskId)) continue; // marked seen above, or just detached
      const net = this.#networks.get(c.network);
      if (!net) continue;
      if (veths.has(NAMES.vethHost(c.taskId))) {
        // Attached before this agent (re)started: adopt it.
        this.#containers.set(c.taskId, { plan: c, seen: true, attachedAt: Date.now() });
        continue;
      }
      try {
        await attachContainer(c, net, net.mtu);
        this.#containers.set(c.taskId, { plan: c, seen: true, attachedAt: Date.now() });
        this.#failed.delete(c.taskId);
      } catch (error) {
        if (!this.#failed.has(c.taskId)) errors.push({ key: `task ${c.taskId}`, error: error as Error });
        this.#failed.add(c.taskId);
      }
    }
    for (const [id, a] of this.#containers) {
      if (!gone(id, a)) continue;
      this.#containers.delete(id);
      try {
        await detachContainer(id, a.plan.netns);
      } catch (error) {
        errors.push({ key: `task ${id}`, error: error as Error });
      }
    }
    // Ours from an earlier run whose tasks are gone (attach() adds to #containers first).
    const ours = new Set([...this.#containers.keys()].map((id) => NAMES.vethHost(id)));
    for (const v of veths) if (!ours.has(v)) await deleteLink(v).catch((error: Error) => errors.push({ key: `link ${v}`, error }));
  }

  #onControl(vni: number, frame: Buffer): void {
    const req = parseArpRequest(frame);
    if (!req) {
      this.counters.unknownUnicast++;
      return;
    }
    const mac = this.#arp.get(vni)?.get(req.targetIp);
    if (!mac) {
      // Local endpoints answer for themselves over the bridge; others are not ours to claim.
      this.counters.arpUnanswered++;
      return;
    }
    try {
      this.#engine?.write(vni, arpReply(req, mac));
      this.counters.arpReplies++;
    } catch (err) {
      this.o.log.debug({ vni, err: (err as Error).message }, 'arp reply not written');
    }
  }
}

function splitKey(key: string): [number, string] {
  const i = key.indexOf('/');
  return [Number(key.slice(0, i)), key.slice(i + 1)];
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
