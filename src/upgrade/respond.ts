/**
 * The last steps of an upgrade, shared by the echo server and the hub
 * server: answering with an HTTP error (never a 101) or with the 101 that
 * hands the socket to a Connection. Also the http.Server settings that bound
 * how long and how large an upgrade request may be.
 */
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_HEADER_SIZE } from '../config.ts';
import { Connection, type ConnectionHandlers, type ConnectionOptions } from '../connection/connection.ts';
import { acceptResponse, parseSubprotocols } from './handshake.ts';
import type { UpgradeRequest } from './request-head.ts';
import type { DeflateEndpoint, DeflateSession } from '../protocol/deflate.ts';
import { rejectionResponse, sendRejection, type Rejection } from '../http/rejections.ts';

/** Subprotocol prefix under which a browser may present its bearer token. */
export const BEARER_PROTOCOL_PREFIX = 'wshub.bearer.';

/** Picks one of the offered subprotocols, or undefined for none. */
export type ProtocolSelector = (offered: string[], request: UpgradeRequest) => string | undefined;

export { DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_HEADER_SIZE };

/**
 * Options for `http.createServer` that bound the upgrade request: its
 * headers must arrive within `handshakeTimeout` ms (else 408) and fit in
 * `maxHeaderSize` bytes (else 431). Node checks the timeout every
 * `connectionsCheckingInterval` ms, so that is set to a fraction of it.
 */
export function boundedServerOptions(
  handshakeTimeout = DEFAULT_HANDSHAKE_TIMEOUT,
  maxHeaderSize = DEFAULT_MAX_HEADER_SIZE,
): {
  headersTimeout: number;
  requestTimeout: number;
  maxHeaderSize: number;
  connectionsCheckingInterval: number;
} {
  return {
    headersTimeout: handshakeTimeout,
    requestTimeout: handshakeTimeout,
    maxHeaderSize,
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(handshakeTimeout / 4))),
  };
}

/**
 * The protocol the selector picked, provided the client offered it: a
 * selector can never make the server answer with a protocol nobody asked for.
 */
export function selectProtocol(
  request: UpgradeRequest,
  selector: ProtocolSelector | undefined,
  offered: readonly string[] = parseSubprotocols(request.headers['sec-websocket-protocol']),
): string | undefined {
  if (selector === undefined) return undefined;
  // Token-carrying entries of the browser auth path are never candidates.
  const candidates = offered.filter((p) => !p.startsWith(BEARER_PROTOCOL_PREFIX));
  if (candidates.length === 0) return undefined;
  const chosen = selector(candidates, request);
  return chosen !== undefined && candidates.includes(chosen) ? chosen : undefined;
}

/** Where a rejection is written: the raw socket of an upgrade, or a normal response. */
export type Responder = { socket: Duplex } | { response: ServerResponse };

/** Sends an HTTP error for a refused upgrade and closes the connection. */
export function reject(target: Responder, r: Rejection): void {
  if ('response' in target) return sendRejection(target.response, r);
  const socket = target.socket;
  if (socket.destroyed) return;
  socket.end(rejectionResponse(r));
  // A peer that never reads would keep the socket half-written forever.
  setTimeout(destroyDuplex, 2_000, socket).unref();
}

function destroyDuplex(socket: Duplex): void {
  socket.destroy();
}

/**
 * permessage-deflate for an upgrade: the session agreed from the request's
 * `Sec-WebSocket-Extensions` offers (null when the endpoint has deflate off
 * or no offer is acceptable).
 */
export function negotiateExtensions(
  request: { headers: UpgradeRequest['headers'] },
  deflate: DeflateEndpoint | null | undefined,
): DeflateSession | null {
  if (deflate === null || deflate === undefined) return null;
  return deflate.negotiate(request.headers['sec-websocket-extensions']);
}

/** The 101's extra headers for an agreed extension. */
export function extensionHeaders(session: DeflateSession | null): Record<string, string> {
  return session === null ? {} : { 'Sec-WebSocket-Extensions': session.header };
}

/**
 * Writes the 101 (with `Sec-WebSocket-Extensions` when permessage-deflate
 * is agreed) and hands the socket to a new Connection. Returns null when
 * the socket died during the upgrade.
 */
export function completeUpgrade(
  request: UpgradeRequest,
  socket: Duplex,
  head: Buffer,
  protocol: string | undefined,
  options: ConnectionOptions,
  handlers: ConnectionHandlers,
  deflate: DeflateEndpoint | null = null,
): Connection | null {
  if (socket.destroyed || !socket.writable) return null;
  const key = request.headers['sec-websocket-key'] as string;
  const session = negotiateExtensions(request, deflate);
  socket.write(acceptResponse(key, protocol, extensionHeaders(session)));
  return new Connection(socket as Socket, options, handlers, protocol, head, 'server', session);
}
