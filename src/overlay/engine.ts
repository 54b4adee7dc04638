/** FrameEngine on the native addon's VXLAN engine (one per process). */
import { check, loadAddon, type Addon } from '../native/index.js';
import { ENGINE_STATS, type EngineStat } from './constants.js';
import type { FrameEngine, SaDirection, SaState, SecurityAssociation } from './types.js';

const DIR = { in: 0, out: 1 } as const;

export class NativeEngine implements FrameEngine {
  private constructor(private readonly addon: Addon) {}

  /** Binds UDP ip:port (VXLAN) and ip:espPort (ESP in UDP; 0: none) and starts the engine's threads. */
  static open(ip: string, port: number, espPort: number, onControl: (vni: number, frame: Buffer) => void): NativeEngine {
    const addon = loadAddon();
    if (!addon) throw Object.assign(new Error('the native addon is not built (npm ci builds it with node-gyp); the overlay needs it for TAP devices'), { code: 'ENOADDON' });
    check(addon.vxlanOpen(ip, port, espPort, onControl), `vxlan bind ${ip}:${port}${espPort ? ` and ${ip}:${espPort}` : ''}`);
    return new NativeEngine(addon);
  }

  addTap(vni: number, name: string, mtu: number, encrypted: boolean): void {
    const fd = check(this.addon.tapOpen(name, mtu), `open tap ${name}`);
    check(this.addon.vxlanAddTap(vni, fd, encrypted), `attach tap ${name}`);
  }

  saSet(sa: SecurityAssociation): void {
    check(this.addon.espSaSet(DIR[sa.dir], sa.spi, sa.vni, sa.peer, sa.key, sa.salt, sa.seq ?? 0n), `install ${sa.dir}bound SA`);
  }

  saDel(dir: SaDirection, spi: number, peer: string): void {
    check(this.addon.espSaDel(DIR[dir], spi, peer), `remove ${dir}bound SA`);
  }

  saList(): SaState[] {
    return this.addon.espSaList().map(([dir, spi, vni, peer, seq]) => ({ dir: dir === DIR.out ? 'out' : 'in', spi, vni, peer, seq }));
  }

  delTap(vni: number): void {
    check(this.addon.vxlanDelTap(vni), 'detach tap');
  }

  fdbSet(vni: number, mac: Buffer, ip: string): void {
    check(this.addon.vxlanFdbSet(vni, mac, ip), 'fdb set');
  }

  fdbDel(vni: number, mac: Buffer): void {
    check(this.addon.vxlanFdbDel(vni, mac), 'fdb del');
  }

  setPeers(ips: string[]): void {
    check(this.addon.vxlanPeers(ips), 'vxlan peers');
  }

  write(vni: number, frame: Buffer): void {
    check(this.addon.vxlanTapWrite(vni, frame), 'tap write');
  }

  stats(): Record<EngineStat, number> {
    const raw = this.addon.vxlanStats();
    return Object.fromEntries(ENGINE_STATS.map((k, i) => [k, raw[i] ?? 0])) as Record<EngineStat, number>;
  }

  close(): void {
    this.addon.vxlanClose();
  }
}
