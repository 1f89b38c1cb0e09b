import { addressKey } from '../http/address.ts';
import { InvalidRoomPasswordError, InvalidTokenError } from './errors.ts';
import {
  RoomPasswords,
  type RoomAuthContext,
  type RoomAuthorizer,
  type RoomPasswordMetrics,
} from './room-password.ts';
import { validateRoomPassword } from './security.ts';
import type { TokenAuthenticator } from './token.ts';
import type { UserInfo } from './user.ts';

/** Options of SecureRoomAuth. */
export interface SecureRoomAuthOptions {
  /** Accept passwords that fail the strength rules (they must still be 1 to 4096 bytes). */
  allowWeakPasswords?: boolean;
  /** Token authenticator used by `authenticateToken` / `authenticate`. */
  tokenAuthenticator?: TokenAuthenticator;
  /** PBKDF2 iterations for room password hashes (default 210000). */
  iterations?: number;
  /** Password hashes computed at the same time (default 1; see RoomPasswordsOptions). */
  concurrency?: number;
  /** Password checks that may wait for a hashing slot (default 32; see RoomPasswordsOptions). */
  maxQueued?: number;
  /** Password checks one client address may have at once (default 4; see RoomPasswordsOptions). */
  maxPerAddress?: number;
}

/** Counters kept by SecureRoomAuth. */
export interface SecurityMetrics {
  /** Tokens rejected by `authenticateToken`. */
  jwtFailures: number;
  /** Passwords refused by `setRoomPassword` for failing the strength rules. */
  weakPasswords: number;
  /** Tokens accepted plus room authorizations granted. */
  successfulAuths: number;
  /** Room authorizations denied. */
  roomAuthFailures: number;
}

/**
 * Room passwords with strength rules and security counters, optionally wrapping a
 * token authenticator so token outcomes are counted too. Implements both
 * RoomAuthorizer and TokenAuthenticator, so one instance can serve both roles.
 */
export class SecureRoomAuth implements RoomAuthorizer, TokenAuthenticator {
  readonly #passwords: RoomPasswords;
  readonly #tokens: TokenAuthenticator | undefined;
  readonly #allowWeak: boolean;
  readonly #metrics: SecurityMetrics = {
    jwtFailures: 0,
    weakPasswords: 0,
    successfulAuths: 0,
    roomAuthFailures: 0,
  };

  constructor(options: SecureRoomAuthOptions = {}) {
    const { iterations, concurrency, maxQueued, maxPerAddress } = options;
    this.#passwords = new RoomPasswords({
      ...(iterations === undefined ? {} : { iterations }),
      ...(concurrency === undefined ? {} : { concurrency }),
      ...(maxQueued === undefined ? {} : { maxQueued }),
      ...(maxPerAddress === undefined ? {} : { maxPerAddress }),
    });
    this.#tokens = options.tokenAuthenticator;
    this.#allowWeak = options.allowWeakPasswords ?? false;
  }

  /**
   * Sets or changes a room password after checking it with validateRoomPassword.
   * Rejects with InvalidRoomPasswordError (and counts `weakPasswords` when the
   * reason is strength rather than emptiness or size).
   */
  async setRoomPassword(room: string, password: string): Promise<void> {
    const check = validateRoomPassword(password, { allowWeak: this.#allowWeak });
    if (!check.ok) {
      if (check.reason !== 'empty' && check.reason !== 'too_long') this.#metrics.weakPasswords++;
      throw new InvalidRoomPasswordError(`room password rejected: ${check.reason}`, check.reason);
    }
    await this.#passwords.setRoomPassword(room, password);
  }

  /** Removes a room's password; returns whether it had one. */
  removeRoomPassword(room: string): boolean {
    return this.#passwords.removeRoomPassword(room);
  }

  /** Returns whether `room` is protected by a password. */
  hasRoomPassword(room: string): boolean {
    return this.#passwords.hasRoomPassword(room);
  }

  /** Returns the names of protected rooms, sorted. */
  rooms(): string[] {
    return this.#passwords.rooms();
  }

  /** Checks a room password without touching the counters (true for open rooms). */
  verify(room: string, password: string | undefined): Promise<boolean> {
    return this.#passwords.verify(room, password);
  }

  /** The hashing counters of the underlying RoomPasswords. */
  passwordMetrics(): RoomPasswordMetrics {
    return this.#passwords.passwordMetrics();
  }

  /**
   * RoomAuthorizer: verifies the password and counts the outcome (a check
   * refused as busy or skipped for a departed client counts as neither).
   */
  async authorize(ctx: RoomAuthContext): Promise<boolean> {
    const ok = await this.#passwords.verify(
      ctx.room,
      ctx.password,
      ctx.signal,
      addressKey(ctx.clientAddress ?? ctx.request.socket.remoteAddress),
    );
    if (ok) this.#metrics.successfulAuths++;
    else this.#metrics.roomAuthFailures++;
    return ok;
  }

  /**
   * Authenticates a token with the wrapped authenticator and counts the outcome.
   * Resolves to the user, or rejects with InvalidTokenError (reason 'unconfigured'
   * when no authenticator was given).
   */
  async authenticateToken(token: string): Promise<UserInfo> {
    try {
      if (this.#tokens === undefined) {
        throw new InvalidTokenError('no token authenticator is configured', 'unconfigured');
      }
      const user = await this.#tokens.authenticate(token);
      this.#metrics.successfulAuths++;
      return user;
    } catch (err) {
      this.#metrics.jwtFailures++;
      throw err;
    }
  }

  /** TokenAuthenticator: same as authenticateToken. */
  authenticate(token: string): Promise<UserInfo> {
    return this.authenticateToken(token);
  }

  /** Returns a snapshot of the security counters. */
  metrics(): SecurityMetrics {
    return { ...this.#metrics };
  }
}
