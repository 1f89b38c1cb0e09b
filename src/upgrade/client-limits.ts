/**
 * Per-client limits of new connections: concurrent connections and
 * handshakes per second per client address (IPv6 per /64), and concurrent
 * connections per user (the token's `sub`). Addresses in the exempt set
 * (loopback by default) are not limited.
 *
 * Memory stays bounded whatever the number of addresses: the connection
 * counts hold only addresses with a connection open, and the handshake
 * counts only addresses seen in the current one-second window, at most
 * `maxTrackedAddresses` of them (past it a new address is let through and
 * counted in `limit_table_full`; the server-wide caps still hold).
 */
import { addressKey } from '../http/address.ts';
import { HttpRejection, refusal, type Rejection } from '../http/rejections.ts';
import { AddressSet } from '../http/trusted-proxy.ts';

/** Counters of the per-client limits (part of the server's metrics). */
export interface ClientLimitMetrics {
  /** Upgrades refused (429) because their address had `maxConnsPerIp` connections open. */
  ip_connections_refused: number;
  /** Upgrades refused (429) because their address passed `maxHandshakesPerIp` in the current second. */
  ip_handshakes_refused: number;
  /** Connections refused because their user had `maxConnsPerUser` open (429 on /ws, 3504 on channels). */
  user_connections_refused: number;
  /** New addresses not tracked for the handshake rate because the table was full. */
  limit_table_full: number;
  /** Addresses with connections counted right now (a gauge). */
  ip_addresses_tracked: number;
}

/** Options of AddressLimits. */
export interface AddressLimitOptions {
  /** Concurrent connections (and upgrades in progress) per address (0 = unlimited). */
  maxConnsPerIp: number;
  /** New upgrades per address per second (0 = unlimited). */
  maxHandshakesPerIp: number;
  /** Addresses (CIDRs) the limits do not apply to. */
  exempt: readonly string[];
  /** Most addresses whose handshakes are counted in one window (default 65536). */
  maxTrackedAddresses?: number;
  /** Milliseconds from a fixed origin; tests drive it by hand. */
  now?: () => number;
}

/** Default of AddressLimitOptions.maxTrackedAddresses. */
export const DEFAULT_MAX_TRACKED_ADDRESSES = 65_536;
const WINDOW_MS = 1_000;

/** Concurrent connections and handshake rate per client address. */
export class AddressLimits {
  readonly #maxConns: number;
  readonly #maxRate: number;
  readonly #exempt: AddressSet;
  readonly #maxTracked: number;
  readonly #now: () => number;
  /** Open connections (and upgrades in progress) per address key. */
  readonly #conns = new Map<string, number>();
  /** Handshakes per address key in the current window. */
  #window = new Map<string, number>();
  #windowStart = -Infinity;
  readonly counters = { ip_connections_refused: 0, ip_handshakes_refused: 0, limit_table_full: 0 };

  constructor(options: AddressLimitOptions) {
    this.#maxConns = options.maxConnsPerIp;
    this.#maxRate = options.maxHandshakesPerIp;
    this.#exempt = new AddressSet(options.exempt, 'limitExempt');
    this.#maxTracked = options.maxTrackedAddresses ?? DEFAULT_MAX_TRACKED_ADDRESSES;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Whether the per-client limits skip `address`. */
  isExempt(address: string | undefined): boolean {
    return this.#exempt.has(address);
  }

  /**
   * Counts a new upgrade from `address`: null when it may go on (its
   * connection slot is then held until `release`), or the 429 refusal.
   */
  admit(address: string | undefined): Rejection | null {
    if ((this.#maxConns === 0 && this.#maxRate === 0) || this.isExempt(address)) return null;
    const key = addressKey(address);
    if (this.#maxRate > 0 && !this.#takeHandshake(key)) {
      this.counters.ip_handshakes_refused++;
      return refusal(HttpRejection.IP_HANDSHAKE_RATE, undefined, { 'Retry-After': '1' });
    }
    if (this.#maxConns > 0) {
      const open = this.#conns.get(key) ?? 0;
      if (open >= this.#maxConns) {
        this.counters.ip_connections_refused++;
        return refusal(HttpRejection.IP_CONNECTION_LIMIT, undefined, { 'Retry-After': '1' });
      }
      this.#conns.set(key, open + 1);
    }
    return null;
  }

  /** Gives back the connection slot `admit` took for `address` (the upgrade failed or the connection closed). */
  release(address: string | undefined): void {
    if (this.#maxConns === 0 || this.isExempt(address)) return;
    const key = addressKey(address);
    const open = this.#conns.get(key);
    if (open === undefined) return;
    if (open <= 1) this.#conns.delete(key);
    else this.#conns.set(key, open - 1);
  }

  /** Addresses with connections counted right now. */
  get trackedAddresses(): number {
    return this.#conns.size;
  }

  /** Addresses in the current handshake window (bounded by maxTrackedAddresses). */
  get windowAddresses(): number {
    return this.#window.size;
  }

  #takeHandshake(key: string): boolean {
    const now = this.#now();
    if (now - this.#windowStart >= WINDOW_MS) {
      // A new window: the previous one's table is dropped whole, so it never outlives a second.
      this.#window = new Map();
      this.#windowStart = now;
    }
    const seen = this.#window.get(key);
    if (seen === undefined) {
      if (this.#window.size >= this.#maxTracked) {
        this.counters.limit_table_full++;
        return true;
      }
      this.#window.set(key, 1);
      return true;
    }
    if (seen >= this.#maxRate) return false;
    this.#window.set(key, seen + 1);
    return true;
  }
}

/**
 * Concurrent connections per user, shared by `/ws` and the channel
 * endpoint. Connections without a user id (anonymous, or a token without
 * `sub`) are not counted. Entries exist only while their user has a
 * connection open.
 */
export class UserConnectionLimit {
  readonly #max: number;
  readonly #open = new Map<string, number>();
  refused = 0;

  /** `max` connections per user (0 = unlimited). */
  constructor(max: number) {
    this.#max = max;
  }

  /** Takes a slot for `user`; false (counted) when the user already has `max` connections. */
  tryAcquire(user: string): boolean {
    if (this.#max === 0 || user === '') return true;
    const open = this.#open.get(user) ?? 0;
    if (open >= this.#max) {
      this.refused++;
      return false;
    }
    this.#open.set(user, open + 1);
    return true;
  }

  /** Gives back a slot `tryAcquire` took. */
  release(user: string): void {
    if (this.#max === 0 || user === '') return;
    const open = this.#open.get(user);
    if (open === undefined) return;
    if (open <= 1) this.#open.delete(user);
    else this.#open.set(user, open - 1);
  }

  /** Users with connections counted right now. */
  get trackedUsers(): number {
    return this.#open.size;
  }
}
