/**
 * Peer `ws-naive`: ws@8 (bufferutil and utf-8-validate loaded by ws itself),
 * rooms as Sets, and every message re-sent with `client.send` to each member
 * of the sender's room, sender included. ws frames the message once per
 * recipient; that per-recipient cost is what this peer stands for.
 *
 * Slow consumers: ws buffers without bound, so dropped/closed are -1.
 *
 * Run: node --import tsx bench/peers/ws-naive.ts --port 0 [--jwt-secret-file FILE]
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import {
  HOST,
  WS_PATH,
  bearerCheck,
  connectionsOnly,
  parsePeerArgs,
  pathOf,
  peerReady,
  refuseUpgrade,
  roomOf,
} from './common.ts';

/** A ws socket that knows its room, so one shared listener serves every socket. */
class RoomSocket extends WebSocket {
  room: Set<RoomSocket> | undefined = undefined;
}

const options = parsePeerArgs();
const check = options.jwtSecret === undefined ? undefined : await bearerCheck(options.jwtSecret);
const rooms = new Map<string, Set<RoomSocket>>();
let connections = 0;

const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  clientTracking: false,
  WebSocket: RoomSocket,
});

// @types/ws types listeners' `this` as the base class; the server only creates RoomSockets.
function onMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
  const room = (this as RoomSocket).room;
  if (room === undefined) return;
  const sendOptions = { binary: isBinary };
  for (const member of room) member.send(data, sendOptions);
}

function onClose(this: WebSocket): void {
  connections--;
  const self = this as RoomSocket;
  const room = self.room;
  if (room === undefined) return;
  room.delete(self);
  self.room = undefined;
}

function accept(request: IncomingMessage, socket: Duplex, head: Buffer, name: string): void {
  wss.handleUpgrade(request, socket, head, (client) => {
    let room = rooms.get(name);
    if (room === undefined) rooms.set(name, (room = new Set()));
    room.add(client);
    client.room = room;
    connections++;
    client.on('message', onMessage);
    client.on('close', onClose);
  });
}

function destroy(this: Duplex): void {
  this.destroy();
}

const server = createServer();
server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
  if (pathOf(request.url) !== WS_PATH) return refuseUpgrade(socket, 404, 'Not Found');
  const name = roomOf(request.url);
  if (check === undefined) return accept(request, socket, head, name);
  socket.on('error', destroy);
  void check(request.headers.authorization).then((ok) =>
    ok ? accept(request, socket, head, name) : refuseUpgrade(socket, 401, 'Unauthorized'),
  );
});
server.listen(options.port, HOST, () => {
  const address = server.address();
  peerReady(
    typeof address === 'object' && address !== null ? address.port : options.port,
    connectionsOnly(() => connections),
  );
});
