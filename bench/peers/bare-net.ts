/**
 * Peer `bare-net`: the idle-memory floor. A plain node:net server completes
 * the WebSocket handshake by hand (Sec-WebSocket-Accept from node:crypto),
 * then holds the socket in flowing mode and discards whatever arrives. It
 * keeps no per-connection state beyond the net.Socket itself: listeners are
 * shared functions, and a request split over several reads (rare on
 * loopback) is buffered in a WeakMap until complete.
 *
 * It does not relay messages and has no JWT variant; the orchestrator only
 * uses it for idle connections. dropped/closed are -1.
 *
 * Run: node --import tsx bench/peers/bare-net.ts --port 0
 */
import { createServer } from 'node:net';
import { HOST, connectionsOnly, fail, parsePeerArgs, peerReady } from './common.ts';
import { rawUpgrade } from './raw-upgrade.ts';

const options = parsePeerArgs();
if (options.jwtSecret !== undefined)
  fail('bare-net: --jwt-secret-file is not supported (idle reference only)', 2);

let connections = 0;

const onHandshakeData = rawUpgrade((socket) => {
  connections++;
  socket.on('close', onClose);
  // Flowing mode without a 'data' listener: incoming frames are read and dropped.
  socket.resume();
});

function onClose(): void {
  connections--;
}

function ignore(): void {}

const server = createServer((socket) => {
  socket.on('error', ignore);
  socket.on('data', onHandshakeData);
});
server.listen(options.port, HOST, () => {
  const address = server.address();
  peerReady(
    typeof address === 'object' && address !== null ? address.port : options.port,
    connectionsOnly(() => connections),
  );
});
