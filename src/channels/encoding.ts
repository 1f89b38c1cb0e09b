/**
 * The two encodings of the channel protocol, behind one interface: JSON
 * (text frames, one object per line; the default) and Protocol Buffers
 * (binary frames of length-delimited messages; the `centrifuge-protobuf`
 * subprotocol). A session picks its encoding once, at the upgrade.
 *
 * Also the rules for publication data between them: protobuf data is
 * bytes, JSON data is a JSON value. Bytes that are UTF-8 JSON have a JSON
 * form; other bytes have none and never reach JSON clients.
 */
import { isUtf8 } from 'node:buffer';
import { Opcode, encodeMessage, type DataOpcode } from '../protocol/frame.ts';
import {
  PING_JSON,
  decodeCommands,
  errorReplyJson,
  pushJson,
  replyJson,
  type DecodeLimits,
} from './codec.ts';
import {
  PROTOBUF_PING,
  PROTOBUF_SUBPROTOCOL,
  decodeProtobufCommands,
  encodeErrorReply,
  encodePush,
  encodeReply,
} from './protobuf-codec.ts';
import { DisconnectException, Disconnects, type Command, type Json, type ReplyError } from './protocol.ts';

/** A reply or push in a session's encoding: a JSON line or a delimited protobuf message. */
export type EncodedMessage = string | Buffer;

/** How a session reads commands and writes replies and pushes. */
export interface ChannelEncoding {
  readonly name: 'json' | 'protobuf';
  /** Whether frames are binary (protobuf) or text (JSON). */
  readonly binary: boolean;
  /** The opcode of the frames this encoding writes. */
  readonly opcode: DataOpcode;
  /** Splits a frame into commands; a frame of the other kind, or malformed, is a bad request (DisconnectException). */
  decode(frame: Buffer, binary: boolean, limits: DecodeLimits): Command[];
  /** A reply to command `id` with the result of `method`, given as JSON. */
  reply(id: number, method: string, resultJson: string): EncodedMessage;
  /** An error reply to command `id`. */
  errorReply(id: number, error: ReplyError): EncodedMessage;
  /** A push of `kind` in `channel`, its body given as JSON. */
  push(channel: string, kind: string, bodyJson: string): EncodedMessage;
  /** The payload of one frame holding `messages`. */
  join(messages: readonly EncodedMessage[]): string | Buffer;
  /** The server ping as a WebSocket frame (shared, never modified). */
  readonly pingFrame: Buffer;
}

function badRequest(): DisconnectException {
  return new DisconnectException(Disconnects.BAD_REQUEST);
}

/** The JSON encoding: text frames, one JSON object per line. */
export const jsonEncoding: ChannelEncoding = {
  name: 'json',
  binary: false,
  opcode: Opcode.TEXT,
  decode(frame, binary, limits) {
    if (binary) throw badRequest();
    return decodeCommands(frame, limits);
  },
  reply: replyJson,
  errorReply: errorReplyJson,
  push: pushJson,
  join: (messages) => (messages.length === 1 ? (messages[0] as string) : messages.join('\n')),
  pingFrame: encodeMessage(Opcode.TEXT, PING_JSON, 0),
};

/** The Protocol Buffers encoding: binary frames of varint length-delimited messages. */
export const protobufEncoding: ChannelEncoding = {
  name: 'protobuf',
  binary: true,
  opcode: Opcode.BINARY,
  decode(frame, binary, limits) {
    if (!binary) throw badRequest();
    return decodeProtobufCommands(frame, limits);
  },
  reply: encodeReply,
  errorReply: encodeErrorReply,
  push: encodePush,
  join: (messages) => (messages.length === 1 ? (messages[0] as Buffer) : Buffer.concat(messages as Buffer[])),
  pingFrame: encodeMessage(Opcode.BINARY, PROTOBUF_PING, 0),
};

/** The encoding of a connection whose upgrade selected `subprotocol`. */
export function encodingFor(subprotocol: string | undefined): ChannelEncoding {
  return subprotocol === PROTOBUF_SUBPROTOCOL ? protobufEncoding : jsonEncoding;
}

// ---- publication data between the encodings -----------------------------------------------------

/**
 * The JSON form of data bytes: the text when it is UTF-8 and one JSON
 * value, with raw line breaks (whitespace there) turned into spaces so it
 * fits on one line; null when the bytes are not JSON.
 */
export function jsonFormOf(bytes: Uint8Array): string | null {
  if (bytes.length === 0 || !isUtf8(bytes)) return null;
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8');
  if (!isJson(text)) return null;
  return text.includes('\n') ? text.replace(/\n/g, ' ') : text;
}

/** Whether `text` is one JSON value. */
export function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * Data of an rpc, send or publish command as the application sees it:
 * `data` the JSON value (undefined for bytes that are not JSON), `bytes`
 * the bytes a protobuf client sent (undefined for a JSON client).
 */
export function applicationData(value: unknown): { data: Json | undefined; bytes: Uint8Array | undefined } {
  if (!(value instanceof Uint8Array)) return { data: value as Json | undefined, bytes: undefined };
  const json = jsonFormOf(value);
  return { data: json === null ? undefined : (JSON.parse(json) as Json), bytes: value };
}
