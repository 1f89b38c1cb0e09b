/**
 * Test tools that work at the byte level, for the connection and client
 * tests: a frame reader that keeps masking keys, a raw client that can stop
 * reading or ignore pings and closes, a raw server that answers the
 * handshake however a test wants, and an in-process wshub server with
 * custom connection options.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { connect, createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { completeUpgrade, reject, selectProtocol } from '../../../src/upgrade/respond.ts';
import {
  Connection,
  defaultConnectionOptions,
  type ConnectionHandlers,
  type ConnectionOptions,
} from '../../../src/connection/connection.ts';
import { Opcode, encodeFrame, randomMask } from '../../../src/protocol/frame.ts';
import { acceptKey, checkHandshake, readHandshake } from '../../../src/upgrade/handshake.ts';
import { assertNoLeaks, closeServer, trackSockets } from '../../helpers/leaks.ts';

/** A frame as seen on the wire, payload already unmasked. */
export interface WireFrame {
  fin: boolean;
  opcode: number;
  masked: boolean;
  /** The masking key, when the frame was masked. */
  mask: Buffer | undefined;
  payload: Buffer;
}

/** Splits a byte stream into frames (either side's: masked or not). */
export class FrameReader {
  readonly frames: WireFrame[] = [];
  private buffer: Buffer = Buffer.alloc(0);

  /** Adds bytes; returns the frames they completed. */
  push(chunk: Buffer): WireFrame[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const out: WireFrame[] = [];
    for (;;) {
      const frame = this.take();
      if (frame === null) break;
      out.push(frame);
      this.frames.push(frame);
    }
    return out;
  }

  private take(): WireFrame | null {
    const b = this.buffer;
    if (b.length < 2) return null;
    const masked = (b[1]! & 0x80) !== 0;
    let length = b[1]! & 0x7f;
    let pos = 2;
    if (length === 126) {
      if (b.length < 4) return null;
      length = b.readUInt16BE(2);
      pos = 4;
    } else if (length === 127) {
      if (b.length < 10) return null;
      length = Number(b.readBigUInt64BE(2));
      pos = 10;
    }
    const mask = masked ? b.subarray(pos, pos + 4) : undefined;
    if (masked) pos += 4;
    if (b.length < pos + length) return null;
    const payload = Buffer.from(b.subarray(pos, pos + length));
    if (mask !== undefined) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
    this.buffer = b.subarray(pos + length);
    return {
      fin: (b[0]! & 0x80) !== 0,
      opcode: b[0]! & 0x0f,
      masked,
      mask: mask === undefined ? undefined : Buffer.from(mask),
      payload,
    };
  }
}

/** Code and reason of a close frame's payload (code undefined for an empty one). */
export function closeInfo(frame: WireFrame): { code: number | undefined; reason: string } {
  if (frame.payload.length < 2) return { code: undefined, reason: '' };
  return { code: frame.payload.readUInt16BE(0), reason: frame.payload.subarray(2).toString('utf8') };
}

/** A masked client frame. */
export function clientFrame(opcode: number, payload: Uint8Array | string = Buffer.alloc(0)): Buffer {
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return encodeFrame(opcode, bytes, { mask: randomMask() });
}

/** A close payload: 2-byte code plus UTF-8 reason. */
export function closeBody(code: number, reason = ''): Buffer {
  const reasonBytes = Buffer.from(reason);
  const out = Buffer.alloc(2 + reasonBytes.length);
  out.writeUInt16BE(code, 0);
  reasonBytes.copy(out, 2);
  return out;
}

/** Resolves after `ms`; the timer keeps nothing alive after the test. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every 5 ms until it holds; rejects after `timeoutMs`. */
export async function waitUntil(
  condition: () => boolean,
  timeoutMs = 2_000,
  what = 'condition',
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(5);
  }
}

// ---- raw client ------------------------------------------------------------

export interface RawPeerOptions {
  path?: string;
  headers?: Record<string, string>;
  /** Answer pings with pongs (default false: a peer that ignores them). */
  autoPong?: boolean;
  /** Keep sending after the server's FIN, as a hostile client may (default false). */
  allowHalfOpen?: boolean;
}

