/**
 * Close codes (RFC 6455 §7.4) and the rules for what a peer may send.
 */
import { WshubError } from '../errors.ts';

/**
 * Every close code wshub knows, in one table: the registered codes of RFC
 * 6455 §7.4.1 and IANA, then the names wshub gives to the codes it sends
 * for its own reasons. Code in wshub closes with a name from here, never a
 * number.
 */
export const CloseCode = {
  /** The purpose of the connection was fulfilled. */
  NORMAL: 1000,
  /** The endpoint is going away: server shutdown, page navigation. */
  GOING_AWAY: 1001,
  /** The peer broke the protocol. */
  PROTOCOL_ERROR: 1002,
  /** A data type the endpoint cannot accept. */
  UNSUPPORTED_DATA: 1003,
  /** Reserved: no status code was present. Never sent on the wire. */
  NO_STATUS: 1005,
  /** Reserved: the connection ended without a close frame. Never sent on the wire. */
  ABNORMAL: 1006,
  /** Data inconsistent with the message type, e.g. invalid UTF-8 in text. */
  INVALID_PAYLOAD: 1007,
  /** A message violated the endpoint's policy. */
  POLICY_VIOLATION: 1008,
  /** A message too big to process. */
  MESSAGE_TOO_BIG: 1009,
  /** The client expected an extension the server did not negotiate. */
  MANDATORY_EXTENSION: 1010,
  /** The server met an unexpected condition. */
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  BAD_GATEWAY: 1014,

  // ---- what wshub sends, by reason ----
  /** A connection whose send queue overflowed under sendBehavior "close" (policy violation). */
  SLOW_CONSUMER: 1008,
  /** Server shutdown (Hub.shutdown, `wshub serve` on SIGTERM). */
  SHUTDOWN: 1001,
  /** The server-wide partial-message budget is spent (`maxPartialMessageBytes`). */
  BUDGET_EXHAUSTED: 1013,
  /** The connection's token reached its `exp` (`closeOnTokenExpiry`); in the application range. */
  TOKEN_EXPIRED: 4001,
} as const;

/** Longest close reason in bytes: a control payload is ≤ 125 bytes, 2 of them hold the code. */
export const MAX_CLOSE_REASON_BYTES = 123;

/**
 * Whether `code` may appear in a close frame on the wire: 1000–1003, 1007–1014
 * (the registered codes) and 3000–4999 (libraries and applications).
 */
export function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/**
 * A failure that ends the connection with a given close code. Thrown by the
 * protocol layer at the point of detection so the code travels with the error.
 */
export class ProtocolError extends WshubError {
  declare readonly code: 'PROTOCOL_ERROR';
  constructor(
    /** The close code to send: 1002, 1007, 1009, 1011 or 1013. */
    readonly closeCode: number,
    message: string,
  ) {
    super('PROTOCOL_ERROR', message);
  }
}
