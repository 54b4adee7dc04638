/** The swarmnet CNI plugin (a client of src/api): one invocation, its parsing and its replies. */
export { invoke, EXIT_FAILURE, type PluginInput, type PluginOutput } from './plugin.js';
export { parseArgs, parseConfig, parseEnv, usableAliases, versionOf } from './config.js';
export { addResult, errorReply, versionReply } from './result.js';
export { fromApi } from './commands.js';
export { CniError } from './errors.js';
export { ERR, SUPPORTED_VERSIONS, CURRENT_VERSION, type CniCommand, type CniVersion } from './constants.js';
export type * from './types.js';
