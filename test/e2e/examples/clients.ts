/**
 * Small clients the example tests share: a WebSocket client with a message
 * queue, a probe for refused upgrades, and one-shot HTTP requests that never
 * keep a pooled socket open (so the leak check sees a clean process).
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { dial, DialError, MessageQueue, ReceiveTimeoutError } from '../../../src/client/index.ts';
import type { Connection } from '../../../src/connection/connection.ts';

/** An open client connection and the queue its messages land in. */
export interface TestClient {
  conn: Connection;
  queue: MessageQueue;
}

/** Turns `http://host:port` plus a path into a `ws://` URL. */
export function wsUrl(base: string, path: string): string {
  return base.replace(/^http/, 'ws') + path;
}

/** Opens a client connection; `token` becomes an `Authorization: Bearer` header. */
export async function connect(
  url: string,
  options: { token?: string; headers?: Record<string, string>; protocols?: string[] } = {},
): Promise<TestClient> {
  const queue = new MessageQueue();
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.Authorization = `Bearer ${options.token}`;
  const conn = await dial(url, {
    headers,
    handlers: queue.handlers,
    timeoutMs: 5_000,
    ...(options.protocols ? { protocols: options.protocols } : {}),
  });
  return { conn, queue };
}

/** What a refused upgrade answered: the HTTP status and the JSON error code. */
export interface Refusal {
  status: number | undefined;
  code: string | undefined;
}

/** Attempts an upgrade that must be refused; fails the test if it gets a 101. */
export async function refusal(
  url: string,
  options: { token?: string; headers?: Record<string, string> } = {},
): Promise<Refusal> {
  let client: TestClient;
  try {
    client = await connect(url, options);
  } catch (error) {
    assert.ok(error instanceof DialError, `expected DialError, got ${String(error)}`);
    assert.equal(error.code, 'HANDSHAKE_REJECTED', `unexpected dial failure: ${error.message}`);
    return { status: error.status, code: errorCode(error.body) };
  }
  client.conn.terminate();
  assert.fail(`upgrade to ${url} was accepted`);
}

function errorCode(body: string | undefined): string | undefined {
  try {
    const parsed = JSON.parse(body ?? '') as { error?: { code?: unknown } };
    return typeof parsed.error?.code === 'string' ? parsed.error.code : undefined;
  } catch {
    return undefined;
  }
}

/** Resolves with the next message's text (rejects after `timeoutMs`). */
export async function nextText(client: TestClient, timeoutMs = 2_000): Promise<string> {
  return (await client.queue.next(timeoutMs)).text;
}

/** Asserts that no message arrives within `ms`. */
export async function assertSilent(client: TestClient, ms = 150): Promise<void> {
  try {
    const message = await client.queue.next(ms);
    assert.fail(`unexpected message: ${message.text}`);
  } catch (error) {
    if (!(error instanceof ReceiveTimeoutError)) throw error;
  }
}

/** One HTTP request on its own connection (no keep-alive); resolves with status and body. */
export function httpCall(
  base: string,
  method: string,
  path: string,
  options: { body?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      new URL(path, base),
      { method, agent: false, headers: options.headers ?? {}, timeout: 5_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(options.body);
  });
}
