/** The UDP bench's packet rate is what the server received, read from the server's report. */
import t from 'tap';
import { serverReceived } from '../../bench/lib/iperf.js';

// Server reports of iperf 3.12 (text, as --get-server-output returns it), one path that
// delivered throughout and one whose flow stopped after 42,425 datagrams.
const delivered = `Accepted connection from 127.0.0.1, port 41234
[  5] local 127.0.79.2 port 5201 connected to 127.0.0.1 port 38051
[ ID] Interval           Transfer     Bitrate         Jitter    Lost/Total Datagrams
[  5]   0.00-1.00   sec  6.10 MBytes  51.2 Mbits/sec  0.007 ms  40000/140000 (29%)
- - - - - - - - - - - - - - - - - - - - - - - - -
[ ID] Interval           Transfer     Bitrate         Jitter    Lost/Total Datagrams
[  5]   0.00-3.00   sec  18.2 MBytes  50.9 Mbits/sec  0.007 ms  131716/430105 (31%)  receiver
`;
const stopped = `[  6]   0.00-3.00   sec   498 KBytes  1.36 Mbits/sec  0.068 ms  34453/42425 (81%)  receiver\n`;

t.equal(serverReceived(delivered), (430105 - 131716) / 3, 'received = total - lost, over the receiver interval');
t.equal(serverReceived(stopped), (42425 - 34453) / 3, 'a flow that stopped reads as what arrived, not what was sent');
t.throws(() => serverReceived('iperf3: error - unable to connect'), /no receiver line/, 'no report: an error, not a zero');
