/**
 * Admission of new connections: every socket is tracked from TCP accept
 * until it becomes a WebSocket Connection, is handed to node:http with a
 * complete request head, or closes. While tracked it is bounded by
 *
 * - an absolute deadline, `handshakeTimeout` after accept, that covers the
 *   head *and* any asynchronous pipeline step (token, room authorizer); an
 *   idle timer would be reset by every trickled byte;
 * - a cap per client address, past which a newcomer gets 429;
 * - a cap in total, past which a pending handshake is dropped to make
 *   room (answered 503 with Retry-After where an answer can be written):
 *   the oldest one of the address holding the most. A client that
 *   sends its head promptly thus gets in however many slow sockets are held
 *   open (the reserve that keeps /healthz and new clients served;
 *   established connections need no new descriptor), and even a flood that
 *   churns faster than the pool turns over takes its own sockets, not the
 *   one of a client with a single handshake in flight;
 * - a FIN from the client, which ends the handshake at once.
 *
 * All deadlines are `timeout` after admission, so admission order is also
 * deadline order: one insertion-ordered Set and one timer, armed for the
 * oldest entry, enforce them all. Per handshake this costs a few Set and
 * Map operations, never a timer.
 */
import { addressKey } from '../http/address.ts';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { HttpRejection, refusal, rejectionResponse, type Rejection } from '../http/rejections.ts';

/** Counters of the guard (part of the server's metrics). */
export interface HandshakeMetrics {
  /** Handshakes in progress right now (a gauge). */
  handshakes_pending: number;
  /** Handshakes cut off at the deadline (408 before the head was complete, 503 after). */
  handshake_timeouts: number;
  /** Connections refused with 429 because their address had too many pending handshakes. */
  handshakes_refused_per_address: number;
  /** Pending handshakes dropped to make room for a newcomer when the total cap was reached. */
  handshakes_evicted: number;
}

/** What the rate-limited `handshake_limit` log line reports: counts since the previous line. */
export interface HandshakeLimitReport {
  refused_per_address: number;
  evicted: number;
  timeouts: number;
  pending: number;
  /** The address (or IPv6 /64) most recently refused or evicted. */
  address: string;
}

export interface HandshakeGuardOptions {
  /** Absolute bound from accept to a finished handshake, in ms (0 = none). */
  timeout: number;
  /** Pending handshakes in total (0 = unlimited). */
  maxPending: number;
  /** Pending handshakes per client address, IPv6 per /64 (0 = unlimited). */
  maxPerAddress: number;
  /** Peers the per-address cap skips (trusted proxies, which carry many clients). */
  exempt?: ((address: string | undefined) => boolean) | undefined;
  /** Receives a summary at most once per `logIntervalMs` while limits are being hit. */
  onLimit?: ((report: HandshakeLimitReport) => void) | undefined;
  logIntervalMs?: number;
}

/** Minimum spacing of `handshake_limit` log lines: one per socket would be a log flood of its own. */
export const HANDSHAKE_LOG_INTERVAL_MS = 10_000;

/** How long a connection refused at accept may stay open for its client to read the answer. */
const LINGER_MS = 1_000;
/** Refused connections that may linger at once; past it they are closed at once. */
const MAX_LINGERING = 256;

type Stage = 'head' | 'pipeline';

const MAX_TIMER_DELAY = 2 ** 31 - 1;

interface Pending {
  guard: HandshakeGuard;
  /** The TCP socket: its 'close' ends tracking, also under TLS. */
  socket: Socket;
  /** Where answers are written: the TCP socket, or the TLS socket over it once the TLS handshake is done. */
  io: Duplex;
  /** Whether `io` can carry an HTTP answer (not before the TLS handshake is done). */
  canAnswer: boolean;
  address: string;
  deadline: number;
  stage: Stage;
}

/** The pending handshakes of one address, oldest first. */
interface AddressGroup {
  entries: Set<Pending>;
}

const ENTRY = Symbol('wshub.handshake');
type Tracked = Duplex & { [ENTRY]?: Pending | undefined };

export class HandshakeGuard {
  private readonly pending = new Set<Pending>();
  private readonly perAddress = new Map<string, AddressGroup>();
  /** Groups by their number of pending handshakes (index), to find the largest in O(1). */
  private readonly bySize: Array<Set<AddressGroup>> = [];
  private largest = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly counters: HandshakeMetrics = {
    handshakes_pending: 0,
    handshake_timeouts: 0,
    handshakes_refused_per_address: 0,
    handshakes_evicted: 0,
  };
  private readonly unlogged = { refused_per_address: 0, evicted: 0, timeouts: 0, address: '' };
  private logTimer: NodeJS.Timeout | null = null;
  private lastLog = -Infinity;
  /** Connections refused at accept that are still open for their client to read the answer. */
  private lingering = 0;

  constructor(private readonly options: HandshakeGuardOptions) {}

