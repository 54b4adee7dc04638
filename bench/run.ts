/** `npm run bench`: the benchmarks of docs/bench.md, each against a named peer; options in USAGE. */
import { parseArgs } from 'node:util';
import { meshBench } from './mesh.js';
import { microBench } from './micro.js';
import { controlBench } from './control.js';
import { dnsBench } from './dns.js';
import { overlayBench } from './overlay.js';
import { udpBench } from './udp.js';
import { results } from './lib/results.js';

const USAGE = `usage: npm run bench -- [options]   (or node dist/bench/run.js [options])
  --only mesh|udp|micro|control|dns|overlay   one part (default: all)
  --rounds N          rounds per path (default 3; medians reported)
  --seconds S         seconds per measurement (default 4)
  --threads 1,2       mesh: thread counts compared (HAProxy nbthread, swarmnet agent --threads)
  --agents 3,10,30    control: cluster sizes for convergence
  --samples N         control: writes per size (default 50)
  --services N        control: services of the load test (default 1000)
  --tasks N           control: tasks per service of the load test (default 10)
peers: iperf3, wrk, haproxy (optional), dnsperf, dnsmasq, nats-server; overlay needs root (docs/bench.md).`;

const { values } = parseArgs({
  options: {
    help: { type: 'boolean', short: 'h' },
    only: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '4' },
    threads: { type: 'string', default: '1,2' },
    agents: { type: 'string', default: '3,10,30' },
    samples: { type: 'string', default: '50' },
    services: { type: 'string', default: '1000' },
    tasks: { type: 'string', default: '10' },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

if (!values.only || values.only === 'mesh') {
  await meshBench({ rounds: Number(values.rounds), seconds: Number(values.seconds), threads: values.threads.split(',').map(Number) });
}
if (!values.only || values.only === 'udp') await udpBench({ rounds: Number(values.rounds), seconds: Number(values.seconds) });
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

// Every run leaves its figures: JSON and a chart per measure in bench/results/, the
// history of each measure in docs/bench/ (docs/bench.md).
Object.assign(results.run.options, values);
const written = await results.save();
if (written.length) process.stderr.write(`figures and charts written: ${written.join(', ')}\n`);
