/** Reading iperf3's reports. */

/** Received datagrams/s from the receiver line of iperf3's server report ("... LOST/TOTAL (P%)  receiver"). */
export function serverReceived(text: string): number {
  const m = /(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)\s+sec\s.*?(\d+)\/(\d+)\s+\([^)]*\)\s+receiver/.exec(text);
  if (!m) throw new Error(`iperf3: no receiver line in the server's report: ${text.slice(-300)}`);
  const secs = Number(m[2]) - Number(m[1]);
  return (Number(m[4]) - Number(m[3])) / secs;
}
