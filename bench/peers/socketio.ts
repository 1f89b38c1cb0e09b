/**
 * Peer `socketio`: Socket.IO 4 on a node:http server, WebSocket transport
 * only (no polling, no compression, no client bundle). A client connects to
 * `/socket.io/?EIO=4&transport=websocket&room=NAME` and joins the room from
 * its handshake query; every `m` event is emitted to the whole room with
 * `io.to(room)`, which includes the sender. Payloads go through as given
 * (the load generator sends text; binary attachments would also work).
 *
 * Heartbeat: Socket.IO's defaults (ping every 25 s). Slow consumers: no
 * bound, so dropped/closed are -1.
 *
 * Run: node --import tsx bench/peers/socketio.ts --port 0 [--jwt-secret-file FILE]
 */
import { createServer, type IncomingMessage } from 'node:http';
import { Server, type Socket } from 'socket.io';
import { DEFAULT_ROOM, HOST, bearerCheck, connectionsOnly, parsePeerArgs, peerReady } from './common.ts';

interface ClientEvents {
  m: (payload: unknown) => void;
}
interface ServerEvents {
  m: (payload: unknown) => void;
}
type RoomSocket = Socket<ClientEvents, ServerEvents, Record<string, never>, string>;

const options = parsePeerArgs();
const check = options.jwtSecret === undefined ? undefined : await bearerCheck(options.jwtSecret);

const httpServer = createServer();
const io = new Server<ClientEvents, ServerEvents, Record<string, never>, string>(httpServer, {
  transports: ['websocket'],
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  ...(check === undefined
    ? {}
    : {
        allowRequest: (request: IncomingMessage, answer: (err: string | null, ok: boolean) => void) => {
          void check(request.headers.authorization).then((ok) => answer(ok ? null : 'unauthorized', ok));
        },
      }),
});

function onMessage(this: RoomSocket, payload: unknown): void {
  io.to(this.data).emit('m', payload);
}

io.on('connection', (socket: RoomSocket) => {
  const query = socket.handshake.query.room;
  const room = (typeof query === 'string' && query !== '' ? query : undefined) ?? DEFAULT_ROOM;
  socket.data = room;
  void socket.join(room);
  socket.on('m', onMessage);
});

httpServer.listen(options.port, HOST, () => {
  const address = httpServer.address();
  peerReady(
    typeof address === 'object' && address !== null ? address.port : options.port,
    connectionsOnly(() => io.engine.clientsCount),
  );
});
