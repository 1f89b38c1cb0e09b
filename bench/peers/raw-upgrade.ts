/**
 * The WebSocket handshake done by hand on a plain node:net socket, for the
 * peers that are deliberately not servers (the floors of idle memory and
 * upgrade cost, the line-rate self-test): the request head is read (at
 * most 16 KiB, a split head buffered in a WeakMap until complete), anything
 * but `GET /ws` with a key is refused and closed, and the 101 carries the
 * Sec-WebSocket-Accept computed with node:crypto. No state per socket
 * beyond the socket itself.
 */
import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import { WS_PATH, pathOf, type BearerCheck } from './common.ts';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const MAX_REQUEST_BYTES = 16 * 1024;
/** The end of a request head. */
export const HEADER_END = Buffer.from('\r\n\r\n');
const KEY_PATTERN = /^sec-websocket-key:[ \t]*(\S+)[ \t]*$/im;
const AUTHORIZATION_PATTERN = /^authorization:[ \t]*(.*?)[ \t]*$/im;
/** A server's close frame: FIN + close opcode, unmasked, two bytes of status 1000. */
export const CLOSE_FRAME = Buffer.from([0x88, 0x02, 0x03, 0xe8]);
const CLOSE_OPCODE = 0x8;

/** The `Sec-WebSocket-Key` of a request head (latin1 text without the final blank line). */
export function requestKey(head: string): string | undefined {
  return KEY_PATTERN.exec(head)?.[1];
}

/** The `Authorization` header value of a request head. */
export function requestAuthorization(head: string): string | undefined {
  return AUTHORIZATION_PATTERN.exec(head)?.[1];
}

/** Whether a chunk read after the handshake starts with a close frame (the floors look no further). */
export function startsWithClose(chunk: Buffer): boolean {
  return (chunk[0]! & 0x0f) === CLOSE_OPCODE;
}

function acceptKey(key: string): string {
  return createHash('sha1')
    .update(key + WS_GUID)
    .digest('base64');
}

function refuse(socket: Socket, status: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/** The 101 for `key`. */
export function switchingProtocols(key: string): string {
  return (
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`
  );
}

/** Runs the bearer check with the socket paused, then answers 101 (and calls `upgraded`) or 401. */
function checkThenUpgrade(
  socket: Socket,
  check: BearerCheck,
  authorization: string | undefined,
  key: string,
  rest: Buffer,
  upgraded: (socket: Socket, rest: Buffer) => void,
): void {
  socket.pause();
  void check(authorization).then((ok) => {
    if (socket.destroyed) return;
    if (!ok) return refuse(socket, '401 Unauthorized');
    socket.write(switchingProtocols(key));
    upgraded(socket, rest);
    socket.resume();
  });
}

/**
 * The `data` listener a new socket gets: completes the handshake, then
 * removes itself and calls `upgraded` with the socket and the bytes that
 * followed the request head. One listener function serves every socket.
 * With `check`, the request's `Authorization` header must pass it first
 * (401 otherwise); the socket is paused while it runs.
 */
export function rawUpgrade(
  upgraded: (socket: Socket, rest: Buffer) => void,
  check?: BearerCheck,
): (this: Socket, chunk: Buffer) => void {
  const partial = new WeakMap<Socket, Buffer>();
  return function onHandshakeData(this: Socket, chunk: Buffer): void {
    const earlier = partial.get(this);
    const data = earlier === undefined ? chunk : Buffer.concat([earlier, chunk]);
    const end = data.indexOf(HEADER_END);
    if (end < 0) {
      if (data.length > MAX_REQUEST_BYTES) return refuse(this, '431 Request Header Fields Too Large');
      partial.set(this, data);
      return;
    }
    partial.delete(this);
    this.removeListener('data', onHandshakeData);
    const head = data.toString('latin1', 0, end);
    const [method, target] = head.slice(0, head.indexOf('\r\n')).split(' ');
    if (method !== 'GET' || pathOf(target) !== WS_PATH) return refuse(this, '404 Not Found');
    const key = requestKey(head);
    if (key === undefined) return refuse(this, '400 Bad Request');
    const rest = data.subarray(end + 4);
    if (check === undefined) {
      this.write(switchingProtocols(key));
      return upgraded(this, rest);
    }
    checkThenUpgrade(this, check, requestAuthorization(head), key, rest, upgraded);
  };
}
