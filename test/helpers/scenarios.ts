/** Scenarios shared by the native-relay and JS-relay test files. */
import type { Test, TestOpts } from 'tap';
import type { BuiltPlugins } from '@tapjs/test';
import type { AgentProc, BackendProc } from './procs.js';
import { countBy, tcpRequest } from './net.js';

type T = Test<BuiltPlugins, TestOpts> & BuiltPlugins;

/**
 * Requests at concurrency 8 through a service of three tasks; one task process is
 * SIGKILLed a third of the way in. No client request may fail.
 */
export async function killMidRun(t: T, agent: AgentProc, procs: BackendProc[], port: number, total: number): Promise<string[]> {
  let sent = 0;
  const failures: string[] = [];
  const served: string[] = [];
  const worker = async () => {
    while (sent < total) {
      const n = ++sent;
      if (n === Math.floor(total / 3)) procs[1]!.kill();
      try {
        served.push((await tcpRequest(agent.ingress, port, `r${n}`)).split(' ')[0]!);
      } catch (err) {
        failures.push(`r${n}: ${(err as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  t.same(failures, [], 'no client saw a failure');
  t.equal(served.length, total);
  const tail = countBy(served.slice(-Math.floor(total / 3)));
  t.notOk([...tail.keys()].some((k) => k.endsWith('2')), 'after the kill, the dead task gets no requests');
  t.equal(tail.size, 2, 'the two survivors share the load');
  const retries = /swarmnet_service_retries_total\{service="[^"]+"\} (\d+)/.exec(await agent.metrics());
  t.ok(Number(retries?.[1]) >= 1, `the mesh retried on another task (${retries?.[1]} retries), hiding the failure`);
  return served;
}