/**
 * A WebSocket client over a bare socket: it completes the handshake and
 * records every server frame, and otherwise does only what the test says.
 */
export class RawPeer {
  readonly reader = new FrameReader();
  /** performance.now() when the socket closed, once it has. */
  closedAt: number | undefined = undefined;
  /** Whether the server ended its side (FIN) before the socket closed. */
  gotEnd = false;
  readonly closed: Promise<void>;
  private waiters: Array<() => void> = [];

  private constructor(
    readonly socket: Socket,
    private readonly autoPong: boolean,
  ) {
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.closedAt = performance.now();
        this.wake();
        resolve();
      }),
    );
    socket.on('end', () => {
      this.gotEnd = true;
    });
    // A reset by the server is an expected outcome in several tests.
    socket.on('error', () => {});
  }

  /** Connects to `port` on 127.0.0.1 and completes the opening handshake. */
  static async connect(port: number, options: RawPeerOptions = {}): Promise<RawPeer> {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: options.allowHalfOpen ?? false });
    const peer = new RawPeer(socket, options.autoPong ?? false);
    const key = randomBytes(16).toString('base64');
    let request =
      `GET ${options.path ?? '/'} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n`;
    for (const [name, value] of Object.entries(options.headers ?? {})) request += `${name}: ${value}\r\n`;
    socket.write(`${request}\r\n`);
    const rest = await new Promise<Buffer>((resolve, fail) => {
      let buffered = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        buffered = Buffer.concat([buffered, chunk]);
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        socket.off('close', onClose);
        const head = buffered.subarray(0, end).toString('latin1');
        if (!head.startsWith('HTTP/1.1 101') || !head.includes(acceptKey(key))) {
          socket.destroy();
          fail(new Error(`handshake refused: ${head.split('\r\n')[0]}`));
          return;
        }
        resolve(buffered.subarray(end + 4));
      };
      const onClose = (): void => fail(new Error('closed during handshake'));
      socket.on('data', onData);
      socket.on('close', onClose);
    });
    socket.on('data', (chunk: Buffer) => peer.onData(chunk));
    if (rest.length > 0) peer.onData(rest);
    return peer;
  }

  /** Every server frame received so far. */
  get frames(): WireFrame[] {
    return this.reader.frames;
  }

  private onData(chunk: Buffer): void {
    for (const frame of this.reader.push(chunk)) {
      if (this.autoPong && frame.opcode === Opcode.PING) this.send(Opcode.PONG, frame.payload);
    }
    this.wake();
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  /** Sends one masked frame. */
  send(opcode: number, payload: Uint8Array | string = Buffer.alloc(0)): void {
    if (!this.socket.destroyed) this.socket.write(clientFrame(opcode, payload));
  }

  /** Sends a close frame with `code` and `reason`. */
  sendClose(code: number, reason = ''): void {
    this.send(Opcode.CLOSE, closeBody(code, reason));
  }

  /** Resolves with the first received frame matching `match`; rejects after `timeoutMs`. */
  async waitFor(match: (frame: WireFrame) => boolean, timeoutMs = 2_000): Promise<WireFrame> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find(match);
      if (found !== undefined) return found;
      if (this.closedAt !== undefined) throw new Error('socket closed before the frame arrived');
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no matching frame within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Resolves once the socket is closed; rejects after `timeoutMs`. */
  async waitClosed(timeoutMs = 2_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, fail) => {
      timer = setTimeout(() => fail(new Error(`socket still open after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

// ---- in-process wshub server -------------------------------------------------

export interface TestServer {
  server: Server;
  port: number;
  url: string;
  /** Every connection accepted, in order. */
  connections: Connection[];
  /** The next connection to be accepted (or the one already accepted but not yet taken). */
  nextConnection(timeoutMs?: number): Promise<Connection>;
  /** Destroys what is left and stops listening. */
  stop(): Promise<void>;
}

export interface TestServerOptions {
  connection?: Partial<ConnectionOptions>;
  handlers?: ConnectionHandlers;
  /** Called right after the 101 is written, before any frame is sent. */
  onConnection?: (conn: Connection, request: IncomingMessage) => void;
}

/**
 * An http server whose upgrades become Connections with the given options
 * (defaults: `defaultConnectionOptions()` with `pingPeriod: 0`), selecting the
 * first offered subprotocol.
 */
export async function startServer(options: TestServerOptions = {}): Promise<TestServer> {
  const connectionOptions: ConnectionOptions = {
    ...defaultConnectionOptions(),
    pingPeriod: 0,
    ...options.connection,
  };
  const connections: Connection[] = [];
  let taken = 0;
  const arrivals: Array<() => void> = [];
  const server = trackSockets(createHttpServer());
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const rejection = checkHandshake(readHandshake(request));
    if (rejection !== null) {
      reject({ socket }, rejection);
      return;
    }
    const protocol = selectProtocol(request, (offered) => offered[0]);
    const conn = completeUpgrade(request, socket, head, protocol, connectionOptions, options.handlers ?? {});
    if (conn === null) return;
    connections.push(conn);
    options.onConnection?.(conn, request);
    for (const wake of arrivals.splice(0)) wake();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    server,
    port,
    url: `ws://127.0.0.1:${port}/`,
    connections,
    async nextConnection(timeoutMs = 2_000) {
      await waitUntil(() => connections.length > taken, timeoutMs, 'a connection');
      return connections[taken++]!;
    },
    stop: () => closeServer(server),
  };
}

// ---- raw server ---------------------------------------------------------------

/** One handshake request a raw server received. */
export interface RawRequest {
  socket: Socket;
  /** Header names in lower case. */
  headers: Record<string, string>;
  requestLine: string;
  /** Client frames received after the request head. */
  reader: FrameReader;
}

/**
 * A TCP server that reads a request head and hands it to `respond`, which
 * writes whatever answer the test needs. Every later byte is parsed as frames.
 */
export async function startRawServer(
  respond: (request: RawRequest) => void,
): Promise<{ server: NetServer; port: number; requests: RawRequest[]; stop(): Promise<void> }> {
  const requests: RawRequest[] = [];
  const server = trackSockets(
    createNetServer((socket) => {
      socket.on('error', () => {});
      let buffered = Buffer.alloc(0);
      let request: RawRequest | null = null;
      socket.on('data', (chunk: Buffer) => {
        if (request !== null) {
          request.reader.push(chunk);
          return;
        }
        buffered = Buffer.concat([buffered, chunk]);
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const lines = buffered.subarray(0, end).toString('latin1').split('\r\n');
        const headers: Record<string, string> = {};
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
        }
        request = { socket, headers, requestLine: lines[0] ?? '', reader: new FrameReader() };
        requests.push(request);
        respond(request);
        const rest = buffered.subarray(end + 4);
        if (rest.length > 0) request.reader.push(rest);
      });
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return { server, port, requests, stop: () => closeServer(server) };
}

/** A correct 101 for `request`, with optional extra header lines. */
export function switchingProtocols(request: RawRequest, extra: Record<string, string> = {}): string {
  let head =
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${acceptKey(request.headers['sec-websocket-key'] ?? '')}\r\n`;
  for (const [name, value] of Object.entries(extra)) head += `${name}: ${value}\r\n`;
  return `${head}\r\n`;
}

/**
 * Servers started by the tests of one file. `cleanup()`, meant for
 * `afterEach`, asserts that nothing leaked and then stops them all.
 */
export function serverPool(): {
  start(options?: TestServerOptions): Promise<TestServer>;
  cleanup(): Promise<void>;
} {
  const running: TestServer[] = [];
  return {
    async start(options) {
      const server = await startServer(options);
      running.push(server);
      return server;
    },
    async cleanup() {
      try {
        for (const s of running) await assertNoLeaks(s.server);
        await assertNoLeaks();
      } finally {
        for (const s of running.splice(0)) await s.stop();
      }
    },
  };
}
