/** FrameEngine on the native addon's VXLAN engine (one per process). */
import { check, loadAddon, type Addon } from '../native/index.js';
import { ENGINE_STATS, type EngineStat } from './constants.js';
import type { FrameEngine } from './types.js';

export class NativeEngine implements FrameEngine {
  private constructor(private readonly addon: Addon) {}

  /** Binds UDP ip:port and starts the engine's threads. */
  static open(ip: string, port: number, onControl: (vni: number, frame: Buffer) => void): NativeEngine {
    const addon = loadAddon();
    if (!addon) throw Object.assign(new Error('the native addon is not built (npm ci builds it with node-gyp); the overlay needs it for TAP devices'), { code: 'ENOADDON' });
    check(addon.vxlanOpen(ip, port, onControl), `vxlan bind ${ip}:${port}`);
    return new NativeEngine(addon);
  }

  addTap(vni: number, name: string, mtu: number): void {
    const fd = check(this.addon.tapOpen(name, mtu), `open tap ${name}`);
    check(this.addon.vxlanAddTap(vni, fd), `attach tap ${name}`);
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
