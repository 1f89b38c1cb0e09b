/**
 * A strict parser for the head of an HTTP/1.1 request (request line and
 * header fields), used to take WebSocket upgrades without node:http: an
 * upgrade then costs one small object instead of an IncomingMessage and
 * its parser state.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** What the upgrade pipeline needs from a request; node's IncomingMessage has the same shape. */
export interface UpgradeRequest {
  method?: string | undefined;
  url?: string | undefined;
  headers: IncomingHttpHeaders;
  socket: { remoteAddress?: string | undefined };
}

/** The end of a request head. */
const HEAD_END = Buffer.from('\r\n\r\n');

/** Where the head ends (index after the blank line), or -1 when incomplete. */
export function findHeadEnd(data: Buffer): number {
  const at = data.indexOf(HEAD_END);
  return at < 0 ? -1 : at + 4;
}

/** Header fields whose duplicates are dropped, as node:http does; others are joined with ", ". */
const SINGLE = new Set([
  'host',
  'authorization',
  'proxy-authorization',
  'content-type',
  'content-length',
  'user-agent',
  'referer',
  'from',
]);

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/1\.1$/;

export interface ParsedHead {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

/**
 * Parses a complete request head (without the final blank line). Returns
 * null for anything malformed: a bad request line, a version other than
 * HTTP/1.1, a field without a token name, obsolete line folding, or
 * control characters in a value.
 */
export function parseRequestHead(head: string): ParsedHead | null {
  const lines = head.split('\r\n');
  const match = REQUEST_LINE.exec(lines[0] ?? '');
  if (match === null) return null;
  const headers: Record<string, string | string[]> = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) return null;
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return null;
    const value = line.slice(colon + 1).trim();
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) return null;
    const key = name.toLowerCase();
    const existing = headers[key];
    if (existing === undefined) headers[key] = value;
    else if (key === 'set-cookie')
      headers[key] = [...(Array.isArray(existing) ? existing : [existing]), value];
    else if (!SINGLE.has(key)) headers[key] = `${existing as string}, ${value}`;
  }
  return { method: match[1]!, url: match[2]!, headers: headers };
}
