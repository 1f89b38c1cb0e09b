/**
 * Peer `ws-preframed`: ws@8 for the handshake and parsing, but broadcasts
 * bypass ws's sender: the frame is encoded once with `Sender.frame` (one
 * Buffer for header and payload) and that same Buffer is written to every
 * member's TCP socket. Each socket is corked at its first write in an
 * event-loop turn and uncorked once in the check phase (setImmediate), so
 * all frames a socket got during the turn leave in one writev.
 *
 * Slow consumers: nothing bounds the socket buffers, so dropped/closed are -1.
 *
 * Run: node --import tsx bench/peers/ws-preframed.ts --port 0 [--jwt-secret-file FILE]
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import * as wsModule from 'ws';
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

interface FrameOptions {
  fin: boolean;
  opcode: number;
  mask: boolean;
  readOnly: boolean;
  rsv1: boolean;
}

/** ws's Sender class is public at runtime but absent from @types/ws. */
const Sender = (wsModule as unknown as { Sender: { frame(data: Buffer, options: FrameOptions): Buffer[] } })
  .Sender;

const TEXT: FrameOptions = { fin: true, opcode: 0x1, mask: false, readOnly: false, rsv1: false };
const BINARY: FrameOptions = { fin: true, opcode: 0x2, mask: false, readOnly: false, rsv1: false };

/** A ws socket with its room and its raw TCP socket at hand. */
class RoomSocket extends WebSocket {
  room: Set<RoomSocket> | undefined = undefined;
  tcp: Socket | undefined = undefined;
  corked = false;
}

const options = parsePeerArgs();
const check = options.jwtSecret === undefined ? undefined : await bearerCheck(options.jwtSecret);
const rooms = new Map<string, Set<RoomSocket>>();
let connections = 0;

/** Sockets corked during this event-loop turn. */
let corked: RoomSocket[] = [];
let flushScheduled = false;

function flush(): void {
  const list = corked;
  corked = [];
  flushScheduled = false;
  for (const member of list) {
    member.corked = false;
    member.tcp?.uncork();
  }
}

function frameOf(data: Buffer, isBinary: boolean): Buffer {
  const parts = Sender.frame(data, isBinary ? BINARY : TEXT);
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}

// @types/ws types listeners' `this` as the base class; the server only creates RoomSockets.
function onMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
  const room = (this as RoomSocket).room;
  if (room === undefined) return;
  const frame = frameOf(data, isBinary);
  for (const member of room) {
    const tcp = member.tcp;
    if (tcp === undefined || member.readyState !== WebSocket.OPEN) continue;
    if (!member.corked) {
      member.corked = true;
      tcp.cork();
      corked.push(member);
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flush);
      }
    }
    tcp.write(frame);
  }
}

function onClose(this: WebSocket): void {
  connections--;
  const self = this as RoomSocket;
  const room = self.room;
  if (room === undefined) return;
  room.delete(self);
  self.room = undefined;
}

const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  clientTracking: false,
  WebSocket: RoomSocket,
});

function accept(request: IncomingMessage, socket: Duplex, head: Buffer, name: string): void {
  wss.handleUpgrade(request, socket, head, (client) => {
    let room = rooms.get(name);
    if (room === undefined) rooms.set(name, (room = new Set()));
    room.add(client);
    client.room = room;
    client.tcp = socket as Socket;
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
