/**
 * wshub's public API.
 */
export { WshubServer, createWshub, TOKEN_EXPIRED_CLOSE_CODE } from './server.ts';
export type { Health, LogEntry, ServerMetrics } from './server.ts';
export type { HandshakeMetrics, HandshakeLimitReport } from './handshake-guard.ts';
export { defaultConfig, resolveConfig, CONFIG_KEYS } from './config.ts';
export type { WshubConfig, MessageHandler } from './config.ts';
export { Hub, defaultHubOptions, isRejected } from './hub.ts';
export type {
  HubOptions,
  HubMetrics,
  BroadcastResult,
  JoinResult,
  JoinDenial,
  ShutdownOptions,
} from './hub.ts';
export {
  Connection,
  SendStatus,
  SLOW_CONSUMER_CLOSE_CODE,
  MAX_READ_LIMIT,
  defaultConnectionOptions,
} from './connection.ts';
export type { ConnectionHandlers, ConnectionOptions, ConnectionState, SendBehavior } from './connection.ts';
export { ResourceGuard, type ResourceGuardMetrics } from './resource-guard.ts';
export { handleUpgrade, BEARER_PROTOCOL_PREFIX, BROWSER_PROTOCOL } from './upgrade.ts';
export type { UpgradeConfig, UpgradeMetrics } from './upgrade.ts';
export { boundedServerOptions, type ProtocolSelector } from './accept.ts';
export type { UpgradeRequest } from './protocol/request-head.ts';
export { Opcode, type DataOpcode } from './protocol/frame.ts';
export { CloseCode, isValidCloseCode } from './protocol/close.ts';
export {
  WshubError,
  ConfigError,
  QueueFullError,
  SendTimeoutError,
  ConnectionClosedError,
  CloseError,
} from './errors.ts';
export {
  isValidRoomName,
  validateTextMessage,
  defaultTextValidationOptions,
  sanitizeForLogging,
  ROOM_NAME_MAX_BYTES,
} from './validation.ts';
export type { RoomValidator, TextValidationOptions, TextValidationResult } from './validation.ts';
export * from './auth/index.ts';
export {
  dial,
  DialError,
  MessageQueue,
  messageQueue,
  type DialOptions,
  type ReceivedMessage,
} from './client/index.ts';
export * from './broker/index.ts';
