/**
 * `dial()`: the Node client side of the opening handshake (RFC 6455 §4.1).
 * The request is written by hand on a plain or TLS socket and the response
 * head is parsed here, so every byte after it reaches the Connection and
 * nothing of node:http's keep-alive or upgrade machinery is involved.
 */
import { randomBytes } from 'node:crypto';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions as TlsOptions } from 'node:tls';
import {
  Connection,
  defaultConnectionOptions,
  type ConnectionHandlers,
  type ConnectionOptions,
} from '../connection/connection.ts';
import { WshubError } from '../errors.ts';
import { acceptKey, headerHasToken, parseSubprotocols } from '../upgrade/handshake.ts';
import { DeflateEndpoint, defaultDeflateSettings, type DeflateSession } from '../protocol/deflate.ts';
import { CLIENT_DEFLATE_OFFER, readDeflateAnswer } from '../protocol/deflate-negotiation.ts';

/** Options of `dial()`. */
export interface DialOptions {
  /** Extra request headers; they replace the defaults of the same name (case-insensitively). */
  headers?: Record<string, string>;
  /** Subprotocols to offer, in order of preference. */
  protocols?: string[];
  /** Connection settings; unset ones come from `defaultConnectionOptions()` with `pingPeriod: 0`. */
  connection?: Partial<ConnectionOptions>;
  /** Callbacks of the new connection. */
  handlers?: ConnectionHandlers;
  /** Bound on connect + handshake, in ms (default 10 s). */
  timeoutMs?: number;
  /** TLS settings for wss:/https: URLs (e.g. `ca`, `rejectUnauthorized`). */
  tls?: TlsOptions;
  /** Aborts the handshake; has no effect once the connection is open. */
  signal?: AbortSignal;
  /**
   * Offer permessage-deflate (RFC 7692) and, when the server agrees,
   * compress messages of at least `threshold` bytes and inflate the
   * server's (within `connection.readLimit`). true = default settings.
   */
  perMessageDeflate?: boolean | Partial<ClientDeflateOptions>;
}

/** Compression settings of a dialled connection. */
export interface ClientDeflateOptions {
  /** Messages shorter than this many bytes are sent uncompressed (default 128). */
  threshold: number;
  /** zlib level 0–9 (default 3). */
  level: number;
  /** zlib memory level 1–9 (default 8). */
  memLevel: number;
}

/**
 * Why `dial()` failed. Codes: BAD_URL, BAD_HEADER, ABORTED, DIAL_FAILED,
 * HANDSHAKE_TIMEOUT, HANDSHAKE_REJECTED (any status but 101; `status` and
 * `body` hold the server's answer), BAD_RESPONSE, BAD_UPGRADE, BAD_ACCEPT,
 * BAD_PROTOCOL, BAD_EXTENSION, BAD_OPTION.
 */
export class DialError extends WshubError {
  constructor(
    code: string,
    message: string,
    /** HTTP status of the response, when one arrived. */
    readonly status?: number,
    /** Body of a non-101 response (bounded to MAX_BODY bytes), decoded as UTF-8. */
    readonly body?: string,
    /** Response headers, names in lower case; repeated headers joined with ", ". */
    readonly headers?: Record<string, string>,
  ) {
    super(code, message);
  }
}

/** Default bound on connect + handshake. */
export const DEFAULT_DIAL_TIMEOUT = 10_000;
/** Largest response head accepted. */
const MAX_HEAD = 16 * 1024;
/** Largest rejection body kept. */
const MAX_BODY = 64 * 1024;

/** An RFC 7230 token: header names and subprotocol names. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

const DEFAULT_PORTS: Record<string, number> = { 'ws:': 80, 'http:': 80, 'wss:': 443, 'https:': 443 };

/** A parsed HTTP response head. */
interface ResponseHead {
  status: number;
  headers: Record<string, string>;
}

/**
 * Opens a WebSocket client connection to `url` (ws:, wss:, http: or https:).
 * Resolves with a Connection of role 'client' once the 101 response has been
 * verified; rejects with a DialError otherwise, having destroyed the socket.
 */
