/**
 * `npm run bench`: routing mesh vs direct vs HAProxy, then micro-benchmarks.
 *   --only mesh|micro|control|dns|overlay   one part
 *   --agents 3,10,30    control: cluster sizes for convergence
 *   --samples N         control: writes per size (default 50)
 *   --rounds N          rounds per path (default 3; medians reported)
 *   --seconds S         seconds per measurement (default 4)
 *   --haproxy-threads T HAProxy nbthread (default 1: the mesh is one event loop)
 */
import { parseArgs } from 'node:util';
import { meshBench } from './mesh.js';
import { microBench } from './micro.js';
import { controlBench } from './control.js';
import { dnsBench } from './dns.js';
import { overlayBench } from './overlay.js';

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '4' },
    'haproxy-threads': { type: 'string', default: '1' },
    agents: { type: 'string', default: '3,10,30' },
    samples: { type: 'string', default: '50' },
    services: { type: 'string', default: '1000' },
    tasks: { type: 'string', default: '10' },
  },
});

if (!values.only || values.only === 'mesh') {
  await meshBench({ rounds: Number(values.rounds), seconds: Number(values.seconds), haproxyThreads: Number(values['haproxy-threads']) });
}
if (!values.only || values.only === 'micro') await microBench();
if (!values.only || values.only === 'dns') {
  await dnsBench({ rounds: Number(values.rounds), seconds: Number(values.seconds), services: 200 });
}
if (!values.only || values.only === 'overlay') {
  await overlayBench({ rounds: Number(values.rounds), seconds: Number(values.seconds) });
}
if (!values.only || values.only === 'control') {
  await controlBench({
    sizes: values.agents.split(',').map(Number),
    samples: Number(values.samples),
    services: Number(values.services),
    tasksPerService: Number(values.tasks),
  });
}
