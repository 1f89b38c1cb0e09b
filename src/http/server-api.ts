/**
 * The Centrifugo-compatible server HTTP API: `POST <apiPath>/<method>` with
 * a JSON body, authorized by an API key, so Centrifugo's server SDKs (e.g.
 * Python `cent`) work unchanged against wshub's channels.
 *
 * Answers, as Centrifugo gives them: `{"result": …}` or a command error
 * `{"error": {code, message}}`, both with HTTP 200; HTTP 400 for a body that
 * does not decode; 401 without a valid key; 404 for an unknown method; 405
 * for anything but POST. wshub adds 413 (body too large) and 408 (body too
 * slow). Every HTTP error carries the JSON body of `rejections.ts`.
 *
 * Order: method, key, route, then the body; nothing is read or executed
 * for a request without a valid key.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MIN_SECRET_BYTES } from '../auth/secret.ts';
import { constantTimeEqual } from '../auth/security.ts';
import type { ChannelApi } from '../channels/api.ts';
import { ReplyErrors } from '../channels/protocol.ts';
import { sanitizeForLogging } from '../hub/validation.ts';
import { ADMIN_AUTH_LOG_INTERVAL_MS, AuthFailureLog } from './admin-broadcast.ts';
import { closeAfterResponse, parseJsonBody, readBody } from './body.ts';
import { HttpRejection, refusal, sendRejection, type RejectionKind } from './rejections.ts';
import {
  apiError,
  asObject,
  isServerApiMethod,
  RequestShapeError,
  runServerApiMethod,
  SERVER_API_METHODS,
  type ApiReply,
  type MethodLimits,
  type ServerApiMethod,
} from './server-api-methods.ts';

export { SERVER_API_METHODS, type ServerApiMethod } from './server-api-methods.ts';

/** Defaults of the server API's options. */
export const SERVER_API_DEFAULTS = {
  apiPath: '/api',
  maxBodyBytes: 1024 * 1024,
  bodyTimeoutMs: 10_000,
  maxBroadcastChannels: 1000,
  maxJsonDepth: 64,
  callTimeoutMs: 10_000,
  maxPatternLength: 1024,
  broadcastConcurrency: 32,
} as const;

/** The server API's counters; the server reports them in its metrics. */
export interface ServerApiCounters {
  /** Requests the handler answered (every method, every outcome). */
  api_requests: number;
  /** Requests answered with an error: an HTTP error other than 401, or a command error (for broadcast: any channel's). */
  api_errors: number;
  /** Requests refused for a missing or wrong API key (401). */
  api_auth_failures: number;
}

/** Fresh counters, all zero. */
export function newServerApiCounters(): ServerApiCounters {
  return { api_requests: 0, api_errors: 0, api_auth_failures: 0 };
}

/** A structured log event of the server API (the shape of WshubServer's LogEntry). */
export interface ServerApiLogEntry {
  level: 'warn' | 'error';
  event: string;
  [field: string]: unknown;
}

export interface ServerApiOptions {
  /** The channel node the methods act on. */
  api: ChannelApi;
  /** The API key (at least 32 bytes, see checkApiKey); a shorter one lets no request in. */
  key: Buffer;
  /** Path prefix of the methods (default `/api`: `POST /api/publish`, …). */
  apiPath?: string | undefined;
  /** Largest body accepted (default 1 MiB; larger: 413). */
  maxBodyBytes?: number | undefined;
  /** The whole body must arrive within this many ms of the head (default 10 s; else 408). */
  bodyTimeoutMs?: number | undefined;
  /** Most channels of one broadcast (default 1000; more: command error 107). */
  maxBroadcastChannels?: number | undefined;
  /** Deepest nesting of arrays and objects in a body (default 64; deeper: 400). */
  maxJsonDepth?: number | undefined;
  /** How long a method may wait for the channel node (default 10 s; then command error 100). */
  callTimeoutMs?: number | undefined;
  /** Counters to increment (see newServerApiCounters). */
  counters?: ServerApiCounters | undefined;
  /** Records each request refused for its key (see apiAuthFailureLog), for a rate-limited log line. */
  authFailures?: AuthFailureLog | undefined;
  /** Receives `api_call_failed` (error) events: the channel node failed or timed out. */
  log?: ((entry: ServerApiLogEntry) => void) | undefined;
}

/**
 * An AuthFailureLog that reports failed API logins as `api_auth_failed`
 * warnings (count and last address), at most one line per 10 s.
 */
export function apiAuthFailureLog(log: (entry: ServerApiLogEntry) => void): AuthFailureLog {
  return new AuthFailureLog(ADMIN_AUTH_LOG_INTERVAL_MS, (count, remote) =>
    log({ level: 'warn', event: 'api_auth_failed', count, remote }),
  );
}

/**
 * Handles one request under the API path: `POST <apiPath>/<method>`.
 * Takes the request, its response and the options; resolves once the
 * answer is written (never rejects: a failure of the channel node is a
 * command error 100, and is logged).
 */
export async function handleServerApi(
  request: IncomingMessage,
  response: ServerResponse,
  options: ServerApiOptions,
): Promise<void> {
  try {
    await serve(request, response, options);
  } catch {
    // Only a hook that threw (log, counters) gets here; the caller still gets an answer.
    sendRejection(response, refusal(HttpRejection.INTERNAL_ERROR));
  }
}

