import { pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import type { UpgradeRequest } from '../upgrade/request-head.ts';
import { addressKey } from '../http/address.ts';
import { InvalidRoomPasswordError, RoomAuthBusyError } from './errors.ts';
import type { UserInfo } from './user.ts';

/** Longest room password accepted, in UTF-8 bytes (bounds the cost of hashing). */
export const MAX_ROOM_PASSWORD_BYTES = 4096;
/** PBKDF2-SHA512 iteration count used unless configured otherwise. */
export const DEFAULT_PBKDF2_ITERATIONS = 210_000;
/**
 * Password hashes computed at the same time unless configured otherwise. One
 * keeps hashing on a single libuv thread-pool thread, so the other threads
 * (token verification through WebCrypto, DNS, fs) never wait behind it.
 */
export const DEFAULT_HASH_CONCURRENCY = 1;
/**
 * Password checks allowed to wait for a hashing slot unless configured
 * otherwise. At the default cost (~0.1 s per hash) the last of 32 waits
 * about 4 s, within a client's usual handshake patience.
 */
export const DEFAULT_MAX_QUEUED_CHECKS = 32;
const SALT_BYTES = 16;
const KEY_BYTES = 64;
const DIGEST = 'sha512';

/** What a room authorizer sees when a client asks to join a room during the upgrade. */
export interface RoomAuthContext {
  /** The upgrade request (node's IncomingMessage, or the same fields from wshub's fast path). */
  request: UpgradeRequest;
  room: string;
  /** The X-WebSocket-Room-Password header, if sent. */
  password: string | undefined;
  user: UserInfo | undefined;
  claims: Record<string, unknown> | undefined;
  /**
   * Aborted by the upgrade pipeline when the client closes or resets its
   * connection before the verdict: an authorizer doing costly work (hashing,
   * remote calls) should check it and stop early. Absent when the caller
   * has no connection to watch.
   */
  signal?: AbortSignal | undefined;
  /**
   * The client's address: the peer, or the address a trusted proxy
   * forwarded (`trustedProxies`). Per-address bounds should use it.
   */
  clientAddress?: string | undefined;
}

/**
 * Decides whether a client may join a room; false (or any error) means 403
 * WEBSOCKET_ROOM_FORBIDDEN, except RoomAuthBusyError, which means 503
 * WEBSOCKET_AUTH_BUSY with Retry-After.
 */
export interface RoomAuthorizer {
  authorize(ctx: RoomAuthContext): boolean | Promise<boolean>;
}

/** Options of RoomPasswords. */
export interface RoomPasswordsOptions {
  /** PBKDF2 iterations for new hashes (default 210000). Lower it only in tests. */
  iterations?: number;
  /**
   * Hashes computed at the same time (default 1, at most 64). Each occupies
   * one thread of libuv's pool (UV_THREADPOOL_SIZE, 4 by default); keep it
   * below the pool size so token verification never queues behind hashing.
   */
  concurrency?: number;
  /**
   * Password checks that may wait for a hashing slot (default 32, 0 to
   * 100000). One more is refused at once with RoomAuthBusyError (503).
   */
  maxQueued?: number;
  /**
   * Checks one client address may have waiting or hashing at once (default
   * 4, 1 to 100000), so one address cannot take the whole queue from
   * everyone else. One more is refused at once with RoomAuthBusyError (503).
   */
  maxPerAddress?: number;
}

/** Counters of RoomPasswords (snake_case, merged into WshubServer.metrics()). */
export interface RoomPasswordMetrics {
  /** Password hashes computed to check a join (setRoomPassword not included). */
  room_password_hashes: number;
  /** Checks dropped before hashing because the client had gone (its signal aborted). */
  room_password_skipped: number;
  /** Checks refused because maxQueued checks were already waiting. */
  room_password_busy: number;
  /** Checks waiting for a hashing slot right now. */
  room_password_queued: number;
}

/** A hash waiting for a slot. */
interface Waiting {
  start: () => void;
  /** Counted against maxQueued (join checks are; setRoomPassword is not). */
  bounded: boolean;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** Default of RoomPasswordsOptions.maxPerAddress. */
export const DEFAULT_MAX_CHECKS_PER_ADDRESS = 4;

interface StoredHash {
  salt: Buffer;
  hash: Buffer;
  iterations: number;
}

/**
 * Per-room passwords, stored only as salted PBKDF2-SHA512 hashes and compared in
 * constant time. Rooms without a password are open. This is the seed's SimpleRoomAuth.
 */
export class RoomPasswords implements RoomAuthorizer {
  // The entry is stored as a promise as soon as a password is set, so the room
  // is protected at once rather than open while the hash is being computed.
  readonly #entries = new Map<string, Promise<StoredHash>>();
  readonly #iterations: number;
  readonly #concurrency: number;
  readonly #maxQueued: number;
  // Every hash, for a check or for setRoomPassword, passes this gate, so no
  // more than #concurrency thread-pool threads ever hash at once.
  #running = 0;
  readonly #waiting: Waiting[] = [];
  #queuedChecks = 0;
  readonly #maxPerAddress: number;
  /** Checks waiting or hashing, per client address. */
  readonly #perAddress = new Map<string, number>();
  readonly #metrics = { room_password_hashes: 0, room_password_skipped: 0, room_password_busy: 0 };

  constructor(options: RoomPasswordsOptions = {}) {
    const iterations = options.iterations ?? DEFAULT_PBKDF2_ITERATIONS;
    if (!Number.isSafeInteger(iterations) || iterations < 1) {
      throw new RangeError('iterations must be a positive integer');
    }
    const concurrency = options.concurrency ?? DEFAULT_HASH_CONCURRENCY;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > 64) {
      throw new RangeError('concurrency must be an integer from 1 to 64');
    }
    const maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED_CHECKS;
    if (!Number.isSafeInteger(maxQueued) || maxQueued < 0 || maxQueued > 100_000) {
      throw new RangeError('maxQueued must be an integer from 0 to 100000');
    }
    this.#iterations = iterations;
    this.#concurrency = concurrency;
    this.#maxQueued = maxQueued;
    const maxPerAddress = options.maxPerAddress ?? DEFAULT_MAX_CHECKS_PER_ADDRESS;
    if (!Number.isSafeInteger(maxPerAddress) || maxPerAddress < 1 || maxPerAddress > 100_000) {
      throw new RangeError('maxPerAddress must be an integer from 1 to 100000');
    }
    this.#maxPerAddress = maxPerAddress;
  }

  /**
   * Sets (or changes) the password of `room`. Rejects with InvalidRoomPasswordError
   * when the password is empty or longer than 4096 UTF-8 bytes. When calls for the
   * same room overlap, the last one wins.
   */
  async setRoomPassword(room: string, password: string): Promise<void> {
    checkStorable(password);
    const salt = randomBytes(SALT_BYTES);
    const iterations = this.#iterations;
    const pending = this.#hash(password, salt, iterations, false, undefined).then((hash): StoredHash => ({
      salt,
      hash,
      iterations,
    }));
    this.#entries.set(room, pending);
    try {
      await pending;
    } catch (err) {
      if (this.#entries.get(room) === pending) this.#entries.delete(room);
      throw err;
    }
  }

  /** Removes the password of `room`, making it open; returns whether it had one. */
  removeRoomPassword(room: string): boolean {
    return this.#entries.delete(room);
  }

  /** Returns whether `room` is protected by a password. */
  hasRoomPassword(room: string): boolean {
    return this.#entries.has(room);
  }

  /**
   * Checks a password for `room`. Resolves true for rooms without a password;
   * for protected rooms, true only when `password` matches (missing, wrong or
   * over-long passwords give false). Rejects with RoomAuthBusyError when
   * maxQueued checks are already waiting, and with `signal.reason` when
   * `signal` aborts before hashing starts (the hash is then skipped).
   * `address` (the client's) is held to maxPerAddress checks at once.
   */
  async verify(
    room: string,
    password: string | undefined,
    signal?: AbortSignal,
    address?: string,
  ): Promise<boolean> {
    const entry = this.#entries.get(room);
    if (entry === undefined) return true;
    if (typeof password !== 'string' || !isStorableLength(password)) return false;
    let stored: StoredHash;
    try {
      stored = await entry;
    } catch {
      return false;
    }
    if (address === undefined) return this.#check(password, stored, signal);
    const held = this.#perAddress.get(address) ?? 0;
    if (held >= this.#maxPerAddress) {
      this.#metrics.room_password_busy++;
      throw new RoomAuthBusyError('too many room password checks from this address');
    }
    this.#perAddress.set(address, held + 1);
    try {
      return await this.#check(password, stored, signal);
    } finally {
      const left = this.#perAddress.get(address)! - 1;
      if (left === 0) this.#perAddress.delete(address);
      else this.#perAddress.set(address, left);
    }
  }

  async #check(password: string, stored: StoredHash, signal: AbortSignal | undefined): Promise<boolean> {
    const candidate = await this.#hash(password, stored.salt, stored.iterations, true, signal);
    return timingSafeEqual(candidate, stored.hash);
  }

  /** RoomAuthorizer: `verify` with the context's room, password, signal and client address. */
  authorize(ctx: RoomAuthContext): Promise<boolean> {
    const address = ctx.clientAddress ?? ctx.request.socket.remoteAddress;
    return this.verify(ctx.room, ctx.password, ctx.signal, addressKey(address));
  }

  /** Returns a snapshot of the hashing counters. */
  passwordMetrics(): RoomPasswordMetrics {
    return { ...this.#metrics, room_password_queued: this.#queuedChecks };
  }

  /** PBKDF2 through the concurrency gate; `bounded` marks a join check (counted, limited, skippable). */
  #hash(
    password: string,
    salt: Buffer,
    iterations: number,
    bounded: boolean,
    signal: AbortSignal | undefined,
  ): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      if (signal?.aborted === true) {
        this.#metrics.room_password_skipped++;
        reject(abortReason(signal));
        return;
      }
      const start = (): void => {
        this.#running++;
        if (bounded) this.#metrics.room_password_hashes++;
        const done = (error: Error | null, key?: Buffer): void => {
          this.#running--;
          this.#startNext();
          if (error !== null) reject(error);
          else resolve(key!);
        };
        try {
          pbkdf2(password, salt, iterations, KEY_BYTES, DIGEST, done);
        } catch (error) {
          done(error instanceof Error ? error : new Error(String(error)));
        }
      };
      if (this.#running < this.#concurrency && this.#waiting.length === 0) {
        start();
        return;
      }
      if (bounded && this.#queuedChecks >= this.#maxQueued) {
        this.#metrics.room_password_busy++;
        reject(new RoomAuthBusyError('too many room password checks waiting'));
        return;
      }
      const waiting: Waiting = { start, bounded, signal, onAbort: undefined };
      if (signal !== undefined) {
        // A client that leaves frees its place at once rather than when its turn comes.
        waiting.onAbort = () => {
          const at = this.#waiting.indexOf(waiting);
          if (at < 0) return;
          this.#waiting.splice(at, 1);
          if (bounded) this.#queuedChecks--;
          this.#metrics.room_password_skipped++;
          reject(abortReason(signal));
        };
        signal.addEventListener('abort', waiting.onAbort, { once: true });
      }
      this.#waiting.push(waiting);
      if (bounded) this.#queuedChecks++;
    });
  }

  #startNext(): void {
    while (this.#running < this.#concurrency) {
      const next = this.#waiting.shift();
      if (next === undefined) return;
      if (next.bounded) this.#queuedChecks--;
      if (next.onAbort !== undefined) next.signal?.removeEventListener('abort', next.onAbort);
      next.start();
    }
  }

  /** Returns the names of the protected rooms, sorted. */
  rooms(): string[] {
    return [...this.#entries.keys()].sort();
  }
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error('room password check aborted');
}

function isStorableLength(password: string): boolean {
  // Every UTF-16 unit is at least one UTF-8 byte, so long strings are rejected without encoding them.
  return (
    password.length <= MAX_ROOM_PASSWORD_BYTES &&
    Buffer.byteLength(password, 'utf8') <= MAX_ROOM_PASSWORD_BYTES
  );
}

function checkStorable(password: unknown): void {
  if (typeof password !== 'string' || password.length === 0) {
    throw new InvalidRoomPasswordError('room password must be a non-empty string', 'empty');
  }
  if (!isStorableLength(password)) {
    throw new InvalidRoomPasswordError(
      `room password must be at most ${MAX_ROOM_PASSWORD_BYTES} bytes`,
      'too_long',
    );
  }
}
