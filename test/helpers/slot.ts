/**
 * A number from 20 to 219 held by this test process alone, for names and addresses
 * that must not clash between test files running in parallel (namespaces sn<slot>...,
 * 10.213.<slot>.0/24, 127.<slot>.x.x). `pid % 200` alone clashes: a suite spawns
 * hundreds of processes, so two live test files' pids can differ by a multiple of 200.
 *
 * A slot is a directory made with mkdir (atomic) holding the owner's pid; a slot whose
 * owner is dead is taken over.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterCleanups } from './cleanup.js';

const DIR = '/tmp/swarmnet-test-slots';
let mine: number | undefined;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function tryTake(dir: string): boolean {
  try {
    mkdirSync(dir);
    return true;
  } catch {
    let owner = NaN;
    try {
      owner = Number(readFileSync(join(dir, 'pid'), 'utf8'));
    } catch {
      return false; // being created right now
    }
    if (!Number.isInteger(owner) || alive(owner)) return false;
    // Take the dead owner's directory away by renaming it: of two processes doing this
    // at once only one rename succeeds. Removing it instead could remove the directory
    // the other had just made, and both would hold the slot.
    const grave = `${dir}.dead.${process.pid}`;
    try {
      renameSync(dir, grave);
    } catch {
      return false;
    }
    rmSync(grave, { recursive: true, force: true });
    try {
      mkdirSync(dir);
      return true;
    } catch {
      return false; // another process took it over first
    }
  }
}

export function testSlot(): number {
  if (mine !== undefined) return mine;
  mkdirSync(DIR, { recursive: true });
  for (let k = 0; k < 200; k++) {
    const slot = 20 + ((process.pid + k) % 200);
    const dir = join(DIR, String(slot));
    if (!tryTake(dir)) continue;
    writeFileSync(join(dir, 'pid'), String(process.pid));
    afterCleanups(() => rmSync(dir, { recursive: true, force: true }));
    mine = slot;
    return slot;
  }
  throw new Error(`no free test slot in ${DIR}`);
}