  metrics(): HandshakeMetrics {
    return { ...this.counters, handshakes_pending: this.pending.size };
  }

  /**
   * Puts the guard in front of `server`'s connection handling (after any
   * other interception, such as the raw upgrade path, so it runs first).
   * `tls`: the server is https, so refusals cannot be written in plain text.
   */
  protect(server: Server, tls: boolean): void {
    const listeners = server.listeners('connection') as Array<(socket: Socket) => void>;
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) => {
      if (!this.admit(socket, socket, tls ? null : socket, 'head')) return;
      for (const listener of listeners) listener.call(server, socket);
    });
    if (tls) {
      server.on('secureConnection', (secure: Duplex & { _parent?: Socket }) => {
        // node:tls keeps the TCP socket as `_parent`; answers now go through TLS.
        const entry = (secure._parent as Tracked | undefined)?.[ENTRY];
        if (entry === undefined) return;
        entry.io = secure;
        entry.canAnswer = true;
        (secure as Tracked)[ENTRY] = entry;
        secure.on('end', onEnd);
      });
    }
    server.prependListener('request', (request: { socket: Duplex }) => this.release(request.socket));
  }

  /**
   * The head is complete and the pipeline runs; its steps may wait, within
   * the same deadline. A socket the guard has not seen (an `attach()`ed
   * server) is admitted here, its deadline counted from now. Returns false
   * when a cap refused it (the socket has been answered and destroyed).
   */
  enterPipeline(socket: Duplex): boolean {
    const entry = (socket as Tracked)[ENTRY];
    if (entry !== undefined) {
      entry.stage = 'pipeline';
      return true;
    }
    return this.admit(socket as Socket, socket, socket, 'pipeline');
  }

  /** The socket left the handshake (it is a Connection now, or node:http has a complete request). */
  release(socket: Duplex): void {
    releaseHandshake(socket);
  }

  /** Starts tracking; false (socket answered and destroyed) when a cap refuses it. */
  private admit(socket: Socket, io: Duplex, plain: Duplex | null, stage: Stage): boolean {
    if (socket.destroyed) return false;
    const address = addressKey(socket.remoteAddress);
    const { maxPending, maxPerAddress, timeout } = this.options;
    const count = this.perAddress.get(address)?.entries.size ?? 0;
    if (maxPerAddress > 0 && count >= maxPerAddress && this.options.exempt?.(socket.remoteAddress) !== true) {
      this.counters.handshakes_refused_per_address++;
      this.unlogged.refused_per_address++;
      this.noteLimit(address);
      this.refuseNewcomer(
        socket,
        plain,
        refusal(HttpRejection.HANDSHAKE_LIMIT, undefined, { 'Retry-After': '1' }),
      );
      return false;
    }
    if (maxPending > 0 && this.pending.size >= maxPending) {
      const group = this.bySize[this.largest]!.values().next().value as AddressGroup;
      const victim = group.entries.values().next().value as Pending;
      this.counters.handshakes_evicted++;
      this.unlogged.evicted++;
      this.noteLimit(victim.address);
      this.untrack(victim);
      // Told why and when to come back (an honest client in a reconnection storm), then freed at once.
      answer(
        victim.socket,
        victim.canAnswer ? victim.io : null,
        refusal(HttpRejection.HANDSHAKE_EVICTED, undefined, { 'Retry-After': '1' }),
      );
    }
    const entry: Pending = {
      guard: this,
      socket,
      io,
      canAnswer: plain !== null,
      address,
      deadline: timeout > 0 ? performance.now() + timeout : Infinity,
      stage,
    };
    this.pending.add(entry);
    this.join(entry);
    (socket as Tracked)[ENTRY] = entry;
    (io as Tracked)[ENTRY] = entry;
    socket.on('close', onClose);
    // node:http servers allow half-open sockets, so a FIN alone would leave the socket to the deadline.
    io.on('end', onEnd);
    if (this.timer === null && timeout > 0) this.arm(entry.deadline);
    return true;
  }

  /** @internal */
  untrack(entry: Pending): void {
    if (!this.pending.delete(entry)) return;
    this.leave(entry);
    entry.socket.off('close', onClose);
    entry.socket.off('end', onEnd);
    entry.io.off('end', onEnd);
    // Assigning (not deleting) keeps the socket objects in fast-property mode.
    (entry.socket as Tracked)[ENTRY] = undefined;
    (entry.io as Tracked)[ENTRY] = undefined;
  }

  private join(entry: Pending): void {
    let group = this.perAddress.get(entry.address);
    if (group === undefined) this.perAddress.set(entry.address, (group = { entries: new Set() }));
    else this.bySize[group.entries.size]!.delete(group);
    group.entries.add(entry);
    const size = group.entries.size;
    (this.bySize[size] ??= new Set()).add(group);
    if (size > this.largest) this.largest = size;
  }

  private leave(entry: Pending): void {
    const group = this.perAddress.get(entry.address)!;
    this.bySize[group.entries.size]!.delete(group);
    group.entries.delete(entry);
    if (group.entries.size > 0) this.bySize[group.entries.size]!.add(group);
    else this.perAddress.delete(entry.address);
    while (this.largest > 0 && this.bySize[this.largest]!.size === 0) this.largest--;
  }

  private arm(deadline: number): void {
    // setTimeout fires after 1 ms for delays past 2^31 - 1: that would spin on a very long timeout.
    const delay = Math.min(MAX_TIMER_DELAY, Math.max(0, Math.ceil(deadline - performance.now())));
    this.timer = setTimeout(() => this.sweep(), delay);
    this.timer.unref();
  }

  private sweep(): void {
    this.timer = null;
    // Timers may fire a fraction of a millisecond early against performance.now().
    const now = performance.now() + 1;
    for (const entry of this.pending) {
      if (entry.deadline > now) {
        this.arm(entry.deadline);
        return;
      }
      this.expire(entry);
    }
  }

  private expire(entry: Pending): void {
    this.untrack(entry);
    if (entry.io.writableEnded) {
      // Already answered (a refusal still flushing): only the descriptor is left to free.
      entry.io.destroy();
      entry.socket.destroy();
      return;
    }
    this.counters.handshake_timeouts++;
    this.unlogged.timeouts++;
    const r =
      entry.stage === 'head'
        ? refusal(HttpRejection.REQUEST_TIMEOUT)
        : refusal(HttpRejection.HANDSHAKE_TIMEOUT);
    answer(entry.socket, entry.canAnswer ? entry.io : null, r);
  }

  /**
   * Answers a connection refused at accept (nothing else listens on it yet)
   * so that the client can read the answer: closing a socket with unread
   * bytes makes the kernel reset the connection, which may discard the
   * answer on the client's side. So the socket is drained and destroyed when
   * the client closes or after LINGER_MS. Only MAX_LINGERING sockets at a
   * time get that courtesy; past it, under a flood, the descriptor is freed
   * at once.
   */
  private refuseNewcomer(socket: Socket, plain: Duplex | null, r: Rejection): void {
    if (plain === null || this.lingering >= MAX_LINGERING) return answer(socket, plain, r);
    this.lingering++;
    socket.on('error', ignore);
    socket.on('data', ignore);
    socket.end(rejectionResponse(r));
    const timer = setTimeout(destroySocket, LINGER_MS, socket);
    timer.unref();
    socket.once('close', () => {
      clearTimeout(timer);
      this.lingering--;
    });
  }

  private noteLimit(address: string): void {
    this.unlogged.address = address;
    if (this.logTimer !== null || this.options.onLimit === undefined) return;
    const wait = this.lastLog + (this.options.logIntervalMs ?? HANDSHAKE_LOG_INTERVAL_MS) - performance.now();
    if (wait <= 0) {
      this.flushLog();
      return;
    }
    this.logTimer = setTimeout(() => this.flushLog(), wait);
    this.logTimer.unref();
  }

  private flushLog(): void {
    this.logTimer = null;
    this.lastLog = performance.now();
    const u = this.unlogged;
    this.options.onLimit?.({
      refused_per_address: u.refused_per_address,
      evicted: u.evicted,
      timeouts: u.timeouts,
      pending: this.pending.size,
      address: u.address,
    });
    u.refused_per_address = 0;
    u.evicted = 0;
    u.timeouts = 0;
  }
}

