/**
 * A strict parser for the head of an HTTP/1.1 request (request line and
 * header fields), used to take WebSocket upgrades without node:http: an
 * upgrade then costs one small object instead of an IncomingMessage and
 * its parser state.
 *
 * It takes only a strict subset of what node:http (llhttp, strict mode)
 * accepts, and reads that subset exactly as node:http does. Everything
 * else, malformed or merely unusual, gets null, and the caller hands the
 * bytes to node:http, which then accepts or refuses it itself: a front
 * proxy that agrees with node:http about a request therefore also agrees
 * with this parser. The character classes and rules below were checked
 * byte by byte against node 20's llhttp.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** What the upgrade pipeline needs from a request; node's IncomingMessage has the same shape. */
export interface UpgradeRequest {
  method?: string | undefined;
  url?: string | undefined;
  headers: IncomingHttpHeaders;
  socket: { remoteAddress?: string | undefined };
}

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
/** The only method, target form and version the fast path takes. */
const LINE_START = 'GET /';
const VERSION = 'HTTP/1.1';

/** Byte classes, indexed by char code (latin1, so every code is below 256). */
function byteClass(accepts: (c: number) => boolean): Uint8Array {
  const table = new Uint8Array(256);
  for (let c = 0; c < 256; c++) table[c] = accepts(c) ? 1 : 0;
  return table;
}

/** RFC 9110 tchar: what llhttp takes in a header name. */
const TOKEN_CHARS = "!#$%&'*+-.^_`|~";
const TCHAR = byteClass(
  (c) =>
    (c >= 0x30 && c <= 0x39) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    TOKEN_CHARS.includes(String.fromCharCode(c)),
);
/** Field value bytes llhttp takes: HTAB, SP, VCHAR and obs-text (not DEL, not other controls). */
const VALUE_CHAR = byteClass((c) => c === HTAB || (c >= 0x20 && c <= 0x7e) || c >= 0x80);
/** Request-target bytes llhttp takes in strict mode: visible ASCII only. */
const TARGET_CHAR = byteClass((c) => c >= 0x21 && c <= 0x7e);

/**
 * node:http keeps the first 2000 entries of its flat [name, value, ...]
 * list (maxHeaderPairs) and silently drops the rest. A longer head goes to
 * node:http so both sides see the same fields.
 */
const MAX_HEADER_LINES = 1000;

/**
 * Fields of which node:http keeps only the first (IncomingMessage's
 * matchKnownFields, node 20). It joins Cookie with "; ", keeps Set-Cookie
 * as an array and joins every other repeated field with ", ".
 */
