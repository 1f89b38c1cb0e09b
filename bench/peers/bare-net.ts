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
import { createHash } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { HOST, WS_PATH, connectionsOnly, fail, parsePeerArgs, pathOf, peerReady } from './common.ts';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const MAX_REQUEST_BYTES = 16 * 1024;
const HEADER_END = Buffer.from('\r\n\r\n');
const KEY_PATTERN = /^sec-websocket-key:[ \t]*(\S+)[ \t]*$/im;

const options = parsePeerArgs();
if (options.jwtSecret !== undefined)
  fail('bare-net: --jwt-secret-file is not supported (idle reference only)', 2);

let connections = 0;
const partial = new WeakMap<Socket, Buffer>();

function acceptKey(key: string): string {
  return createHash('sha1')
    .update(key + WS_GUID)
    .digest('base64');
}

function refuse(socket: Socket, status: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

function onHandshakeData(this: Socket, chunk: Buffer): void {
  const earlier = partial.get(this);
  const data = earlier === undefined ? chunk : Buffer.concat([earlier, chunk]);
  const end = data.indexOf(HEADER_END);
  if (end < 0) {
    if (data.length > MAX_REQUEST_BYTES) return refuse(this, '431 Request Header Fields Too Large');
    partial.set(this, data);
    return;
  }
  partial.delete(this);
  this.removeListener('data', onHandshakeData);
  const head = data.toString('latin1', 0, end);
  const requestLine = head.slice(0, head.indexOf('\r\n'));
  const [method, target] = requestLine.split(' ');
  if (method !== 'GET' || pathOf(target) !== WS_PATH) return refuse(this, '404 Not Found');
  const key = KEY_PATTERN.exec(head)?.[1];
  if (key === undefined) return refuse(this, '400 Bad Request');
  this.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`,
  );
  connections++;
  this.on('close', onClose);
  // Flowing mode without a 'data' listener: incoming frames are read and dropped.
  this.resume();
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
