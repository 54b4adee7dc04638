#!/usr/bin/env node
/**
 * swarmnet-cni: the CNI plugin executable. A runtime runs it with CNI_COMMAND and the
 * other CNI_* variables set and the network configuration on stdin (docs/cni.md).
 */
import { defaultSocket } from '../api/defaults.js'; // not api/index.js: see plugin.ts
import { invoke } from './plugin.js';

async function readStdin(): Promise<string | Error> {
  // A terminal is no configuration (someone ran the plugin by hand): read nothing.
  if (process.stdin.isTTY) return '';
  try {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks).toString('utf8');
  } catch (err) {
    return err as Error;
  }
}

const out = await invoke({ env: process.env, stdin: await readStdin(), defaultSocket: defaultSocket() });
for (const line of out.stderr) process.stderr.write(`${line}\n`);
if (out.stdout) process.stdout.write(`${out.stdout}\n`);
process.exitCode = out.exitCode;
