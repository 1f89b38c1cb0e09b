/**
 * Tools for the end-to-end server tests: an in-process wshub server on a
 * loopback port, raw HTTP requests for handshakes no well-behaved client
 * would send, helpers that expect a refused upgrade, and signed tokens.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { signHS256 } from '../../../src/auth/token.ts';
import { dial, DialError, type DialOptions } from '../../../src/client/dial.ts';
import { MessageQueue } from '../../../src/client/messages.ts';
import type { WshubConfig } from '../../../src/config.ts';
import type { Connection } from '../../../src/connection/connection.ts';
import { createWshub, type WshubServer } from '../../../src/server/server.ts';
import { assertNoLeaks, closeServer, trackSockets } from '../../helpers/leaks.ts';

/** The token secret every test server uses (fresh per process, 32 bytes). */
export const SECRET = randomBytes(32);
/** The admin broadcast secret (distinct from SECRET), as the text a client sends. */
export const BROADCAST_SECRET = randomBytes(32).toString('base64url');

/** A wshub server listening on 127.0.0.1. */
export interface RunningHub {
  ws: WshubServer;
  server: Server;
  port: number;
  /** `ws://127.0.0.1:<port><path>` (path defaults to `/ws`). */
  url(path?: string): string;
  /** Shuts the hub down, destroys what is left and stops listening. */
  close(): Promise<void>;
}

const running = new Set<RunningHub>();

/**
 * Starts `createWshub(config)` on a free loopback port. Defaults for tests:
 * the shared SECRET and heartbeats off.
 */
export async function startHub(config: Partial<WshubConfig> = {}): Promise<RunningHub> {
  const ws = createWshub({ secret: SECRET, pingPeriod: 0, ...config });
  const server = trackSockets(ws.createServer());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const hub: RunningHub = {
    ws,
    server,
    port,
    url: (path = '/ws') => `ws://127.0.0.1:${port}${path}`,
    async close() {
      running.delete(hub);
      await ws.shutdown({ timeout: 500 });
      await closeServer(server);
    },
  };
  running.add(hub);
  return hub;
}

/**
 * For `afterEach`: closes every hub still running, then asserts that no
 * socket or heartbeat timer is left anywhere in the process.
 */
export async function cleanupHubs(): Promise<void> {
  for (const hub of [...running]) await hub.close();
  await assertNoLeaks();
}

/** Signs an HS256 token with SECRET (or `secret`); `exp` in seconds from now when given. */
export function makeToken(
  claims: Record<string, unknown> = { sub: 'user-1' },
  options: { expiresInSeconds?: number; secret?: Uint8Array | string } = {},
): Promise<string> {
  return signHS256(
    claims,
    options.secret ?? SECRET,
    options.expiresInSeconds === undefined ? {} : { expiresInSeconds: options.expiresInSeconds },
  );
}

/** `{ Authorization: 'Bearer <token>' }` for a fresh valid token, plus `extra`. */
export async function authHeaders(extra: Record<string, string> = {}): Promise<Record<string, string>> {
  return { Authorization: `Bearer ${await makeToken()}`, ...extra };
}

/** A dialed client together with the queue that records its messages. */
export interface Client {
  conn: Connection;
  queue: MessageQueue;
}

/** Dials `url` with `options` and records messages in a MessageQueue. */
export async function connectClient(url: string, options: DialOptions = {}): Promise<Client> {
  const queue = new MessageQueue(options.handlers);
  const conn = await dial(url, { timeoutMs: 3_000, ...options, handlers: queue.handlers });
  return { conn, queue };
}

/** The parsed JSON error body of a refusal. */
export interface ErrorBody {
  error: { code: string; message: string; category: string };
}

/** Parses `body` and checks it has the `{"error":{"code","message","category"}}` shape. */
export function parseErrorBody(body: string | undefined): ErrorBody {
  assert.ok(body !== undefined && body !== '', 'the refusal has a body');
  const parsed = JSON.parse(body) as ErrorBody;
  assert.equal(typeof parsed.error, 'object');
  assert.equal(typeof parsed.error.code, 'string');
  assert.equal(typeof parsed.error.message, 'string');
  assert.ok(parsed.error.message.length > 0, 'message is not empty');
  assert.equal(typeof parsed.error.category, 'string');
  return parsed;
}

