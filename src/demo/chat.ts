/**
 * The demo chat's wire format (JSON text messages).
 *
 * Client → server: `{"type":"message","text":"..."}`.
 * Server → room:   `{"type":"message","from","text","at"}` and
 *                  `{"type":"presence","room","count"}`.
 *
 * A client message that is not that shape closes the connection with 1008
 * (policy violation), a text longer than MAX_CHAT_TEXT_CHARS with 1009 (too
 * big), a binary message with 1003 (unsupported data): the page never sends
 * any of these, so they come from a misbehaving client.
 */
import { CloseError } from '../errors.ts';
import { CloseCode } from '../protocol/close.ts';

/** Longest chat text, in characters (code points). */
export const MAX_CHAT_TEXT_CHARS = 2000;
/** Longest raw client message, in bytes (a text at the limit, in JSON, with room to spare). */
export const MAX_CHAT_MESSAGE_BYTES = 16 * 1024;

/** A chat line as the room receives it. */
export interface ChatMessage {
  type: 'message';
  /** The sender's name, taken from its token. */
  from: string;
  text: string;
  /** Server time in milliseconds since the epoch. */
  at: number;
}

/** How many connections a room has, sent to the room on every join and leave. */
export interface PresenceMessage {
  type: 'presence';
  room: string;
  count: number;
}

/**
 * Reads the text of a client message. Returns the text, or null when it is
 * blank (nothing to send); throws CloseError for anything else than a text
 * `{"type":"message","text":string}` within the limits.
 */
export function parseClientMessage(data: Buffer, binary: boolean): string | null {
  if (binary) throw new CloseError(CloseCode.UNSUPPORTED_DATA, 'binary messages are not supported');
  if (data.length > MAX_CHAT_MESSAGE_BYTES)
    throw new CloseError(CloseCode.MESSAGE_TOO_BIG, 'message too long');
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch {
    throw new CloseError(CloseCode.POLICY_VIOLATION, 'invalid JSON');
  }
  if (typeof value !== 'object' || value === null) {
    throw new CloseError(CloseCode.POLICY_VIOLATION, 'expected a JSON object');
  }
  const { type, text } = value as Record<string, unknown>;
  if (type !== 'message' || typeof text !== 'string') {
    throw new CloseError(CloseCode.POLICY_VIOLATION, 'expected {"type":"message","text":string}');
  }
  if ([...text].length > MAX_CHAT_TEXT_CHARS)
    throw new CloseError(CloseCode.MESSAGE_TOO_BIG, 'message too long');
  return text.trim() === '' ? null : text;
}
