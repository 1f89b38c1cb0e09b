/**
 * Peer `bare-net`: the floor of a node:net server. A plain node:net server
 * completes the WebSocket handshake by hand (Sec-WebSocket-Accept from
 * node:crypto; with --jwt-secret-file, the `Authorization: Bearer` token
 * checked with jose first, as the other peers do), then holds the socket in
 * flowing mode and discards whatever arrives, except that a chunk starting
 * with a close frame is answered with a close frame and the socket ended.
 * It keeps no per-connection state beyond the net.Socket itself: listeners
 * are shared functions, and a request split over several reads (rare on
 * loopback) is buffered in a WeakMap until complete.
 *
 * It does not relay messages; the orchestrator uses it for idle memory (the
 * memory floor) and for handshakes (the CPU floor of an upgrade on node:net).
 * dropped/closed are -1.
 *
 * Run: node --import tsx bench/peers/bare-net.ts --port 0 [--jwt-secret-file FILE]
 */
import { createServer, type Socket } from 'node:net';
import { HOST, bearerCheck, connectionsOnly, parsePeerArgs, peerReady } from './common.ts';
import { CLOSE_FRAME, rawUpgrade, startsWithClose } from './raw-upgrade.ts';

const options = parsePeerArgs();
const check = options.jwtSecret === undefined ? undefined : await bearerCheck(options.jwtSecret);

let connections = 0;

const onHandshakeData = rawUpgrade((socket, rest) => {
  connections++;
  socket.on('close', onClose);
  socket.on('data', onFrames);
  if (rest.length > 0) onFrames.call(socket, rest);
}, check);

/** Discards frames; a chunk that starts with a close frame is answered and the socket ended. */
function onFrames(this: Socket, chunk: Buffer): void {
  if (startsWithClose(chunk)) this.end(CLOSE_FRAME);
}

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
