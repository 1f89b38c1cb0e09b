/**
 * The opening handshake (RFC 6455 §4.2): request checks, the accept value,
 * subprotocol parsing and the 101 response. Refusals come from the table in
 * rejections.ts.
 */
import * as nodeCrypto from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { HttpRejection, refusal, type Rejection } from '../http/rejections.ts';

/** The GUID appended to the client's key (RFC 6455 §1.3). */
export const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** node:crypto's one-shot digest (Node ≥ 20.12); undefined on older versions. */
const oneShotHash = (
  nodeCrypto as {
    hash?: (algorithm: string, data: string, encoding: 'base64') => string;
  }
).hash;

/**
 * base64(SHA-1(key + GUID)), the value of `Sec-WebSocket-Accept`. The
 * one-shot digest builds no Hash object: it takes less than half the time
 * of createHash → update → digest.
 */
export const acceptKey: (key: string) => string =
  oneShotHash === undefined
    ? (key) =>
        nodeCrypto
          .createHash('sha1')
          .update(key + WEBSOCKET_GUID)
          .digest('base64')
    : (key) => oneShotHash('sha1', key + WEBSOCKET_GUID, 'base64');

const KEY_PATTERN = /^[A-Za-z0-9+/]{22}==$/;

/**
 * Whether `key` is the base64 encoding of exactly 16 bytes: 22 characters of
 * the standard alphabet and "==". Like common servers, the unused low bits
 * of the last character are not required to be zero.
 */
export function isValidKey(key: string | undefined): boolean {
  return typeof key === 'string' && KEY_PATTERN.test(key);
}

/**
 * Whether a comma-separated header (possibly repeated) contains `token`,
 * ASCII case-insensitively. One pass, no per-element strings: the list is
 * attacker-sized.
 */
export function headerHasToken(value: string | string[] | undefined, token: string): boolean {
  if (value === undefined) return false;
  const wanted = token.toLowerCase();
  if (!Array.isArray(value)) return listHasToken(value, wanted);
  for (const v of value) if (listHasToken(v, wanted)) return true;
  return false;
}

function listHasToken(list: string, wanted: string): boolean {
  const n = list.length;
  for (let start = 0; start <= n;) {
    let end = list.indexOf(',', start);
    if (end < 0) end = n;
    const [from, to] = trimOws(list, start, end);
    if (to - from === wanted.length && equalsAsciiLower(list, from, wanted)) return true;
    start = end + 1;
  }
  return false;
}

/** The bounds of list[start, end) without optional whitespace (SP and HTAB only, RFC 9110 §5.6.3). */
function trimOws(list: string, start: number, end: number): [number, number] {
  let c = list.charCodeAt(start);
  while (start < end && (c === 0x20 || c === 0x09)) c = list.charCodeAt(++start);
  c = list.charCodeAt(end - 1);
  while (end > start && (c === 0x20 || c === 0x09)) c = list.charCodeAt(--end - 1);
  return [start, end];
}

/** Whether list[at, at + wanted.length) equals the lower-case ASCII `wanted`, folding only A–Z. */
function equalsAsciiLower(list: string, at: number, wanted: string): boolean {
  for (let k = 0; k < wanted.length; k++) {
    let c = list.charCodeAt(at + k);
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (c !== wanted.charCodeAt(k)) return false;
  }
  return true;
}

/** A token as RFC 7230 defines it (subprotocol names must be tokens). */
const TOKEN_PATTERN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Most subprotocols an upgrade may offer. RFC 6455 sets no bound; clients
 * offer a handful, and the list is handed to a user-supplied selector.
 */
export const MAX_SUBPROTOCOLS = 64;

/** The subprotocols a client offered, in its order of preference. Invalid entries are dropped. */
export function parseSubprotocols(value: string | string[] | undefined): string[] {
  return readSubprotocols(value, Infinity) ?? [];
}

/**
 * Like parseSubprotocols, but null when the list has more than `max`
 * non-empty elements (invalid ones and duplicates count too). Linear in
 * the header's length, and stops at the first element over the cap.
 */
export function readSubprotocols(
  value: string | string[] | undefined,
  max: number = MAX_SUBPROTOCOLS,
): string[] | null {
  if (value === undefined) return [];
  const out: string[] = [];
  const seen = new Set<string>();
  let elements = 0;
  for (const list of Array.isArray(value) ? value : [value]) {
    const n = list.length;
    for (let start = 0; start <= n;) {
      let end = list.indexOf(',', start);
      if (end < 0) end = n;
      const [from, to] = trimOws(list, start, end);
      start = end + 1;
      if (from === to) continue;
      if (++elements > max) return null;
      const name = list.slice(from, to);
      if (TOKEN_PATTERN.test(name) && !seen.has(name)) {
        seen.add(name);
        out.push(name);
      }
    }
  }
  return out;
}

/** The refusal for an upgrade offering more than MAX_SUBPROTOCOLS subprotocols. */
export function tooManySubprotocols(): Rejection {
  return refusal(
    HttpRejection.TOO_MANY_SUBPROTOCOLS,
    `Sec-WebSocket-Protocol lists more than ${MAX_SUBPROTOCOLS} subprotocols`,
  );
}

