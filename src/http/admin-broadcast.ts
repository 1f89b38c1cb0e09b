/**
 * The admin broadcast endpoint: POST a body to send it as one
 * text message to a room (`?room=`) or to everyone. Authorization comes
 * first, before a single body byte is read.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isUtf8 } from 'node:buffer';
import { constantTimeEqual } from '../auth/security.ts';
import { isRejected, type Hub } from '../hub/hub.ts';
import { Opcode } from '../protocol/frame.ts';
import { readBody } from './body.ts';
import { HttpRejection, refusal, sendRejection, type RejectionKind } from './rejections.ts';

export interface AdminBroadcastConfig {
  hub: Hub;
  maxBytes: number;
  secret?: Uint8Array | undefined;
  authorizer?: ((request: IncomingMessage) => boolean | Promise<boolean>) | undefined;
  /** Called for every request refused for missing or wrong credentials. */
  onUnauthorized?: ((request: IncomingMessage) => void) | undefined;
  /** Called when the authorizer throws or rejects (answered with 503, not counted as a failed login). */
  onAuthError?: ((request: IncomingMessage, error: unknown) => void) | undefined;
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

/** Writes the JSON error response of a row of the rejection table. */
function sendError(
  response: ServerResponse,
  kind: RejectionKind,
  message?: string,
  headers?: Record<string, string>,
): void {
  sendRejection(response, refusal(kind, message, headers));
}

/** Handles one request to the broadcast path. */
export async function handleAdminBroadcast(
  request: IncomingMessage,
  response: ServerResponse,
  config: AdminBroadcastConfig,
): Promise<void> {
  if (request.method !== 'POST') {
    return sendError(response, HttpRejection.METHOD_NOT_ALLOWED, 'use POST', { Allow: 'POST' });
  }
  let allowed: boolean;
  try {
    allowed = await authorized(request, config);
  } catch (error) {
    // The authorizer failed: an outage to report, not a wrong password to count.
    config.onAuthError?.(request, error);
    return refuseBody(response, HttpRejection.AUTH_UNAVAILABLE);
  }
  if (!allowed) {
    config.onUnauthorized?.(request);
    return refuseBody(response, HttpRejection.UNAUTHORIZED);
  }
  const tooLarge = `body exceeds ${config.maxBytes} bytes`;
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > config.maxBytes) return refuseBody(response, HttpRejection.REQUEST_TOO_LARGE, tooLarge);
  const room = new URL(request.url ?? '/', 'http://localhost').searchParams.get('room');
  if (room !== null && !config.hub.isValidRoom(room)) {
    return refuseBody(response, HttpRejection.INVALID_ROOM);
  }
  const read = await readBody(request, { maxBytes: config.maxBytes });
  // A client that went away gets no answer: there is no one to read it.
  if (!read.ok && read.reason === 'aborted') return;
  if (!read.ok) return refuseBody(response, HttpRejection.REQUEST_TOO_LARGE, tooLarge);
  const body = read.body;
  if (!isUtf8(body)) return sendError(response, HttpRejection.INVALID_BODY);
  const result =
    room === null
      ? config.hub.tryBroadcastAll(Opcode.TEXT, body)
      : config.hub.tryBroadcastRoom(room, Opcode.TEXT, body);
  if (isRejected(result)) return sendError(response, HttpRejection.BROADCAST_REJECTED);
  // A channel with history in a shared engine: answered once stored, so a 204 is never a lost message.
  if (result.stored !== undefined) {
    const stored = await result.stored.then(
      () => true,
      () => false,
    );
    if (!stored)
      return sendError(
        response,
        HttpRejection.BROADCAST_REJECTED,
        "the channel's history could not be stored",
      );
  }
  response.writeHead(204);
  response.end();
}

/** Whether the request carries valid credentials; rejects when a custom authorizer fails. */
async function authorized(request: IncomingMessage, config: AdminBroadcastConfig): Promise<boolean> {
  if (config.authorizer !== undefined) return await config.authorizer(request);
  if (config.secret === undefined) return false;
  const match = /^bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
  return match?.[1] !== undefined && constantTimeEqual(match[1], config.secret);
}

/** Answers without reading the body, and closes the connection so the unread body is not parsed. */
function refuseBody(response: ServerResponse, kind: RejectionKind, message?: string): void {
  sendError(response, kind, message, { Connection: 'close' });
  response.req.resume();
}