/**
 * Ends tracking of `socket` by whichever guard tracks it; for an upgrade
 * the application's own 'upgrade' handler takes over.
 */
export function releaseHandshake(socket: Duplex): void {
  const entry = (socket as Tracked)[ENTRY];
  if (entry !== undefined) entry.guard.untrack(entry);
}

function onClose(this: Tracked): void {
  const entry = this[ENTRY];
  if (entry !== undefined) entry.guard.release(this);
}

/** A FIN before the handshake finished: the client gave up, so its socket is freed now. */
function onEnd(this: Tracked): void {
  const entry = this[ENTRY];
  if (entry === undefined) return;
  entry.guard.release(this);
  entry.io.destroy();
  entry.socket.destroy();
}

/**
 * Writes the refusal (when `io` can carry HTTP) and frees the socket at
 * once: the answer is a few hundred bytes handed to the kernel by the write
 * itself, and keeping the descriptor until the peer reads it is what an
 * attacker would exploit.
 */
function answer(socket: Socket, io: Duplex | null, r: Rejection): void {
  socket.on('error', ignore);
  if (io !== null && !io.destroyed && !io.writableEnded) {
    io.on('error', ignore);
    io.end(rejectionResponse(r));
    io.destroy();
  }
  socket.destroy();
}

function ignore(): void {}

function destroySocket(socket: Socket): void {
  socket.destroy();
}