/** What an upgrade request is read from: node's IncomingMessage, or the fast path's parsed head. */
export interface HandshakeRequest {
  method?: string | undefined;
  url?: string | undefined;
  headers: IncomingHttpHeaders;
  /**
   * The fields as sent, names and values alternating (node:http's
   * IncomingMessage has them). Only consulted to count Host fields, which
   * `headers` keeps once; the fast path hands a repeated Host to node:http.
   */
  rawHeaders?: readonly string[] | undefined;
  /** node:http's `major.minor`; the fast path takes only HTTP/1.1 and leaves it unset. */
  httpVersion?: string | undefined;
}

/**
 * An upgrade request read once: everything the pipeline's steps consume, in
 * their order, so no step goes back to the raw headers.
 */
export interface Handshake {
  method: string | undefined;
  /** Whether the request is HTTP/1.1 or later (RFC 6455 §4.1). */
  http11: boolean;
  /** How many Host fields the request has. */
  hosts: number;
  /** Whether the request announces a body (Transfer-Encoding, or a Content-Length other than 0). */
  body: boolean;
  origin: string | undefined;
  /** Whether `Connection` lists `upgrade` and `Upgrade` lists `websocket`. */
  upgrade: boolean;
  version: string | undefined;
  key: string | undefined;
  /** The offered subprotocols, in the client's order; null past MAX_SUBPROTOCOLS. */
  subprotocols: string[] | null;
  /** The `room` query parameter, `default` when absent. */
  room: string;
  /** The `Authorization` header, when sent. */
  authorization: string | undefined;
  /** The `token` query parameter, when sent (used only with allowQueryToken). */
  queryToken: string | undefined;
  /** `X-WebSocket-Room-Password` (the first, when repeated). */
  password: string | undefined;
}

/** Reads an upgrade request into a Handshake; linear in the head's size. */
export function readHandshake(req: HandshakeRequest): Handshake {
  const h = req.headers;
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const query = q < 0 ? null : new URLSearchParams(url.slice(q + 1));
  const password = h['x-websocket-room-password'];
  const length = h['content-length'];
  return {
    method: req.method,
    http11: req.httpVersion === undefined || !/^(0\.|1\.0$)/.test(req.httpVersion),
    hosts: req.rawHeaders === undefined ? (h.host === undefined ? 0 : 1) : countHosts(req.rawHeaders),
    body: h['transfer-encoding'] !== undefined || (length !== undefined && length !== '0'),
    origin: h.origin,
    upgrade: headerHasToken(h.connection, 'upgrade') && headerHasToken(h.upgrade, 'websocket'),
    version: h['sec-websocket-version'],
    key: h['sec-websocket-key'],
    subprotocols: readSubprotocols(h['sec-websocket-protocol']),
    room: query?.get('room') ?? 'default',
    authorization: h.authorization,
    queryToken: query?.get('token') ?? undefined,
    password: Array.isArray(password) ? password[0] : password,
  };
}

/** The Host fields in a raw [name, value, ...] list; the name is compared without case. */
function countHosts(raw: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') n++;
  }
  return n;
}

/**
 * The request itself, before anything WebSocket: HTTP/1.1 or later (RFC
 * 6455 §4.1; node:http would take an HTTP/1.0 upgrade), exactly one Host field
 * (RFC 9112 §3.2 answers anything else with 400; RFC 6455 §4.1 requires
 * it), and no body. node:http takes an upgrade that declares a body and
 * passes the body's bytes on as if they were frames, while a front proxy
 * that reads the same request forwards them as a body: refusing such a
 * request leaves the two nothing to disagree about.
 */
export function checkRequest(h: Handshake): Rejection | null {
  if (!h.http11) return refusal(HttpRejection.OLD_HTTP);
  if (h.hosts !== 1) return refusal(HttpRejection.BAD_HOST);
  return h.body ? refusal(HttpRejection.BODY_NOT_ALLOWED) : null;
}

/**
 * Steps 2–5 of the upgrade pipeline: method, upgrade headers, version and
 * key, then the subprotocol cap. Returns the first rejection, or null when
 * the request is a valid WebSocket upgrade.
 */
export function checkHandshake(h: Handshake): Rejection | null {
  return checkMethod(h) ?? checkUpgradeHeaders(h) ?? checkVersion(h) ?? checkKey(h) ?? checkSubprotocols(h);
}

export function checkMethod(h: Handshake): Rejection | null {
  return h.method === 'GET' ? null : refusal(HttpRejection.METHOD_NOT_ALLOWED, undefined, { Allow: 'GET' });
}

export function checkUpgradeHeaders(h: Handshake): Rejection | null {
  return h.upgrade ? null : refusal(HttpRejection.BAD_UPGRADE);
}

export function checkVersion(h: Handshake): Rejection | null {
  return h.version === '13'
    ? null
    : refusal(HttpRejection.BAD_VERSION, undefined, { 'Sec-WebSocket-Version': '13' });
}

export function checkKey(h: Handshake): Rejection | null {
  if (h.key === undefined || h.key === '') return refusal(HttpRejection.KEY_MISSING);
  return isValidKey(h.key) ? null : refusal(HttpRejection.KEY_INVALID);
}

export function checkSubprotocols(h: Handshake): Rejection | null {
  return h.subprotocols === null ? tooManySubprotocols() : null;
}

/** The 101 response completing the handshake. */
export function acceptResponse(
  key: string,
  protocol?: string,
  extraHeaders: Record<string, string> = {},
): string {
  let head =
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n`;
  if (protocol !== undefined) head += `Sec-WebSocket-Protocol: ${protocol}\r\n`;
  for (const [name, value] of Object.entries(extraHeaders)) head += `${name}: ${value}\r\n`;
  return `${head}\r\n`;
}
