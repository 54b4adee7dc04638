/**
 * The agent's side of the overlay: turns the view into an OverlayPlan each reconciler
 * pass (claiming this node's own address on new networks first), serves container DNS
 * on every network's gateway, and attaches containers for `task add --netns`.
 */
import type { Logger } from 'pino';
import type { ControlPlane } from '../control/plane.js';
import type { Task } from '../control/schema.js';
import type { View } from '../control/view.js';
import { DnsServer, type Handler } from '../dns/index.js';
import { NativeEngine, Overlay, type NetworkPlan } from '../overlay/index.js';
import { ValidationError } from '../util/errors.js';
import { overlayPlan } from './overlay-plan.js';
import type { OverlayDriver, Reconciler } from './reconciler.js';

/** Containers' resolv.conf points at the gateway; DNS there is on the standard port. */
const CONTAINER_DNS_PORT = 53;
/** How long `task add --netns` waits for a new network's bridge to come up on this node. */
const NETWORK_READY_MS = 10_000;

interface Deps {
  o: { advertiseAddr: string; overlay?: { port: number; mtu: number } };
  log: Logger;
  view: View;
  plane: ControlPlane;
  nodeId: string;
  handlers: Handler[];
}

export function startOverlay(d: Deps): { overlay: Overlay; driver: OverlayDriver } {
  const { port, mtu } = d.o.overlay!;
  const dns = new Map<string, DnsServer>();
  const overlay = new Overlay({
    mtu,
    log: d.log,
    openEngine: (onControl) => NativeEngine.open(d.o.advertiseAddr, port, onControl),
    onNetworkUp: async (net: NetworkPlan) => {
      const server = new DnsServer({ host: net.gateway, port: CONTAINER_DNS_PORT, handlers: d.handlers });
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
        const { plan, missing, skipped } = overlayPlan(d.view, d.nodeId);
        for (const s of skipped) problems.push([`skip ${s.network.id}`, () => d.log.warn({ network: s.network.name }, s.reason)]);
        for (const net of missing) {
          // Written to the store: the view's change starts the next pass, which sets it up.
          await d.plane.nodes.claimAddress(d.nodeId, net).catch((err: Error) => problems.push([`claim ${net.id} ${err.message}`, () => d.log.error({ network: net.name, err: err.message }, 'cannot claim an address on the network')]));
        }
        for (const e of await overlay.apply(plan)) problems.push([`${e.key} ${e.error.message}`, () => d.log.error({ what: e.key, err: e.error.message }, 'overlay')]);
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
 * Attaches a just-added task's namespace; on failure the task is removed again, so a
 * failed `task add --netns` leaves nothing stored.
 */
export async function attachTask(task: Task, d: { overlay: Overlay; reconciler: Reconciler; plane: ControlPlane; view: View }): Promise<void> {
  const { overlay, reconciler, plane } = d;
  const a = task.addresses[0]!;
  try {
    const net = (await plane.networks.resolve(a.network)).value;
    if (net.encrypted) throw new Error(`network ${net.name} is encrypted, and encrypted overlays are not carried yet`);
    const deadline = Date.now() + NETWORK_READY_MS;
    while (!overlay.hasNetwork(a.network) && Date.now() < deadline) {
      void reconciler.kick();
      await reconciler.nextPass(250);
    }
    await overlay.attach({ taskId: task.id, netns: task.netns!, network: a.network, ip: a.ip });
  } catch (err) {
    await plane.tasks.remove(task.id).catch(() => undefined);
    throw new ValidationError('netns', `cannot attach ${task.netns}: ${(err as Error).message}`);
  }
}