/**
 * Dials and expects the upgrade to be refused with `status` and error
 * `code`; returns the DialError (its headers and parsed body).
 */
export async function expectRefused(
  url: string,
  options: DialOptions,
  status: number,
  code: string,
): Promise<{ error: DialError; body: ErrorBody }> {
  let conn: Connection | undefined;
  try {
    conn = await dial(url, { timeoutMs: 3_000, ...options });
  } catch (error) {
    assert.ok(error instanceof DialError, `expected a DialError, got ${String(error)}`);
    assert.equal(error.code, 'HANDSHAKE_REJECTED', error.message);
    const body = parseErrorBody(error.body);
    assert.deepEqual(
      { status: error.status, code: body.error.code },
      { status, code },
      `refusal of ${url}: ${error.body ?? ''}`,
    );
    return { error, body };
  }
  conn.terminate();
  assert.fail(`expected ${status} ${code}, but the upgrade of ${url} succeeded`);
}

/** A raw HTTP response: status, lower-case headers and the body as text. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** ms from sending the request to the complete response. */
  elapsedMs: number;
}

/**
 * Sends `head` (a complete request head, CRLFs included) and optional body
 * bytes over a fresh TCP connection, and resolves with the response once its
 * Content-Length bytes (or the connection's end) have arrived. Rejects when
 * nothing complete arrives within `timeoutMs`.
 */
export function rawHttp(
  port: number,
  head: string,
  body: Buffer | string = '',
  timeoutMs = 3_000,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    let done = false;
    const finish = (error: Error | null, response?: RawResponse): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (error !== null) reject(error);
      else resolve(response!);
    };
    const tryParse = (ended: boolean): void => {
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) {
        if (ended) finish(new Error(`connection closed without a response: ${received.toString('latin1')}`));
        return;
      }
      const lines = received.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? '')?.[1] ?? NaN);
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const rest = received.subarray(end + 4);
      const length = headers['content-length'];
      const complete =
        status === 101 || status === 204 || (length !== undefined ? rest.length >= Number(length) : ended);
      if (!complete) return;
      finish(null, {
        status,
        headers,
        body: (length !== undefined ? rest.subarray(0, Number(length)) : rest).toString('utf8'),
        elapsedMs: performance.now() - started,
      });
    };
    const timer = setTimeout(
      () => finish(new Error(`no complete response within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      tryParse(false);
    });
    socket.on('end', () => tryParse(true));
    socket.on('close', () => tryParse(true));
    // The server may reset a connection whose body it refused to read.
    socket.on('error', () => tryParse(true));
    socket.write(head);
    if (body.length > 0) socket.write(body);
  });
}

/** What an upgrade request built by `upgradeHead` contains; null omits a default header. */
export interface UpgradeHeadOptions {
  method?: string;
  path?: string;
  headers?: Record<string, string | null>;
}

/** A WebSocket upgrade request head with valid defaults that `options` override or drop. */
export function upgradeHead(port: number, options: UpgradeHeadOptions = {}): string {
  const headers: Record<string, string | null> = {
    Host: `127.0.0.1:${port}`,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
    'Sec-WebSocket-Version': '13',
    ...options.headers,
  };
  let head = `${options.method ?? 'GET'} ${options.path ?? '/ws'} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(headers)) if (value !== null) head += `${name}: ${value}\r\n`;
  return `${head}\r\n`;
}

/** Sends an upgrade request built by `upgradeHead` and asserts the refusal; returns the response. */
export async function expectRawRefusal(
  port: number,
  options: UpgradeHeadOptions,
  status: number,
  code: string,
): Promise<RawResponse> {
  const response = await rawHttp(port, upgradeHead(port, options));
  assert.notEqual(response.status, 101, 'never a 101');
  const body = parseErrorBody(response.body);
  assert.deepEqual({ status: response.status, code: body.error.code }, { status, code }, response.body);
  return response;
}

/** Polls `condition` every 5 ms until it holds; rejects after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean,
  timeoutMs = 3_000,
  what = 'condition',
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}
