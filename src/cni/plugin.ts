/**
 * One invocation of the plugin, as a runtime makes it (CNI spec section 2):
 *
 *   CNI_* environment -> stdin (the network configuration) -> the command against the
 *   agent -> stdout: the ADD result, the VERSION reply, nothing (DEL, CHECK, GC, STATUS)
 *   or the error reply; exit status 0 or 1
 *
 * Input and output are passed in and returned, so the whole flow runs without a process.
 */
// The client and transport modules themselves, not api/index.js: that one loads the request
// schemas (TypeBox, ~0.2 s), and a runtime starts this plugin for every container.
import { ApiClient } from '../api/client.js';
import { transport } from '../api/transport.js';
import { ERR } from './constants.js';
import { parseConfig, parseEnv, versionOf } from './config.js';
import { runCommand } from './commands.js';
import { CniError } from './errors.js';
import { errorReply, versionReply } from './result.js';

/** Exit status of a failed invocation (the spec asks for non-zero; libcni's plugins use 1). */
export const EXIT_FAILURE = 1;

export interface PluginInput {
  env: Record<string, string | undefined>;
  /** The configuration text, or the error reading stdin failed with. */
  stdin: string | Error;
  /** Where the agent listens when the configuration does not say. */
  defaultSocket: string;
  /** The API client for a socket path (tests may pass their own). */
  client?: (socket: string) => ApiClient;
}

export interface PluginOutput {
  /** What goes to stdout ('' for none). */
  stdout: string;
  exitCode: number;
  /** Lines for stderr (the runtime's log). */
  stderr: string[];
}

const unixClient = (socket: string) => new ApiClient(transport({ kind: 'unix', path: socket }));

export async function invoke(input: PluginInput): Promise<PluginOutput> {
  const stderr: string[] = [];
  const text = typeof input.stdin === 'string' ? input.stdin : '';
  try {
    const env = parseEnv(input.env);
    if (typeof input.stdin !== 'string') throw new CniError(ERR.IO, 'cannot read the network configuration from stdin', input.stdin.message);
    if (env.command === 'VERSION') return { stdout: JSON.stringify(versionReply(versionOf(text))), exitCode: 0, stderr };
    const conf = parseConfig(text, env.command, input.defaultSocket);
    const api = (input.client ?? unixClient)(conf.socket);
    const result = await runCommand({ env, conf, api, warn: (line) => stderr.push(line) });
    return { stdout: result ? JSON.stringify(result) : '', exitCode: 0, stderr };
  } catch (err) {
    if (!(err instanceof CniError)) stderr.push(`swarmnet-cni: ${(err as Error).stack ?? String(err)}`);
    return { stdout: JSON.stringify(errorReply(err, versionOf(text), ERR.AGENT)), exitCode: EXIT_FAILURE, stderr };
  }
}
