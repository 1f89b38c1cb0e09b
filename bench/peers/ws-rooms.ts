/**
 * What the two ws@8 peers share: a `ws` server without its own http
 * server, rooms as Sets of sockets, the optional JWT check in the upgrade,
 * and the listening/stats protocol. Each peer passes only its way of
 * sending a message to a room.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
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

/** A ws socket that knows its room and its TCP socket, so shared listeners serve every socket. */
export class RoomSocket extends WebSocket {
  room: Set<RoomSocket> | undefined = undefined;
  tcp: Socket | undefined = undefined;
  corked = false;
}

/** Sends one received message to every member of `room` (the sender included). */
export type RoomSend = (room: Set<RoomSocket>, data: Buffer, isBinary: boolean) => void;

/** Starts the peer: listens, accepts upgrades into rooms, relays with `send`. */
export async function serveWsRooms(send: RoomSend): Promise<void> {
  const options = parsePeerArgs();
  const check = options.jwtSecret === undefined ? undefined : await bearerCheck(options.jwtSecret);
  const rooms = new Map<string, Set<RoomSocket>>();
  let connections = 0;

  const wss = new WebSocketServer({
    noServer: true,
    // --deflate: per-message compression with a fresh context per message, as the other peers do.
    perMessageDeflate: options.deflate ? { serverNoContextTakeover: true, threshold: 0 } : false,
    clientTracking: false,
    WebSocket: RoomSocket,
  });

  // @types/ws types listeners' `this` as the base class; the server only creates RoomSockets.
  function onMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
    const room = (this as RoomSocket).room;
    if (room !== undefined) send(room, data, isBinary);
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
      client.tcp = socket as Socket;
      connections++;
      client.on('message', onMessage);
      client.on('close', onClose);
    });
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
}

function destroy(this: Duplex): void {
  this.destroy();
}
