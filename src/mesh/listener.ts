/** What a listener knows about the service it serves, and the per-service counters it keeps. */
import type { Protocol } from '../control/constants.js';
import type { ConnEntry, ConnTable } from './conntable.js';

export interface ListenerInfo {
  /** Service name (metrics label, conn ls). */
  service: string;
  protocol: Protocol;
  host: string;
  port: number;
  proxyProtocol: 'none' | 'v1' | 'v2';
}

/** Plain numbers bumped on the data path; metrics read them at scrape time. */
export interface ServiceCounters {
  active: number;
  total: number;
  bytesIn: number;
  bytesOut: number;
  noBackend: number;
  retries: number;
}

export function newCounters(): ServiceCounters {
  return { active: 0, total: 0, bytesIn: 0, bytesOut: 0, noBackend: 0, retries: 0 };
}

/** Puts a new flow (TCP session, UDP flow) in the connection table and the service counters. */
export function flowOpened(table: ConnTable, counters: ServiceCounters, flow: ConnEntry): void {
  table.add(flow);
  counters.active++;
  counters.total++;
}

/** The reverse of flowOpened, adding the flow's bytes to the service totals. */
export function flowClosed(table: ConnTable, counters: ServiceCounters, flow: ConnEntry, bytesIn: number, bytesOut: number): void {
  table.remove(flow);
  counters.active--;
  counters.bytesIn += bytesIn;
  counters.bytesOut += bytesOut;
}
