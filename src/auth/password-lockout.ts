/**
 * Lockout after repeated room-password failures: `maxFailures` wrong
 * answers from one client address (IPv6 per /64) for one room lock that
 * pair out for `lockoutMs`, and a success clears the count. A failure is
 * forgotten `lockoutMs` after the last one. The table is bounded: past
 * `maxEntries` pairs the oldest is dropped, and expired pairs are swept
 * as new ones arrive.
 */

/** Counters of the lockout (part of the server's metrics). */
export interface PasswordLockoutMetrics {
  /** Room authorizations that answered "no" (wrong or missing password), counted per client. */
  room_password_failures: number;
  /** Lockouts started (an address reached the failure count for a room). */
  room_password_lockouts: number;
  /** Upgrades refused (429 WEBSOCKET_ROOM_LOCKED) because their address was locked out of the room. */
  room_password_locked_refusals: number;
}

interface Entry {
  failures: number;
  /** When the failures are forgotten (ms, the lockout's clock). */
  expires: number;
  /** Locked until then (0 = not locked). */
  lockedUntil: number;
}

/** Default of PasswordLockoutOptions.maxEntries. */
export const DEFAULT_LOCKOUT_ENTRIES = 65_536;
/** Entries looked at per new entry when sweeping expired ones. */
const SWEEP_STEP = 4;

/** Options of PasswordLockout. */
export interface PasswordLockoutOptions {
  /** Failures before a lockout (0 = never lock out). */
  maxFailures: number;
  /** Length of a lockout, and how long a failure is remembered, in ms. */
  lockoutMs: number;
  /** Most (address, room) pairs remembered (default 65536). */
  maxEntries?: number;
  now?: () => number;
}

/** Room-password failure counts per (address, room), with temporary lockouts. */
export class PasswordLockout {
  readonly #max: number;
  readonly #lockoutMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  /** Insertion-ordered, refreshed on every failure: the first entries are the stalest. */
  readonly #entries = new Map<string, Entry>();
  readonly counters: PasswordLockoutMetrics = {
    room_password_failures: 0,
    room_password_lockouts: 0,
    room_password_locked_refusals: 0,
  };

  constructor(options: PasswordLockoutOptions) {
    this.#max = options.maxFailures;
    this.#lockoutMs = options.lockoutMs;
    this.#maxEntries = options.maxEntries ?? DEFAULT_LOCKOUT_ENTRIES;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Whether lockouts are on at all. */
  get enabled(): boolean {
    return this.#max > 0 && this.#lockoutMs > 0;
  }

  /** Pairs remembered right now. */
  get size(): number {
    return this.#entries.size;
  }

  /** Seconds the pair stays locked (≥ 1), or 0 when it is not locked; a locked check is counted. */
  lockedFor(address: string, room: string): number {
    if (!this.enabled) return 0;
    const entry = this.#entries.get(pairKey(address, room));
    if (entry === undefined) return 0;
    const left = entry.lockedUntil - this.#now();
    if (left <= 0) return 0;
    this.counters.room_password_locked_refusals++;
    return Math.max(1, Math.ceil(left / 1000));
  }

  /**
   * Records a failure; returns true when it started a lockout. Without an
   * address (an exempt client) the failure is only counted.
   */
  fail(address: string | undefined, room: string): boolean {
    this.counters.room_password_failures++;
    if (!this.enabled || address === undefined) return false;
    const now = this.#now();
    const key = pairKey(address, room);
    let entry = this.#entries.get(key);
    if (entry !== undefined && entry.expires <= now && entry.lockedUntil <= now) entry = undefined;
    if (entry === undefined) {
      this.#sweep(now);
      entry = { failures: 0, expires: 0, lockedUntil: 0 };
    }
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    entry.failures++;
    entry.expires = now + this.#lockoutMs;
    if (entry.failures < this.#max) return false;
    entry.failures = 0;
    entry.lockedUntil = now + this.#lockoutMs;
    this.counters.room_password_lockouts++;
    return true;
  }

  /** A right password: the pair's failures are forgotten. */
  succeed(address: string, room: string): void {
    if (this.#entries.size > 0) this.#entries.delete(pairKey(address, room));
  }

  /** Drops a few expired entries from the front, and the oldest when the table is full. */
  #sweep(now: number): void {
    let looked = 0;
    for (const [key, entry] of this.#entries) {
      if (looked++ >= SWEEP_STEP) break;
      if (entry.expires <= now && entry.lockedUntil <= now) this.#entries.delete(key);
    }
    while (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
  }
}

function pairKey(address: string, room: string): string {
  // A room name cannot hold a newline (room validation), so the pair is unambiguous.
  return `${address}\n${room}`;
}