async function serve(
  request: IncomingMessage,
  response: ServerResponse,
  options: ServerApiOptions,
): Promise<void> {
  const counters = options.counters;
  if (counters) counters.api_requests++;
  const refuse = (kind: RejectionKind, message?: string, headers?: Record<string, string>): void => {
    if (counters && kind !== HttpRejection.API_UNAUTHORIZED) counters.api_errors++;
    sendRejection(response, refusal(kind, message, headers));
  };
  /** Refuses without reading the body, closing the connection so the body is not parsed as a request. */
  const refuseUnread = (
    kind: RejectionKind,
    message?: string,
    headers: Record<string, string> = {},
  ): void => {
    refuse(kind, message, { ...headers, Connection: 'close' });
    closeAfterResponse(response);
  };

  if (request.method !== 'POST') {
    return refuseUnread(HttpRejection.METHOD_NOT_ALLOWED, 'use POST', { Allow: 'POST' });
  }
  if (!hasValidKey(request, options.key)) {
    if (counters) counters.api_auth_failures++;
    options.authFailures?.record(request.socket.remoteAddress);
    return refuseUnread(HttpRejection.API_UNAUTHORIZED);
  }
  const method = methodOf(request.url ?? '/', options.apiPath ?? SERVER_API_DEFAULTS.apiPath);
  if (method === undefined) {
    return refuseUnread(
      HttpRejection.NOT_FOUND,
      `unknown API method; known: ${SERVER_API_METHODS.join(', ')}`,
    );
  }

  const maxBodyBytes = options.maxBodyBytes ?? SERVER_API_DEFAULTS.maxBodyBytes;
  const tooLarge = `body exceeds ${maxBodyBytes} bytes`;
  if (Number(request.headers['content-length'] ?? 0) > maxBodyBytes) {
    return refuseUnread(HttpRejection.BODY_TOO_LARGE, tooLarge);
  }
  const bodyTimeoutMs = options.bodyTimeoutMs ?? SERVER_API_DEFAULTS.bodyTimeoutMs;
  const read = await readBody(request, { maxBytes: maxBodyBytes, timeoutMs: bodyTimeoutMs });
  if (!read.ok) {
    if (read.reason === 'aborted') return;
    if (read.reason === 'too_large') return refuseUnread(HttpRejection.BODY_TOO_LARGE, tooLarge);
    return refuseUnread(HttpRejection.REQUEST_TIMEOUT, `the body did not arrive within ${bodyTimeoutMs} ms`);
  }

  const parsed = parseJsonBody(read.body, options.maxJsonDepth ?? SERVER_API_DEFAULTS.maxJsonDepth);
  if (!parsed.ok) {
    if (parsed.reason === 'too_deep') {
      return refuse(HttpRejection.API_BAD_REQUEST, 'body is nested too deeply');
    }
    return refuse(HttpRejection.INVALID_JSON, parsed.reason === 'not_utf8' ? 'body is not UTF-8' : undefined);
  }
  // A null body decodes as an empty request, as in Centrifugo.
  const body = parsed.value === null ? {} : asObject(parsed.value);
  if (body === undefined) return refuse(HttpRejection.API_BAD_REQUEST, 'body must be a JSON object');

  let reply: ApiReply;
  try {
    reply = await withTimeout(
      runServerApiMethod(method, body, options.api, limitsOf(options)),
      options.callTimeoutMs ?? SERVER_API_DEFAULTS.callTimeoutMs,
    );
  } catch (error) {
    if (error instanceof RequestShapeError) return refuse(HttpRejection.API_BAD_REQUEST, error.message);
    options.log?.({
      level: 'error',
      event: 'api_call_failed',
      method,
      error: sanitizeForLogging(error instanceof Error ? error.message : String(error)),
      remote: request.socket.remoteAddress,
    });
    reply = { error: apiError(ReplyErrors.INTERNAL) };
  }
  let text: string;
  try {
    text = JSON.stringify(reply);
  } catch {
    // A result the channel node built that is not JSON (a cycle, a BigInt) is its bug, not the caller's.
    return refuse(HttpRejection.INTERNAL_ERROR, 'the result could not be encoded');
  }
  if (counters && carriesError(reply)) counters.api_errors++;
  response.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  response.end(text);
}

function limitsOf(options: ServerApiOptions): MethodLimits {
  return {
    maxBroadcastChannels: options.maxBroadcastChannels ?? SERVER_API_DEFAULTS.maxBroadcastChannels,
    maxPatternLength: SERVER_API_DEFAULTS.maxPatternLength,
    broadcastConcurrency: SERVER_API_DEFAULTS.broadcastConcurrency,
  };
}

/**
 * The key the request presents, as Centrifugo reads it: `X-API-Key` when
 * present and not empty, else `Authorization: apikey <key>`.
 */
function presentedKey(request: IncomingMessage): string | undefined {
  const header = request.headers['x-api-key'];
  if (typeof header === 'string' && header !== '') return header;
  const match = /^apikey\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
  return match?.[1];
}

function hasValidKey(request: IncomingMessage, key: Buffer): boolean {
  const presented = presentedKey(request);
  // Compared even when no key was presented, so a missing key takes the same time as a wrong one.
  const equal = constantTimeEqual(presented ?? '', key);
  return equal && presented !== undefined && key.length >= MIN_SECRET_BYTES;
}

/** The method named by the path `<apiPath>/<method>` (query ignored), or undefined. */
function methodOf(url: string, apiPath: string): ServerApiMethod | undefined {
  const path = url.split('?', 1)[0] ?? '';
  const prefix = `${apiPath.replace(/\/+$/, '')}/`;
  if (!path.startsWith(prefix)) return undefined;
  const name = path.slice(prefix.length);
  return isServerApiMethod(name) ? name : undefined;
}

function carriesError(reply: ApiReply): boolean {
  if ('error' in reply) return true;
  const responses = asObject(reply.result)?.['responses'];
  return Array.isArray(responses) && responses.some((r) => asObject(r)?.['error'] !== undefined);
}

/** Settles like `promise`, or rejects after `ms`. */
async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the channel node did not answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