export function dial(url: string | URL, options: DialOptions = {}): Promise<Connection> {
  let target: URL;
  try {
    target = typeof url === 'string' ? new URL(url) : url;
  } catch {
    return Promise.reject(new DialError('BAD_URL', `invalid URL: ${String(url)}`));
  }
  const defaultPort = DEFAULT_PORTS[target.protocol];
  if (defaultPort === undefined) {
    return Promise.reject(
      new DialError('BAD_URL', `unsupported scheme ${target.protocol} (use ws, wss, http or https)`),
    );
  }
  if (target.hash !== '') {
    return Promise.reject(new DialError('BAD_URL', 'a WebSocket URL may not have a fragment'));
  }
  const protocols = options.protocols ?? [];
  const key = randomBytes(16).toString('base64');
  let deflate: DeflateEndpoint | null;
  let request: { text: string; key: string; offered: string[] };
  try {
    deflate = clientDeflate(options.perMessageDeflate);
    request = buildRequest(target, key, protocols, options.headers ?? {}, deflate !== null);
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
  if (options.signal?.aborted === true) {
    return Promise.reject(new DialError('ABORTED', 'dial aborted'));
  }

  const secure = target.protocol === 'wss:' || target.protocol === 'https:';
  const host = target.hostname.startsWith('[') ? target.hostname.slice(1, -1) : target.hostname;
  const port = target.port === '' ? defaultPort : Number(target.port);
  const socket: Socket = secure
    ? tlsConnect({
        host,
        port,
        ...(isIP(host) === 0 ? { servername: host } : {}),
        ALPNProtocols: ['http/1.1'],
        ...options.tls,
      })
    : netConnect({ host, port });

  return new Promise<Connection>((resolve, reject) => {
    let received: Buffer = Buffer.alloc(0);
    let head: ResponseHead | null = null;
    let bodyLength = -1;
    let settled = false;

    const cleanup = (): void => {
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('end', onEnd);
      socket.off('close', onClose);
    };
    const fail = (error: DialError): void => {
      if (settled) return;
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onAbort = (): void => fail(new DialError('ABORTED', 'dial aborted'));
    const onError = (error: Error): void => fail(new DialError('DIAL_FAILED', error.message));
    const onClose = (): void => onEnd();
    const onEnd = (): void => {
      if (head !== null) rejected(head, received);
      else fail(new DialError('BAD_RESPONSE', 'connection closed before the handshake response'));
    };
    const rejected = (response: ResponseHead, body: Buffer): void => {
      const text = body.subarray(0, MAX_BODY).toString('utf8');
      fail(
        new DialError(
          'HANDSHAKE_REJECTED',
          `server answered ${response.status} instead of 101`,
          response.status,
          text,
          response.headers,
        ),
      );
    };
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      if (head !== null) {
        // Collecting the body of a rejection.
        if ((bodyLength >= 0 && received.length >= bodyLength) || received.length >= MAX_BODY) {
          rejected(head, received.subarray(0, bodyLength >= 0 ? bodyLength : MAX_BODY));
        }
        return;
      }
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) {
        if (received.length > MAX_HEAD) fail(new DialError('BAD_RESPONSE', 'response head too large'));
        return;
      }
      if (end > MAX_HEAD) {
        fail(new DialError('BAD_RESPONSE', 'response head too large'));
        return;
      }
      const parsed = parseHead(received.subarray(0, end).toString('latin1'));
      if (parsed === null) {
        fail(new DialError('BAD_RESPONSE', 'malformed HTTP response'));
        return;
      }
      const rest = received.subarray(end + 4);
      if (parsed.status !== 101) {
        head = parsed;
        received = rest;
        const length = parsed.headers['content-length'];
        bodyLength = length !== undefined && /^\d+$/.test(length) ? Number(length) : -1;
        if (bodyLength >= 0 && rest.length >= bodyLength) rejected(parsed, rest.subarray(0, bodyLength));
        return;
      }
      const problem = verifyUpgrade(parsed, request.key, request.offered);
      if (problem !== null) {
        fail(problem);
        return;
      }
      const session = agreedDeflate(parsed.headers['sec-websocket-extensions'], deflate);
      if (typeof session === 'string') {
        fail(new DialError('BAD_EXTENSION', session, 101));
        return;
      }
      cleanup();
      const connectionOptions: ConnectionOptions = {
        ...defaultConnectionOptions(),
        pingPeriod: 0,
        ...options.connection,
      };
      const protocol = parsed.headers['sec-websocket-protocol'];
      // Attached synchronously, so the socket's later data and events go to the Connection.
      resolve(
        new Connection(socket, connectionOptions, options.handlers ?? {}, protocol, rest, 'client', session),
      );
    };

    const timer = setTimeout(
      () => fail(new DialError('HANDSHAKE_TIMEOUT', 'no handshake response in time')),
      options.timeoutMs ?? DEFAULT_DIAL_TIMEOUT,
    );
    options.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('end', onEnd);
    socket.on('close', onClose);
    socket.write(request.text);
  });
}

