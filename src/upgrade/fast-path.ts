/**
 * The fast path for upgrades on servers wshub creates itself: the request
 * head is read straight from the socket and, when it is an upgrade to the
 * WebSocket path, handed to the pipeline without node:http. Every other
 * request (pages, the admin endpoint, other paths) is given, bytes intact,
 * to the http.Server's own parser. This saves memory per connection and CPU
 * per handshake; the checks are the same either way. The time bound (from
 * accept, absolute) is the HandshakeGuard's, which runs in front of this.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { HAND_OFF, findHeadEnd, parseRequestHead, type UpgradeRequest } from './request-head.ts';

export interface RawUpgradeOptions {
  /** The WebSocket paths (without query). */
  paths: readonly string[];
  /**
   * Largest request head the fast path reads, in bytes. A longer one goes
   * to node:http, which counts the same limit over fewer bytes (target,
   * names and values) and answers 431 itself.
   */
  maxHeaderSize: number;
  /** Takes a parsed upgrade request. */
  upgrade(request: UpgradeRequest, socket: Socket, head: Buffer): void;
}

interface Sniffing {
  /** The bytes read so far are `buffer[0, size)`. */
  buffer: Buffer | null;
  size: number;
  options: RawUpgradeOptions;
  handOff: (socket: Socket) => void;
}

const SNIFF = Symbol('wshub.sniff');
type SniffSocket = Socket & { [SNIFF]?: Sniffing };

const GET = Buffer.from('GET ');

/**
 * Puts the fast path in front of `server`'s own connection handling.
 * Must be called before the server accepts connections.
 */
export function interceptUpgrades(server: Server, options: RawUpgradeOptions): void {
  const httpListeners = server.listeners('connection') as Array<(socket: Socket) => void>;
  server.removeAllListeners('connection');
  const handOff = (socket: Socket) => {
    for (const listener of httpListeners) listener.call(server, socket);
  };
  server.on('connection', (socket: Socket) => {
    (socket as SniffSocket)[SNIFF] = { buffer: null, size: 0, options, handOff };
    socket.on('data', onData);
    socket.on('error', onError);
  });
}

function onData(this: SniffSocket, chunk: Buffer): void {
  const state = this[SNIFF];
  if (state === undefined) return;
  const data = append(state, chunk);
  // Anything but a GET goes to node:http at once.
  const prefix = Math.min(data.length, GET.length);
  if (data.compare(GET, 0, prefix, 0, prefix) !== 0) return handOff(this, state, data);
  const end = findHeadEnd(data, data.length - chunk.length);
  // Heads the fast path does not take are node:http's to accept or refuse (at once, with its own 400).
  if (end === HAND_OFF) return handOff(this, state, data);
  if (end < 0) {
    if (data.length > state.options.maxHeaderSize) return handOff(this, state, data);
    return;
  }
  if (end > state.options.maxHeaderSize) return handOff(this, state, data);
  const parsed = parseRequestHead(data.toString('latin1', 0, end - 4));
  if (parsed === null) return handOff(this, state, data);
  const q = parsed.url.indexOf('?');
  const path = q < 0 ? parsed.url : parsed.url.slice(0, q);
  if (!parsed.upgrade || !state.options.paths.includes(path)) return handOff(this, state, data);
  stopSniffing(this);
  const request: UpgradeRequest = {
    method: parsed.method,
    url: parsed.url,
    headers: parsed.headers,
    socket: this,
  };
  state.options.upgrade(request, this, data.subarray(end));
}

/**
 * Adds a chunk to the bytes read so far. The buffer grows by doubling, so a
 * head that arrives a byte at a time costs linear time, not a copy of
 * everything read so far per byte.
 */
function append(state: Sniffing, chunk: Buffer): Buffer {
  const had = state.size;
  const size = had + chunk.length;
  state.size = size;
  let buffer = state.buffer;
  if (buffer === null) {
    state.buffer = chunk;
    return chunk;
  }
  if (buffer.length < size) {
    const grown = Buffer.allocUnsafe(Math.max(size, 2 * buffer.length, 1024));
    buffer.copy(grown, 0, 0, had);
    state.buffer = buffer = grown;
  }
  chunk.copy(buffer, had);
  return buffer.subarray(0, size);
}

function stopSniffing(socket: SniffSocket): void {
  socket.off('data', onData);
  socket.off('error', onError);
  // Assigning (not deleting) keeps the socket object in fast-property mode.
  socket[SNIFF] = undefined;
}

/** Gives the connection to node:http with the bytes read so far put back. */
function handOff(socket: SniffSocket, state: Sniffing, data: Buffer): void {
  socket.pause();
  stopSniffing(socket);
  socket.unshift(data);
  state.handOff(socket);
  // The explicit pause() above would otherwise keep node:http from reading.
  socket.resume();
}

function onError(this: SniffSocket): void {
  this.destroy();
}
