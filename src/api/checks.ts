/**
 * The agent's own pure checks, for clients that decide before they write (stack deploy
 * plans a whole compose file against the agent's state): the same code as the agent's,
 * so a plan never accepts what the agent would refuse, nor refuses what it accepts.
 */
export { aliasClash, normalizeAliases, contains, formatCidr, intToIp, ipToInt, matchPorts, normalizePorts, overlaps, parseCidr, type Cidr } from '../control/index.js';
