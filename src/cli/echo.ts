/**
 * `wshub echo`: a WebSocket echo server on any path, the target of the
 * conformance and interop suites and a debugging aid. It selects the first
 * subprotocol a client offers and applies no application-level validation
 * (RFC 6455 rules, UTF-8 included, still hold). permessage-deflate is
 * negotiated when offered (default settings), unless `--no-deflate`.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { boundedServerOptions, completeUpgrade, reject, selectProtocol } from '../upgrade/respond.ts';
import { Connection, defaultConnectionOptions, type ConnectionHandlers } from '../connection/connection.ts';
import { CloseCode } from '../protocol/close.ts';
import { Opcode } from '../protocol/frame.ts';
import { checkHandshake, readHandshake } from '../upgrade/handshake.ts';
import { HttpRejection, refusal } from '../http/rejections.ts';
import { DeflateEndpoint, defaultDeflateSettings } from '../protocol/deflate.ts';
import { intFlag, parseFlags } from './args.ts';

/** Past this many unsent bytes the echo stops reading until the client has read its replies. */
const ECHO_HIGH_WATER = 1024 * 1024;

/**
 * Sends every message back with its own opcode. A client that sends faster
 * than it reads is throttled by pausing the socket (TCP backpressure), so
 * no echo is ever dropped; the queue is sized for the most messages one
 * TCP read can carry.
 */
function echo(conn: Connection, data: Buffer, binary: boolean): void {
  conn.send(binary ? Opcode.BINARY : Opcode.TEXT, data).catch(() => {});
  const socket = conn.socket;
  if (conn.bufferedBytes > ECHO_HIGH_WATER && !socket.isPaused()) {
    socket.pause();
    socket.once('drain', () => socket.resume());
  }
}

/** Creates (without starting) an echo server; `deflate: false` never negotiates permessage-deflate. */
export function createEchoServer(options_: { deflate?: boolean } = {}): {
  server: Server;
  connections: Set<Connection>;
} {
  const connections = new Set<Connection>();
  const deflate = options_.deflate === false ? null : new DeflateEndpoint(defaultDeflateSettings());
  const options = { ...defaultConnectionOptions(), sendQueueSize: 65_536, sendQueueBytes: 64 * 1024 * 1024 };
  const server = createServer(boundedServerOptions(), (request, response) => {
    reject({ response }, checkHandshake(readHandshake(request)) ?? refusal(HttpRejection.UPGRADE_REQUIRED));
  });
  const tracked: ConnectionHandlers = {
    message: echo,
    close(conn) {
      connections.delete(conn);
    },
  };
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const handshake = readHandshake(request);
    const rejection = checkHandshake(handshake);
    if (rejection !== null) {
      reject({ socket }, rejection);
      return;
    }
    // Checked above: the list is within its cap.
    const protocol = selectProtocol(request, (offered) => offered[0], handshake.subprotocols!);
    const conn = completeUpgrade(request, socket, head, protocol, options, tracked, deflate);
    if (conn !== null && conn.readyState !== 'closed') connections.add(conn);
  });
  return { server, connections };
}

/** Runs `wshub echo [--host H] [--port N]` until SIGINT/SIGTERM. */
export async function echoCommand(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8080' },
    deflate: { type: 'boolean', default: true },
    'no-deflate': { type: 'boolean', default: false },
  });
  const port = intFlag('port', flags.port, 8080, 0, 65535);
  const { server, connections } = createEchoServer({ deflate: flags.deflate && !flags['no-deflate'] });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, flags.host, () => resolve());
  });
  const address = server.address();
  const realPort = typeof address === 'object' && address !== null ? address.port : port;
  const host = flags.host.includes(':') ? `[${flags.host}]` : flags.host;
  process.stdout.write(`listening on http://${host}:${realPort}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  server.close();
  for (const conn of connections) conn.close(CloseCode.SHUTDOWN, 'server shutting down');
  await Promise.race([
    Promise.all([...connections].map((c) => c.closed())),
    new Promise((r) => setTimeout(r, 2_000).unref()),
  ]);
  for (const conn of connections) conn.terminate();
  return 0;
}
