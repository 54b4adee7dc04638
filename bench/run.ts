/**
 * `npm run bench`: routing mesh vs direct vs HAProxy, then micro-benchmarks.
 *   --only mesh|micro   one part
 *   --rounds N          rounds per path (default 3; medians reported)
 *   --seconds S         seconds per measurement (default 4)
 *   --haproxy-threads T HAProxy nbthread (default 1: the mesh is one event loop)
 */
import { parseArgs } from 'node:util';
import { meshBench } from './mesh.js';
import { microBench } from './micro.js';

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '4' },
    'haproxy-threads': { type: 'string', default: '1' },
  },
});

if (!values.only || values.only === 'mesh') {
  await meshBench({ rounds: Number(values.rounds), seconds: Number(values.seconds), haproxyThreads: Number(values['haproxy-threads']) });
}
if (!values.only || values.only === 'micro') await microBench();
