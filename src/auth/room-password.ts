import { pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import type { UpgradeRequest } from '../protocol/request-head.ts';
import { promisify } from 'node:util';
import { InvalidRoomPasswordError } from './errors.ts';
import type { UserInfo } from './user.ts';

const pbkdf2Async = promisify(pbkdf2);

/** Longest room password accepted, in UTF-8 bytes (bounds the cost of hashing). */
export const MAX_ROOM_PASSWORD_BYTES = 4096;
/** PBKDF2-SHA512 iteration count used unless configured otherwise. */
export const DEFAULT_PBKDF2_ITERATIONS = 210_000;
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
}

/** Decides whether a client may join a room; false means 403 WEBSOCKET_ROOM_FORBIDDEN. */
export interface RoomAuthorizer {
  authorize(ctx: RoomAuthContext): boolean | Promise<boolean>;
}

/** Options of RoomPasswords. */
export interface RoomPasswordsOptions {
  /** PBKDF2 iterations for new hashes (default 210000). Lower it only in tests. */
  iterations?: number;
}

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

  constructor(options: RoomPasswordsOptions = {}) {
    const iterations = options.iterations ?? DEFAULT_PBKDF2_ITERATIONS;
    if (!Number.isSafeInteger(iterations) || iterations < 1) {
      throw new RangeError('iterations must be a positive integer');
    }
    this.#iterations = iterations;
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
    const pending = pbkdf2Async(password, salt, iterations, KEY_BYTES, DIGEST).then((hash): StoredHash => ({
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
   * over-long passwords give false).
   */
  async verify(room: string, password: string | undefined): Promise<boolean> {
    const entry = this.#entries.get(room);
    if (entry === undefined) return true;
    if (typeof password !== 'string' || !isStorableLength(password)) return false;
    let stored: StoredHash;
    try {
      stored = await entry;
    } catch {
      return false;
    }
    const candidate = await pbkdf2Async(password, stored.salt, stored.iterations, KEY_BYTES, DIGEST);
    return timingSafeEqual(candidate, stored.hash);
  }

  /** RoomAuthorizer: resolves to `verify(ctx.room, ctx.password)`. */
  authorize(ctx: RoomAuthContext): Promise<boolean> {
    return this.verify(ctx.room, ctx.password);
  }

  /** Returns the names of the protected rooms, sorted. */
  rooms(): string[] {
    return [...this.#entries.keys()].sort();
  }
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
