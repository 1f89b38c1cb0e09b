/**
 * wshub's public API: every name here is documented in README.md ("Public
 * API") and covered by test/unit/package-exports.test.ts, which fails when a
 * name is added or removed without updating its list. Modules are re-exported
 * name by name, never with `export *`, so an internal helper cannot become
 * public by accident. The Redis and NATS transports are in `wshub/redis` and
 * `wshub/nats` (src/redis.ts, src/nats.ts), so this entry point loads neither
 * client.
 */

// -- the server and its configuration --
export { WshubServer, createWshub, TOKEN_EXPIRED_CLOSE_CODE } from './server/server.ts';
export type { Health, LogEntry, ServerMetrics } from './server/server.ts';
export { defaultConfig } from './config.ts';
export type { WshubConfig, MessageHandler } from './config.ts';
export { boundedServerOptions, BEARER_PROTOCOL_PREFIX, type ProtocolSelector } from './upgrade/respond.ts';
export { BROWSER_PROTOCOL } from './upgrade/pipeline.ts';
export type { UpgradeRequest } from './upgrade/request-head.ts';

// -- metrics (Prometheus through prom-client; docs/OPERATIONS.md) --
export { registerWshubMetrics, createMetricsRegistry } from './metrics/prometheus.ts';

// -- channels (the Centrifuge client protocol; docs/CHANNELS.md) --
export { ChannelNode } from './channels/node.ts';
export { MemoryEngine } from './channels/engine-memory.ts';
export type {
  ChannelEngine,
  EngineMetrics,
  EnginePublication,
  EngineReceiver,
  PublicationInput,
} from './channels/engine.ts';
export type {
  ChannelHooks,
  ChannelLimits,
  ChannelMetrics,
  ChannelNodeOptions,
  RpcContext,
} from './channels/node.ts';
export type { ChannelClient } from './channels/session.ts';
export { Namespaces, defaultChannelOptions } from './channels/options.ts';
export type { ChannelOptions, ChannelsConfig, NamespaceConfig } from './channels/options.ts';
export {
  Disconnects,
  DisconnectException,
  ReplyErrors,
  ReplyErrorException,
  Unsubscribes,
} from './channels/protocol.ts';
export type { ClientInfo, Disconnect, Json, Publication, ReplyError } from './channels/protocol.ts';
export type {
  ChannelApi,
  DisconnectOptions,
  HistoryQuery,
  HistoryReply,
  NodeInfo,
  PublishOptions,
  PublishResult,
} from './channels/api.ts';
export { defaultChannelBounds, checkApiKey, type ChannelBounds } from './config.ts';

// -- the hub --
export { Hub, defaultHubOptions, isRejected } from './hub/hub.ts';
export type {
  RoomSink,
  HubOptions,
  HubMetrics,
  BroadcastResult,
  JoinResult,
  JoinDenial,
  ShutdownOptions,
} from './hub/hub.ts';

// -- connections and messages --
export { Connection, SLOW_CONSUMER_CLOSE_CODE, MAX_READ_LIMIT } from './connection/connection.ts';
export type { ConnectionState, SendBehavior } from './connection/connection.ts';
export { Opcode, type DataOpcode } from './protocol/frame.ts';
export { CloseCode, isValidCloseCode } from './protocol/close.ts';
export {
  isValidRoomName,
  validateTextMessage,
  defaultTextValidationOptions,
  sanitizeForLogging,
  ROOM_NAME_MAX_BYTES,
} from './hub/validation.ts';
export type { RoomValidator, TextValidationOptions, TextValidationResult } from './hub/validation.ts';

// -- errors --
export {
  WshubError,
  ConfigError,
  QueueFullError,
  SendTimeoutError,
  ConnectionClosedError,
  CloseError,
} from './errors.ts';

// -- auth building blocks --
export {
  InvalidRoomPasswordError,
  InvalidTokenError,
  RoomAuthBusyError,
  SecretReuseError,
  TokenKeysUnavailableError,
  WeakSecretError,
  type InvalidTokenReason,
} from './auth/errors.ts';
export {
  HS256TokenAuthenticator,
  JwtAuthenticator,
  signHS256,
  type HS256Options,
  type TokenAuthenticator,
  type TokenClaimOptions,
} from './auth/token.ts';
export {
  createJwtAuthenticator,
  signWithPrivateKey,
  type AsymmetricAlgorithm,
  type JwksOptions,
  type TokenKeyOptions,
} from './auth/token-keys.ts';
export { userInfoFromClaims, type UserInfo } from './auth/user.ts';
export {
  RoomPasswords,
  type RoomAuthContext,
  type RoomAuthorizer,
  type RoomPasswordMetrics,
  type RoomPasswordsOptions,
} from './auth/room-password.ts';
export { SecureRoomAuth, type SecureRoomAuthOptions, type SecurityMetrics } from './auth/secure-room-auth.ts';
export { MIN_SECRET_BYTES } from './auth/secret.ts';
export {
  constantTimeEqual,
  generateSecureSecret,
  validateRoomPassword,
  validateSecurityConfig,
  validateWebSocketKey,
  type RoomPasswordCheck,
  type SecurityConfig,
} from './auth/security.ts';

// -- the Node client --
export {
  dial,
  DialError,
  MessageQueue,
  messageQueue,
  ReceiveTimeoutError,
  type DialOptions,
  type ReceivedMessage,
} from './client/index.ts';

// -- scale-out without a messaging client (Redis: wshub/redis, NATS: wshub/nats) --
export {
  Cluster,
  PRESENCE_MAX_BYTES,
  PRESENCE_MAX_PARTS,
  PRESENCE_MAX_ROOMS,
  MemoryBus,
  MemoryTransport,
  IpcRelay,
  IpcTransport,
  transportFromUrl,
  BrokerUrlError,
  BrokerClientMissingError,
  type BrokerKind,
  type ClusterMetrics,
  type ClusterOptions,
  type Transport,
  type TransportEvents,
  type TransportListener,
  type TransportFromUrlOptions,
} from './broker/index.ts';