/**
 * The request head, the key and the subprotocols it carries (headers given by
 * the caller replace ours, so those are read back from the final set).
 */
function buildRequest(
  target: URL,
  key: string,
  protocols: string[],
  extra: Record<string, string>,
  offerDeflate: boolean,
): { text: string; key: string; offered: string[] } {
  const headers = new Map<string, [string, string]>();
  for (const protocol of protocols) {
    if (!TOKEN.test(protocol))
      throw new DialError('BAD_HEADER', `invalid subprotocol ${JSON.stringify(protocol)}`);
  }
  const set = (name: string, value: string): void => {
    if (!TOKEN.test(name) || /[\r\n\0]/.test(value)) {
      throw new DialError('BAD_HEADER', `invalid request header ${JSON.stringify(name)}`);
    }
    headers.set(name.toLowerCase(), [name, value]);
  };
  set('Host', target.host);
  set('Upgrade', 'websocket');
  set('Connection', 'Upgrade');
  set('Sec-WebSocket-Key', key);
  set('Sec-WebSocket-Version', '13');
  if (protocols.length > 0) set('Sec-WebSocket-Protocol', protocols.join(', '));
  if (offerDeflate) set('Sec-WebSocket-Extensions', CLIENT_DEFLATE_OFFER);
  for (const [name, value] of Object.entries(extra)) set(name, value);
  const path = (target.pathname === '' ? '/' : target.pathname) + target.search;
  let text = `GET ${path} HTTP/1.1\r\n`;
  for (const [name, value] of headers.values()) text += `${name}: ${value}\r\n`;
  return {
    text: `${text}\r\n`,
    key: headers.get('sec-websocket-key')![1],
    offered: parseSubprotocols(headers.get('sec-websocket-protocol')?.[1]),
  };
}

/** Parses a status line plus headers; null when it is not an HTTP/1.x response. */
function parseHead(text: string): ResponseHead | null {
  const lines = text.split('\r\n');
  const match = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (match === null) return null;
  // No prototype, so a header named like an Object method cannot collide.
  const headers = Object.create(null) as Record<string, string>;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return null;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return { status: Number(match[1]), headers };
}

/** Checks a 101 response against what we asked for (RFC 6455 §4.1, client steps 1–6). */
function verifyUpgrade(head: ResponseHead, key: string, protocols: string[]): DialError | null {
  const h = head.headers;
  if (!headerHasToken(h.upgrade, 'websocket') || !headerHasToken(h.connection, 'upgrade')) {
    return new DialError('BAD_UPGRADE', 'missing "Upgrade: websocket" or "Connection: Upgrade"', 101);
  }
  if (h['sec-websocket-accept'] !== acceptKey(key)) {
    return new DialError('BAD_ACCEPT', 'Sec-WebSocket-Accept does not match the key', 101);
  }
  const protocol = h['sec-websocket-protocol'];
  if (protocol !== undefined && !protocols.includes(protocol)) {
    return new DialError('BAD_PROTOCOL', `server selected a subprotocol not offered: ${protocol}`, 101);
  }
  return null;
}

/** The client's deflate endpoint for the dial option, or null when deflate is not offered. */
function clientDeflate(option: DialOptions['perMessageDeflate']): DeflateEndpoint | null {
  if (option === undefined || option === false) return null;
  const settings = defaultDeflateSettings();
  if (option !== true) {
    const { threshold = settings.threshold, level = settings.level, memLevel = settings.memLevel } = option;
    const bad =
      !Number.isInteger(threshold) || threshold < 0
        ? 'threshold'
        : !Number.isInteger(level) || level < 0 || level > 9
          ? 'level'
          : !Number.isInteger(memLevel) || memLevel < 1 || memLevel > 9
            ? 'memLevel'
            : null;
    if (bad !== null) throw new DialError('BAD_OPTION', `perMessageDeflate.${bad} is out of range`);
    settings.threshold = threshold;
    settings.level = level;
    settings.memLevel = memLevel;
  }
  return new DeflateEndpoint(settings);
}

/**
 * The session the server's `Sec-WebSocket-Extensions` answer sets up:
 * null without an answer, an error message for an answer that was not
 * offered or is invalid (the dial fails, RFC 7692 §5.1).
 */
function agreedDeflate(
  answer: string | undefined,
  deflate: DeflateEndpoint | null,
): DeflateSession | null | string {
  if (answer === undefined) return null;
  if (deflate === null) return 'server selected an extension not offered';
  const agreement = readDeflateAnswer(answer);
  if (agreement === null || typeof agreement === 'string') return agreement;
  return deflate.sessionFor(agreement, 'client');
}
