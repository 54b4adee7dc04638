/**
 * The agent's side of the overlay: turns the view into an OverlayPlan each reconciler
 * pass (claiming this node's own address on new networks first), reports which key
 * generations of encrypted networks it has installed (node record `espInstalled`, what
 * key promotion waits for), serves container DNS on every network's gateway, and
 * attaches containers for `task add --netns`.
 */
import type { Logger } from 'pino';
import type { ControlPlane } from '../control/plane.js';
import type { Node, Task } from '../control/schema.js';
import type { View } from '../control/view.js';
import { DnsServer, type DnsServerOptions } from '../dns/index.js';
import { NativeEngine, Overlay, type NetworkPlan } from '../overlay/index.js';
import { ValidationError } from '../util/errors.js';
import { overlayPlan } from './overlay-plan.js';
import type { OverlayDriver, Reconciler } from './reconciler.js';

/** Containers' resolv.conf points at the gateway; DNS there is on the standard port. */
const CONTAINER_DNS_PORT = 53;
/** How long `task add --netns` waits for a new network's bridge to come up on this node. */
const NETWORK_READY_MS = 10_000;

/** The overlay's settings (agent flags). */
export interface OverlaySettings {
  /** UDP port of VXLAN (--vxlan-port). */
  port: number;
  /** UDP port of ESP-in-UDP (--esp-port, RFC 3948). */
  espPort: number;
  /** Overlay MTU (--overlay-mtu); encrypted networks get less (encryptedMtu). */
  mtu: number;
  /** Test-only (env SWARMNET_TEST_ESP_SEQ_START): first sequence number of outbound SAs. */
  espSeqStart?: bigint;
}

interface Deps {
  o: { advertiseAddr: string; overlay?: OverlaySettings };
  /** This runtime's ESP epoch (also in its heartbeats). */
  epoch: string;
  log: Logger;
  view: View;
  plane: ControlPlane;
  nodeId: string;
  /** The node's DNS, served on each network's gateway. */
  dns: Omit<DnsServerOptions, 'host' | 'port'>;
}

export function startOverlay(d: Deps): { overlay: Overlay; driver: OverlayDriver } {
  const { port, espPort, mtu, espSeqStart } = d.o.overlay!;
  const dns = new Map<string, DnsServer>();
  const overlay = new Overlay({
    addr: d.o.advertiseAddr,
    log: d.log,
    ...(espSeqStart !== undefined && { espSeqStart }),
    openEngine: (onControl) => NativeEngine.open(d.o.advertiseAddr, port, espPort, onControl),
    onNetworkUp: async (net: NetworkPlan) => {
      const server = new DnsServer({ host: net.gateway, port: CONTAINER_DNS_PORT, ...d.dns });
      try {
        await server.listen();
        dns.set(net.id, server);
      } catch (err) {
        server.close();
        d.log.error({ network: net.name, err: (err as Error).message }, 'cannot serve container DNS on the gateway');
      }
    },
    onNetworkDown: (net) => {
      dns.get(net.id)?.close();
      dns.delete(net.id);
    },
  });
  const reported = new Set<string>();
  const once = (key: string, fn: () => void) => {
    if (reported.has(key)) return;
    reported.add(key);
    fn();
  };
  const driver: OverlayDriver = {
    hasNetwork: (id) => overlay.hasNetwork(id),
    // Never throws: a failed pass is logged (once per distinct problem) and retried on the next.
    sync: async () => {
      const problems: Array<[string, () => void]> = [];
      try {
        const { plan, missing, skipped } = overlayPlan(d.view, { self: d.nodeId, epoch: d.epoch, mtu });
        for (const s of skipped) problems.push([`skip ${s.network.id}`, () => d.log.warn({ network: s.network.name }, s.reason)]);
        for (const net of missing) {
          // Written to the store: the view's change starts the next pass, which sets it up.
          await d.plane.nodes.claimAddress(d.nodeId, net).catch((err: Error) => problems.push([`claim ${net.id} ${err.message}`, () => d.log.error({ network: net.name, err: err.message }, 'cannot claim an address on the network')]));
        }
        for (const e of await overlay.apply(plan)) problems.push([`${e.key} ${e.error.message}`, () => d.log.error({ what: e.key, err: e.error.message }, 'overlay')]);
        await reportInstalled(d, overlay.installed()).catch((err: Error) => problems.push([`report ${err.message}`, () => d.log.warn({ err: err.message }, 'cannot report installed ESP keys')]));
      } catch (err) {
        problems.push([`sync ${(err as Error).message}`, () => d.log.error({ err: (err as Error).message }, 'overlay sync failed')]);
      }
      if (problems.length === 0) reported.clear();
      for (const [key, log] of problems) once(key, log);
    },
  };
  return { overlay, driver };
}

/**
 * Writes which key generations this node's overlay has installed into its node record,
 * when that differs from what the record says (the write's view change starts one more
 * pass, which then finds them equal).
 */
async function reportInstalled(d: Pick<Deps, 'plane' | 'view' | 'nodeId'>, installed: Record<string, number>): Promise<void> {
  if (sameGens(d.view.nodes.get(d.nodeId)?.espInstalled ?? {}, installed)) return;
  await d.plane.nodes.patch(d.nodeId, (cur: Node) => ({ ...cur, espInstalled: installed }));
}

function sameGens(a: Record<string, number>, b: Record<string, number>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

/**
 * Attaches a just-added task's namespace; on failure the task is removed again, so a
 * failed `task add --netns` leaves nothing stored.
 */
export async function attachTask(task: Task, d: { overlay: Overlay; reconciler: Reconciler; plane: ControlPlane; view: View }): Promise<void> {
  const { overlay, reconciler, plane } = d;
  const a = task.addresses[0]!;
  try {
    const deadline = Date.now() + NETWORK_READY_MS;
    while (!overlay.hasNetwork(a.network) && Date.now() < deadline) {
      void reconciler.kick();
      await reconciler.nextPass(250);
    }
    await overlay.attach({ taskId: task.id, netns: task.netns!, network: a.network, ip: a.ip, ...(task.container && { ifName: task.container.ifName }) });
  } catch (err) {
    await plane.tasks.remove(task.id).catch(() => undefined);
    throw new ValidationError('netns', `cannot attach ${task.netns}: ${(err as Error).message}`);
  }
}
