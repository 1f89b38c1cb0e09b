/**
 * Leak checks for tests that run servers over loopback: no socket left open
 * on the server, no TCP/TLS socket left anywhere in the process, and no
 * heartbeat sweep timer still running.
 *
 *   const server = trackSockets(http.createServer());
 *   afterEach(() => assertNoLeaks(server));
 *   after(() => closeServer(server));
 */
import assert from 'node:assert/strict';
import type { Server, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { activeSweepers } from '../../src/connection/heartbeat.ts';

const tracked = new WeakMap<Server, Set<Socket>>();

/** Remembers every socket `server` accepts, so `closeServer` can destroy them. Returns `server`. */
export function trackSockets<S extends Server>(server: S): S {
  if (tracked.has(server)) return server;
  const sockets = new Set<Socket>();
  tracked.set(server, sockets);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return server;
}

/** Number of sockets the server still holds open. */
export function openConnections(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.getConnections((error, count) => (error ? reject(error) : resolve(count)));
  });
}

/** Socket handles (TCP and TLS) alive anywhere in this process. */
export function openSocketHandles(): number {
  return process
    .getActiveResourcesInfo()
    .filter((name) => name === 'TCPSocketWrap' || name === 'TLSWrap' || name === 'ConnectWrap').length;
}

export interface LeakCheckOptions {
  /** How long closing sockets get to finish before it counts as a leak (ms, default 2000). */
  timeoutMs?: number;
  /** Also require that no TCP/TLS socket is alive in the process (default true). */
  processSockets?: boolean;
}

/**
 * Waits until `server` (if given) has no open sockets, the heartbeat has no
 * sweep timer and (unless disabled) the process has no socket handle left;
 * fails with an AssertionError naming what is still open after `timeoutMs`.
 */
export async function assertNoLeaks(server?: Server, options: LeakCheckOptions = {}): Promise<void> {
  const { timeoutMs = 2_000, processSockets = true } = options;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const serverSockets = server === undefined ? 0 : await openConnections(server);
    const sweepers = activeSweepers();
    const handles = processSockets ? openSocketHandles() : 0;
    if (serverSockets === 0 && sweepers === 0 && handles === 0) return;
    if (performance.now() >= deadline) {
      assert.fail(
        `leak after ${timeoutMs} ms: ${serverSockets} server socket(s), ` +
          `${sweepers} sweep timer(s), ${handles} socket handle(s) in the process`,
      );
    }
    await sleep(10);
  }
}

/** Destroys whatever sockets `server` still tracks and closes it. */
export async function closeServer(server: Server): Promise<void> {
  for (const socket of tracked.get(server) ?? []) socket.destroy();
  if (!server.listening) return;
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
