export {
  InvalidRoomPasswordError,
  InvalidTokenError,
  RoomAuthBusyError,
  SecretReuseError,
  WeakSecretError,
  type InvalidTokenReason,
} from './errors.ts';
export {
  DEFAULT_HASH_CONCURRENCY,
  DEFAULT_MAX_QUEUED_CHECKS,
  DEFAULT_PBKDF2_ITERATIONS,
  MAX_ROOM_PASSWORD_BYTES,
  RoomPasswords,
  type RoomAuthContext,
  type RoomAuthorizer,
  type RoomPasswordMetrics,
  type RoomPasswordsOptions,
} from './room-password.ts';
export { MIN_SECRET_BYTES } from './secret.ts';
export { SecureRoomAuth, type SecureRoomAuthOptions, type SecurityMetrics } from './secure-room-auth.ts';
export {
  ROOM_PASSWORD_MAX_CHARS,
  ROOM_PASSWORD_MIN_CHARS,
  constantTimeEqual,
  generateSecureSecret,
  validateRoomPassword,
  validateSecurityConfig,
  validateWebSocketKey,
  type RoomPasswordCheck,
  type SecurityConfig,
} from './security.ts';
export {
  HS256TokenAuthenticator,
  MAX_TOKEN_LENGTH,
  signHS256,
  tokenExpiry,
  type HS256Options,
  type TokenAuthenticator,
} from './token.ts';
export { userInfoFromClaims, type UserInfo } from './user.ts';
