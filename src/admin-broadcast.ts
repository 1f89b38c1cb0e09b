/**
 * The admin broadcast endpoint: POST a body to send it as one
 * text message to a room (`?room=`) or to everyone. Authorization comes
 * first, before a single body byte is read.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isUtf8 } from 'node:buffer';
import { constantTimeEqual } from './auth/security.ts';
import { isRejected, type Hub } from './hub.ts';
import { Opcode } from './protocol/frame.ts';

export interface AdminBroadcastConfig {
  hub: Hub;
  maxBytes: number;
  secret?: Uint8Array | undefined;
  authorizer?: ((request: IncomingMessage) => boolean | Promise<boolean>) | undefined;
  /** Called for every request refused for missing or wrong credentials. */
  onUnauthorized?: ((request: IncomingMessage) => void) | undefined;
}

/** At most one `admin_auth_failed` log line per this many ms. */
export const ADMIN_AUTH_LOG_INTERVAL_MS = 10_000;

/**
 * Counts failed admin logins and reports them in at most one line per
 * `intervalMs`, so a password-guessing flood is visible without flooding
 * the log: the first failure is reported at once, later ones are summed into
 * a line when the interval is over (or at `flush()`, e.g. on shutdown).
 */
export class AuthFailureLog {
  /** Failures since the start. */
  total = 0;
  private pending = 0;
  private lastRemote: string | undefined;
  private lastLineAt = -Infinity;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly intervalMs: number,
    private readonly line: (count: number, remote: string | undefined) => void,
  ) {}

  record(remote: string | undefined): void {
    this.total++;
    this.pending++;
    this.lastRemote = remote;
    if (this.timer !== null) return;
    const wait = this.lastLineAt + this.intervalMs - performance.now();
    if (wait <= 0) return this.flush();
    this.timer = setTimeout(() => this.flush(), wait);
    // Never keeps a process alive; the total is in the metrics either way.
    this.timer.unref();
  }

  /** Reports the failures not reported yet, if any. */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending === 0) return;
    const count = this.pending;
    this.pending = 0;
    this.lastLineAt = performance.now();
    this.line(count, this.lastRemote);
  }
}

/** Writes a JSON error response. */
export function sendError(response: ServerResponse, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message, category: categoryOf(status) } });
  response.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  });
  response.end(body);
}

function categoryOf(status: number): string {
  if (status === 401) return 'auth';
  if (status === 413 || status === 400) return 'validation';
  if (status === 405) return 'method';
  return 'unavailable';
}

/** Handles one request to the broadcast path. */
export async function handleAdminBroadcast(
  request: IncomingMessage,
  response: ServerResponse,
  config: AdminBroadcastConfig,
): Promise<void> {
  if (request.method !== 'POST') {
    response.setHeader('Allow', 'POST');
    return sendError(response, 405, 'METHOD_NOT_ALLOWED', 'use POST');
  }
  if (!(await authorized(request, config))) {
    config.onUnauthorized?.(request);
    return refuseBody(response, 401, 'UNAUTHORIZED', 'missing or invalid broadcast credentials');
  }
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > config.maxBytes) {
    return refuseBody(response, 413, 'WEBSOCKET_REQUEST_TOO_LARGE', `body exceeds ${config.maxBytes} bytes`);
  }
  const room = new URL(request.url ?? '/', 'http://localhost').searchParams.get('room');
  if (room !== null && !config.hub.isValidRoom(room)) {
    return refuseBody(response, 400, 'WEBSOCKET_INVALID_ROOM', 'invalid room name');
  }
  const body = await readBody(request, config.maxBytes);
  if (body === null) {
    return refuseBody(response, 413, 'WEBSOCKET_REQUEST_TOO_LARGE', `body exceeds ${config.maxBytes} bytes`);
  }
  if (!isUtf8(body)) return sendError(response, 400, 'WEBSOCKET_INVALID_BODY', 'body must be UTF-8 text');
  const result =
    room === null
      ? config.hub.tryBroadcastAll(Opcode.TEXT, body)
      : config.hub.tryBroadcastRoom(room, Opcode.TEXT, body);
  if (isRejected(result))
    return sendError(response, 503, 'WEBSOCKET_BROADCAST_REJECTED', 'broadcast rejected');
  response.writeHead(204);
  response.end();
}

async function authorized(request: IncomingMessage, config: AdminBroadcastConfig): Promise<boolean> {
  if (config.authorizer !== undefined) {
    try {
      return await config.authorizer(request);
    } catch {
      return false;
    }
  }
  if (config.secret === undefined) return false;
  const match = /^bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
  return match?.[1] !== undefined && constantTimeEqual(match[1], config.secret);
}

/** Answers without reading the body, and closes the connection so the unread body is not parsed. */
function refuseBody(response: ServerResponse, status: number, code: string, message: string): void {
  response.setHeader('Connection', 'close');
  sendError(response, status, code, message);
  response.req.resume();
}

/** Reads at most `maxBytes`; null when the body is larger. */
function readBody(request: IncomingMessage, maxBytes: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        request.removeAllListeners('data');
        request.resume();
        resolve(null);
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks, size)));
    request.on('error', reject);
  });
}
