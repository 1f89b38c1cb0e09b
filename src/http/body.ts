/**
 * Request bodies read within bounds (at most so many bytes, and optionally
 * within a time limit) and JSON bodies parsed within a nesting depth, for
 * the HTTP endpoints that take a body (the admin broadcast, the server API).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isUtf8 } from 'node:buffer';

/** What reading a body gave: the bytes, or why there are none. */
export type BodyResult =
  | { ok: true; body: Buffer }
  /** `too_large`: over maxBytes; `timeout`: not complete within timeoutMs; `aborted`: the client went away. */
  | { ok: false; reason: 'too_large' | 'timeout' | 'aborted' };

export interface BodyLimits {
  /** The most bytes accepted; one more and the read stops with `too_large`. */
  maxBytes: number;
  /** The whole body must arrive within this many ms of the call (no limit when absent). */
  timeoutMs?: number | undefined;
}

/**
 * Reads the request body within `limits`. Resolves (never rejects) with the
 * body or the reason there is none. After `too_large` or `timeout` the rest
 * of the body is read and thrown away, so the caller can still answer; see
 * {@link closeAfterResponse} to bound how long that goes on.
 */
export function readBody(request: IncomingMessage, limits: BodyLimits): Promise<BodyResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let timer: NodeJS.Timeout | undefined;
    const finish = (result: BodyResult): void => {
      if (timer !== undefined) clearTimeout(timer);
      request.off('data', onData).off('end', onEnd).off('error', onGone).off('close', onGone);
      if (!result.ok && result.reason !== 'aborted') request.resume();
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limits.maxBytes) return finish({ ok: false, reason: 'too_large' });
      chunks.push(chunk);
    };
    const onEnd = (): void => finish({ ok: true, body: Buffer.concat(chunks, size) });
    const onGone = (): void => finish({ ok: false, reason: 'aborted' });
    if (limits.timeoutMs !== undefined) {
      timer = setTimeout(() => finish({ ok: false, reason: 'timeout' }), limits.timeoutMs);
    }
    request.on('data', onData).on('end', onEnd).on('error', onGone).on('close', onGone);
  });
}

/**
 * How long a client may keep sending a body nobody reads after its answer
 * was sent (a refused or timed-out body); then the socket is destroyed.
 */
export const DISCARD_GRACE_MS = 2_000;

/**
 * For an answer given before the body was read: once the response is sent,
 * the socket gets `graceMs` to finish (the client reads the answer and
 * closes), then is destroyed, so a client trickling an unwanted body cannot
 * hold it open. The answer itself should carry `Connection: close`.
 */
export function closeAfterResponse(response: ServerResponse, graceMs = DISCARD_GRACE_MS): void {
  const socket = response.req.socket;
  response.req.resume();
  response.once('finish', () => {
    // Destroying at once could reset the connection before the client reads the answer.
    const timer = setTimeout(() => socket.destroy(), graceMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  });
}

/** What parsing a JSON body gave: the value, or why there is none. */
export type JsonBodyResult =
  { ok: true; value: unknown } | { ok: false; reason: 'not_utf8' | 'too_deep' | 'invalid_json' };

/**
 * Parses `body` as UTF-8 JSON nested at most `maxDepth` arrays or objects
 * deep. The depth is checked on the text first, in one pass, so a deeply
 * nested value is refused before JSON.parse builds it (and before anything
 * recursive walks it later).
 */
export function parseJsonBody(body: Buffer, maxDepth: number): JsonBodyResult {
  if (!isUtf8(body)) return { ok: false, reason: 'not_utf8' };
  const text = body.toString('utf8');
  if (jsonDepthExceeds(text, maxDepth)) return { ok: false, reason: 'too_deep' };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, reason: 'invalid_json' };
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACKET = 0x5d;
const CLOSE_BRACE = 0x7d;

/**
 * Whether the JSON text nests arrays or objects more than `maxDepth` deep.
 * Brackets inside strings do not count; malformed text may pass, JSON.parse
 * then refuses it.
 */
export function jsonDepthExceeds(text: string, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > maxDepth) return true;
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) {
      depth--;
    }
  }
  return false;
}