const KEEP_FIRST = new Set([
  'age',
  'authorization',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

/**
 * findHeadEnd's answer for a head the fast path will not take, known before
 * the head is complete: a lone CR or LF, a control byte or DEL, or a line
 * (or the start of one) outside the strict form. node:http refuses such
 * heads at once (or, for forms it accepts, takes them), so they go to it
 * at once.
 */
export const HAND_OFF = -2;

/** The end of a request head. */
const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * Where the head ends (index after the blank line), -1 while incomplete, or
 * HAND_OFF. A complete head is judged by parseRequestHead; an incomplete
 * one is checked as it arrives, up to its last byte, so a head that
 * node:http refuses at once does not wait here for the timeout. Bytes
 * before `from` were checked by an earlier call on a shorter prefix; the
 * scan backs up three bytes so a CRLFCRLF split across calls is found. JS
 * loops only touch new bytes and each complete line once; finding the
 * current line's start and colon is a native search.
 */
export function findHeadEnd(data: Buffer, from = 0): number {
  const start = from > 3 ? from - 3 : 0;
  const at = data.indexOf(HEAD_END, start);
  if (at >= 0) return at + 4;
  const n = data.length;
  for (let i = start; i < n; i++) {
    const c = data[i]!;
    if (c === LF) {
      if (i === 0 || data[i - 1] !== CR || !lineOk(data, i - 1)) return HAND_OFF;
    } else if (c === CR) {
      if (i + 1 < n && data[i + 1] !== LF) return HAND_OFF;
    } else if (VALUE_CHAR[c] !== 1) {
      return HAND_OFF;
    }
  }
  // A CR at the very end awaits its LF: the line before it must be complete
  // (llhttp refuses a CR inside a name or the request line at once).
  if (n > 0 && data[n - 1] === CR) return lineOk(data, n - 1) ? -1 : HAND_OFF;
  // The line still arriving.
  const lineStart = data.lastIndexOf(LF, n - 1) + 1;
  const checkFrom = start > lineStart ? start : lineStart;
  const ok =
    lineStart === 0
      ? requestLinePrefixOk(data, checkFrom, n)
      : fieldLinePrefixOk(data, lineStart, checkFrom, n);
  return ok ? -1 : HAND_OFF;
}

/** Whether the line ending at `cr` (its CR) is one the fast path takes: the request line, a field, or the blank line. */
function lineOk(data: Buffer, cr: number): boolean {
  const lineStart = data.lastIndexOf(LF, cr - 1) + 1;
  const line = data.toString('latin1', lineStart, cr);
  if (lineStart === 0) return requestLineEnd(line) === line.length;
  return line === '' || fieldLineOk(line);
}

/** Whether data[checkFrom, end) can continue a strict request line (data[0, checkFrom) was checked). */
function requestLinePrefixOk(data: Buffer, checkFrom: number, end: number): boolean {
  let i = checkFrom;
  for (; i < end && i < LINE_START.length; i++) if (data[i] !== LINE_START.charCodeAt(i)) return false;
  const sp = data.indexOf(SP, LINE_START.length);
  const targetEnd = sp < 0 || sp >= end ? end : sp;
  for (; i < targetEnd; i++) if (TARGET_CHAR[data[i]!] !== 1) return false;
  if (targetEnd === end) return true;
  if (end - sp - 1 > VERSION.length) return false;
  for (i = i > sp + 1 ? i : sp + 1; i < end; i++) {
    if (data[i] !== VERSION.charCodeAt(i - sp - 1)) return false;
  }
  return true;
}

/** Whether data[checkFrom, end) can continue a header line starting at lineStart. */
function fieldLinePrefixOk(data: Buffer, lineStart: number, checkFrom: number, end: number): boolean {
  const colon = data.indexOf(COLON, lineStart);
  const nameEnd = colon < 0 || colon >= end ? end : colon;
  if (nameEnd < end) {
    const length = nameEnd - lineStart;
    if (length === 0) return false;
    // Only names of a framing field's length are copied out, so a long name costs nothing per call.
    if ((length === 14 || length === 17) && isFraming(data.toString('latin1', lineStart, nameEnd)))
      return false;
  }
  let i = checkFrom;
  for (; i < nameEnd; i++) if (TCHAR[data[i]!] !== 1) return false;
  for (i = i > nameEnd + 1 ? i : nameEnd + 1; i < end; i++) if (VALUE_CHAR[data[i]!] !== 1) return false;
  return true;
}

/**
 * Where the strict request line `GET SP origin-form SP HTTP/1.1` at the
 * start of `head` ends, or -1. The fast path takes nothing else: other
 * methods, `*`, absolute-form and other versions are node:http's business.
 */
function requestLineEnd(head: string): number {
  if (!head.startsWith(LINE_START)) return -1;
  const n = head.length;
  let i = LINE_START.length;
  while (i < n && TARGET_CHAR[head.charCodeAt(i)] === 1) i++;
  if (head.charCodeAt(i) !== SP || !head.startsWith(VERSION, i + 1)) return -1;
  return i + 1 + VERSION.length;
}

/** Whether a complete header line is `token ":" value` with value bytes llhttp takes. */
function fieldLineOk(line: string): boolean {
  let i = 0;
  while (i < line.length && TCHAR[line.charCodeAt(i)] === 1) i++;
  if (i === 0 || line.charCodeAt(i) !== COLON || isFraming(line.slice(0, i))) return false;
  for (i++; i < line.length; i++) if (VALUE_CHAR[line.charCodeAt(i)] !== 1) return false;
  return true;
}

/**
 * Whether a field name is Content-Length or Transfer-Encoding: framing is
 * for node:http to judge (llhttp refuses bad values, duplicates and the
 * two together as they arrive), so the fast path takes neither.
 */
function isFraming(name: string): boolean {
  if (name.length !== 14 && name.length !== 17) return false;
  const key = name.toLowerCase();
  return key === 'content-length' || key === 'transfer-encoding';
}

export interface ParsedHead {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /**
   * Whether node:http would treat the request as an upgrade: an Upgrade
   * field with a non-empty value and a Connection field with the `upgrade`
   * option, as llhttp reads it.
   */
  upgrade: boolean;
}

/**
 * Parses a complete request head (without the final blank line). Returns
 * null for anything outside the strict form: a request line other than
 * `GET SP origin-form SP HTTP/1.1`, a line ending other than CRLF, a
 * field name that is not a token, whitespace before the colon or at the
 * start of a line (obsolete folding), a control character or DEL in a
 * value or the target, Content-Length or Transfer-Encoding (framing is for
 * node:http to judge), a second Host field (counted in node:http's
 * rawHeaders), or more fields than node:http keeps.
 */
export function parseRequestHead(head: string): ParsedHead | null {
  const n = head.length;
  let i = requestLineEnd(head);
  if (i < 0) return null;
  const url = head.slice(LINE_START.length - 1, i - 1 - VERSION.length);

  const headers: Record<string, string | string[]> = {};
  let lines = 0;
  let upgradeField = false;
  let connectionUpgrade = false;
  while (i < n) {
    if (head.charCodeAt(i) !== CR || head.charCodeAt(i + 1) !== LF) return null;
    i += 2;
    if (++lines > MAX_HEADER_LINES) return null;
    const nameStart = i;
    while (i < n && TCHAR[head.charCodeAt(i)] === 1) i++;
    if (i === nameStart || head.charCodeAt(i) !== COLON) return null;
    const key = head.slice(nameStart, i).toLowerCase();
    i++;
    let c = head.charCodeAt(i);
    while (c === SP || c === HTAB) c = head.charCodeAt(++i);
    const valueStart = i;
    let valueEnd = i;
    while (i < n) {
      c = head.charCodeAt(i);
      if (c === CR) break;
      if (VALUE_CHAR[c] !== 1) return null;
      i++;
      if (c !== SP && c !== HTAB) valueEnd = i;
    }
    const value = head.slice(valueStart, valueEnd);
    if (isFraming(key)) return null;
    // The pipeline refuses a repeated Host; headers keep only the first, so node:http's rawHeaders must count them.
    if (key === 'host' && headers.host !== undefined) return null;
    if (key === 'upgrade') upgradeField ||= value !== '';
    else if (key === 'connection') connectionUpgrade ||= hasUpgradeOption(head, valueStart, i);
    const existing = headers[key];
    if (existing === undefined) {
      headers[key] = key === 'set-cookie' ? [value] : value;
      continue;
    }
    if (key === 'set-cookie') (existing as string[]).push(value);
    else if (key === 'cookie') headers[key] = `${existing as string}; ${value}`;
    else if (!KEEP_FIRST.has(key)) headers[key] = `${existing as string}, ${value}`;
  }
  return { method: 'GET', url, headers, upgrade: upgradeField && connectionUpgrade };
}

const UPGRADE = 'upgrade';

/**
 * Whether a Connection value (from `start` to `end` in `head`, trailing
 * whitespace included) lists `upgrade` the way llhttp reads it: elements
 * split at commas, SP or HTAB skipped before an element, but only SP
 * allowed after it (`upgrade\t` is not the option for llhttp).
 */
function hasUpgradeOption(head: string, start: number, end: number): boolean {
  let i = start;
  while (i < end) {
    let c = head.charCodeAt(i);
    while ((c === SP || c === HTAB) && i < end) c = head.charCodeAt(++i);
    let matched = end - i >= UPGRADE.length;
    for (let k = 0; matched && k < UPGRADE.length; k++) {
      // For the letters of `upgrade`, OR-ing 0x20 maps exactly their two cases onto them.
      matched = (head.charCodeAt(i + k) | 0x20) === UPGRADE.charCodeAt(k);
    }
    if (matched) {
      i += UPGRADE.length;
      while (i < end && head.charCodeAt(i) === SP) i++;
      if (i === end || head.charCodeAt(i) === 0x2c) return true;
    }
    while (i < end && head.charCodeAt(i) !== 0x2c) i++;
    i++;
  }
  return false;
}
