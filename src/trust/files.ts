/**
 * The trust material on disk:
 *
 *   <dataDir>/trust/          0700
 *     ca.pem                  0644  root CA certificate (every node)
 *     ca-key.pem              0600  root CA key (managers only)
 *     node.pem                0644  this node's certificate
 *     node-key.pem            0600  this node's key
 *
 * Each file is replaced atomically (write a temporary file in the same directory, fsync, rename,
 * fsync the directory), so a crash leaves the old file or the new one, never half of one. Keys are
 * written before their certificates, so a certificate on disk always has its key. Key files are
 * created with mode 0600 by open(2) itself (O_CREAT|O_EXCL): the umask can only narrow that, so a
 * key is never readable by others, not even between create and chmod. nats-server reads these paths
 * directly (tls cert_file/key_file/ca_file), hence trustPaths().
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isCode } from '../util/errors.js';
import { TrustFileError } from './errors.js';

export interface TrustMaterial {
  caCertPem?: string;
  caKeyPem?: string;
  nodeCertPem?: string;
  nodeKeyPem?: string;
}

export interface TrustPaths {
  dir: string;
  caCert: string;
  caKey: string;
  nodeCert: string;
  nodeKey: string;
}

const DIR_MODE = 0o700;
const KEY_MODE = 0o600;
const CERT_MODE = 0o644;
/** Group and other permission bits: none may be set on a key file. */
const GROUP_OTHER_BITS = 0o077;
/** Random bytes in a temporary file's name, so concurrent writers never share one. */
const TMP_SUFFIX_BYTES = 6;

type Field = keyof TrustMaterial;

/** Write order: each key before its certificate. */
const FILES: ReadonlyArray<{ field: Field; path: Exclude<keyof TrustPaths, 'dir'>; mode: number }> = [
  { field: 'caKeyPem', path: 'caKey', mode: KEY_MODE },
  { field: 'caCertPem', path: 'caCert', mode: CERT_MODE },
  { field: 'nodeKeyPem', path: 'nodeKey', mode: KEY_MODE },
  { field: 'nodeCertPem', path: 'nodeCert', mode: CERT_MODE },
];

export function trustPaths(dataDir: string): TrustPaths {
  const dir = join(dataDir, 'trust');
  return { dir, caCert: join(dir, 'ca.pem'), caKey: join(dir, 'ca-key.pem'), nodeCert: join(dir, 'node.pem'), nodeKey: join(dir, 'node-key.pem') };
}

/** Writes the given fields (others are left as they are on disk). */
export async function saveTrust(dataDir: string, material: TrustMaterial): Promise<void> {
  const paths = trustPaths(dataDir);
  await mkdir(dataDir, { recursive: true });
  await mkdir(paths.dir, { mode: DIR_MODE }).catch((err: unknown) => {
    if (!isCode(err, 'EEXIST')) throw err;
  });
  // An existing directory keeps its mode through mkdir; narrow it.
  await chmod(paths.dir, DIR_MODE);
  for (const f of FILES) {
    const data = material[f.field];
    if (data !== undefined) await writeAtomic(paths[f.path], data, f.mode);
  }
  await syncDir(paths.dir);
}

/**
 * What exists under <dataDir>/trust, or undefined when none of it does (a node that never joined).
 * Throws TrustFileError for a key file readable by group or others, as ssh refuses such a key.
 */
export async function loadTrust(dataDir: string): Promise<TrustMaterial | undefined> {
  const paths = trustPaths(dataDir);
  const out: TrustMaterial = {};
  for (const f of FILES) {
    const data = await readIfExists(paths[f.path], f.mode === KEY_MODE);
    if (data !== undefined) out[f.field] = data;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Deletes <dataDir>/trust and everything in it (leaving the cluster). */
export async function removeTrust(dataDir: string): Promise<void> {
  await rm(trustPaths(dataDir).dir, { recursive: true, force: true });
}

/** Writes `data` to `path` atomically, the file created with `mode` from its first byte (other secrets than trust's use it too). */
export async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${randomBytes(TMP_SUFFIX_BYTES).toString('hex')}.tmp`;
  // 'wx' = O_CREAT|O_EXCL: a fresh inode created with `mode`, never an existing file reused.
  const fh = await open(tmp, 'wx', mode);
  try {
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

async function readIfExists(path: string, secret: boolean): Promise<string | undefined> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if (isCode(err, 'ENOENT')) return undefined;
    throw err;
  }
  try {
    // fstat on the open file: the mode checked is the mode of the bytes read.
    const { mode } = await fh.stat();
    if (secret && (mode & GROUP_OTHER_BITS) !== 0) {
      throw new TrustFileError(`private key has mode 0${(mode & 0o777).toString(8)}: group or others may access it (chmod 600 it)`, path);
    }
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

/** fsync(2) on the directory makes the renames in it durable (POSIX leaves them in the page cache). */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
