/** Reading iperf3's reports. */

/**
 * The client arguments of the 64-byte UDP measure (unlimited rate, one flow), JSON out
 * with the server's own report inside it: only the server knows what was delivered.
 * The client's `packets` is what it sent and its `lost_packets` the gaps the server saw
 * below the highest sequence number that arrived, so a path that stops delivering
 * part-way reads from the client's JSON as a fast path with no loss (the JS path did:
 * 170,000 "pkt/s" while the server received 2,600/s).
 */
export function udp64Args(host: string, port: number, seconds: number): string[] {
  return ['-c', host, '-p', String(port), '-u', '-b', '0', '-l', '64', '-t', String(seconds), '-J', '--get-server-output'];
}

/** Received datagrams/s from the JSON of a udp64Args run. */
export function udpReceivedRate(json: { server_output_text?: string }): number {
  return serverReceived(json.server_output_text ?? '');
}

/** Received datagrams/s from the receiver line of iperf3's server report ("... LOST/TOTAL (P%)  receiver"). */
export function serverReceived(text: string): number {
  const m = /(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)\s+sec\s.*?(\d+)\/(\d+)\s+\([^)]*\)\s+receiver/.exec(text);
  if (!m) throw new Error(`iperf3: no receiver line in the server's report: ${text.slice(-300)}`);
  const secs = Number(m[2]) - Number(m[1]);
  return (Number(m[4]) - Number(m[3])) / secs;
}
