/**
 * The independent ESP implementation of the encrypted-overlay tests: test/fixtures/esp.py
 * (scapy's SecurityAssociation) run by the system Python, JSON in and out. The system
 * one on purpose: python3-scapy is a Debian package, and the first python3 on PATH may
 * be another (pyenv) without it.
 *
 * esp.py is not compiled by tsc, so it is read from the source tree: this file runs as
 * dist/test/helpers/scapy.js, three levels below the repository root.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Cipher, SaEnds } from '../../src/overlay/index.js';

export const PYTHON = '/usr/bin/python3';
export const ESP_PY = fileURLToPath(new URL('../../../test/fixtures/esp.py', import.meta.url));
const TIMEOUT_MS = 60000;

let availability: string | null | undefined;
/** Why esp.py cannot run here (no system Python, no scapy), or null when it can. */
export function scapyMissing(): string | null {
  if (availability !== undefined) return availability;
  if (!existsSync(ESP_PY)) return (availability = `${ESP_PY} not found`);
  const r = spawnSync(PYTHON, ['-c', 'import scapy.layers.ipsec, cryptography'], { encoding: 'utf8', timeout: TIMEOUT_MS });
  availability = r.status === 0 ? null : `${PYTHON} cannot import scapy (Debian python3-scapy): ${(r.error?.message ?? r.stderr).trim()}`;
  return availability;
}

/** Runs `esp.py cmd` with `input` as JSON on stdin; resolves with its JSON reply. */
export function espPy<T>(cmd: 'derive' | 'decrypt' | 'encrypt', input: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [ESP_PY, cmd], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`esp.py ${cmd} exited with ${code ?? signal}: ${stderr.trim()}`));
      try {
        resolve(JSON.parse(stdout) as T);
      } catch (err) {
        reject(new Error(`esp.py ${cmd}: not JSON: ${stdout.slice(0, 200)}`, { cause: err }));
      }
    });
    child.stdin.end(JSON.stringify(input));
  });
}

// ---- derive -------------------------------------------------------------------------

/** The ends of an SA (as src/overlay/esp.ts names them), the ring key and the cipher. */
export interface DeriveInput extends SaEnds {
  ringKey: Buffer;
  cipher: Cipher;
}

/** The parameters of one SA, as esp.py takes them. */
export interface EspSa {
  /** AES key without the salt, 16 or 32 bytes. */
  key: Buffer;
  salt: Buffer;
  spi: number;
}

/** The SA esp.py derives (its own HKDF) for these ends. */
export async function deriveSaPy(i: DeriveInput): Promise<EspSa> {
  const r = await espPy<{ key: string; salt: string; spi: number }>('derive', { ...i, ringKey: i.ringKey.toString('hex') });
  return { key: Buffer.from(r.key, 'hex'), salt: Buffer.from(r.salt, 'hex'), spi: r.spi };
}

// ---- encrypt ------------------------------------------------------------------------

interface EncryptBase {
  /** The 64-bit sequence number (ESN): high 32 bits in the AAD only, low 32 on the wire. */
  seq: bigint;
  /** Outer (node) addresses. */
  src: string;
  dst: string;
  vni: number;
  /** The 8-byte explicit IV; random (as scapy does) when absent. */
  iv?: Buffer;
}

/** An inner Ethernet/IPv4/UDP frame built by scapy... */
export interface EncryptUdp extends EncryptBase {
  ethSrc: string;
  ethDst: string;
  innerSrc: string;
  innerDst: string;
  sport: number;
  dport: number;
  payload: Buffer;
}

/** ...or any inner Ethernet frame. */
export interface EncryptFrame extends EncryptBase {
  frame: Buffer;
}

export type EncryptRequest = EncryptUdp | EncryptFrame;

function encryptJson(r: EncryptRequest): Record<string, unknown> {
  const out: Record<string, unknown> = { ...r, seq: r.seq.toString() };
  for (const k of ['iv', 'payload', 'frame'] as const) {
    const v = (r as unknown as Record<string, unknown>)[k];
    if (Buffer.isBuffer(v)) out[k] = v.toString('hex');
  }
  return out;
}

/**
 * Whole IPv4 packets (IP | UDP 4500 | ESP) sealed by scapy under `sa`, ready for
 * rawsend's sendIpv4. `send` also has scapy send them (layer 3, this namespace).
 */
export async function espEncrypt(sa: EspSa, reqs: EncryptRequest[], o: { send?: boolean } = {}): Promise<Buffer[]> {
  const r = await espPy<{ packets: string[] }>('encrypt', { ...saJson(sa), packets: reqs.map(encryptJson), send: o.send ?? false });
  return r.packets.map((p) => Buffer.from(p, 'hex'));
}

// ---- decrypt ------------------------------------------------------------------------

export interface Decrypted {
  ok: true;
  spi: number;
  /** Low 32 bits, as on the wire. */
  seq: number;
  /** The high 32 bits the decryption assumed. */
  esn: number;
  outer: { src: string; dst: string; sport: number; dport: number; udpChecksum: number };
  iv: Buffer;
  padding: Buffer;
  padLen: number;
  nextHeader: number;
  /** The decrypted transport-mode payload: inner UDP header | VXLAN header | frame. */
  inner: Buffer;
  innerUdp: { sport: number; dport: number; length: number; checksum: number };
  vni?: number;
  vxlanFlags?: number;
  frame?: Buffer;
  ethSrc?: string;
  ethDst?: string;
  etherType?: number;
  ip?: { src: string; dst: string; proto: number; payload: Buffer };
  udp?: { sport: number; dport: number; payload: Buffer };
}

export interface DecryptFailed {
  ok: false;
  /** spi: another SA's packet; integrity: ICV check failed (key, ESN, tampering); format: not ESP in UDP. */
  error: 'spi' | 'integrity' | 'format';
  message: string;
  spi?: number;
  seq?: number;
}

export type DecryptResult = Decrypted | DecryptFailed;

function saJson(sa: EspSa): Record<string, unknown> {
  return { key: sa.key.toString('hex'), salt: sa.salt.toString('hex'), spi: sa.spi };
}

const hexFields = ['iv', 'padding', 'inner', 'frame'] as const;

/**
 * Decrypts captured IPv4 packets (rawsend/capture's ipv4Packet of a frame) with scapy.
 * `esn` is the high 32 bits of the sequence number assumed (one for all, or per packet).
 */
export async function espDecrypt(sa: EspSa, packets: Buffer[], esn: number | number[] = 0): Promise<DecryptResult[]> {
  const items = packets.map((p, i) => (Array.isArray(esn) ? { packet: p.toString('hex'), esn: esn[i] ?? 0 } : p.toString('hex')));
  const r = await espPy<{ results: Array<Record<string, unknown>> }>('decrypt', { ...saJson(sa), esn: Array.isArray(esn) ? 0 : esn, packets: items });
  return r.results.map((x) => {
    if (!x.ok) return x as unknown as DecryptFailed;
    for (const k of hexFields) if (typeof x[k] === 'string') x[k] = Buffer.from(x[k] as string, 'hex');
    for (const k of ['ip', 'udp'] as const) {
      const sub = x[k] as { payload: string } | undefined;
      if (sub) (sub as unknown as { payload: Buffer }).payload = Buffer.from(sub.payload, 'hex');
    }
    return x as unknown as Decrypted;
  });
}
