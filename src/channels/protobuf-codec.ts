/**
 * The Protocol Buffers encoding of the channel protocol (the SDK's
 * `centrifuge-protobuf` subprotocol): a binary WebSocket frame holds one or
 * more varint length-delimited messages — Commands from the client,
 * Replies from the server (a push is a Reply with id 0 and `push` set, the
 * server ping an empty Reply).
 *
 * Commands decode into the same shapes the JSON encoding gives, with
 * `bytes` fields as Buffers (views of the frame). Replies are encoded from
 * the JSON results the session builds, a `bytes` field holding the JSON
 * text of its value; the publication push of the fan-out has its own
 * encoder that writes one buffer without intermediate objects.
 *
 * Decoding is bounded: every length is checked against the remaining
 * bytes, unknown fields are skipped, and anything malformed (truncated,
 * a wrong wire type, an oversize varint, invalid UTF-8) is a bad request.
 */
import { DisconnectException, Disconnects, type Command } from './protocol.ts';
import type { DecodeLimits } from './codec.ts';
import {
  ClientInfoMessage,
  CommandMessage,
  ReplyMessage,
  PushMessage,
  fieldNamed,
  type FieldSchema,
  type MessageSchema,
  type ScalarType,
} from './protobuf-schema.ts';
import {
  ProtoReader,
  WireError,
  WireType,
  varintSize,
  writeNegativeVarint,
  writeVarint,
} from './protobuf-wire.ts';

/** The WebSocket subprotocol of the Protocol Buffers encoding. */
export const PROTOBUF_SUBPROTOCOL = 'centrifuge-protobuf';

/** Entries one map field (connect `subs`, `headers`) may hold; beyond: a bad request. */
export const MAX_MAP_ENTRIES = 1024;

/** The server's ping: an empty Reply, length-delimited (one zero byte). */
export const PROTOBUF_PING = Buffer.from([0]);

// ---- decoding --------------------------------------------------------------------------------

/**
 * Splits a binary frame into commands. Throws a bad-request
 * DisconnectException for malformed input or more than
 * `maxCommandsPerFrame` commands.
 */
export function decodeProtobufCommands(frame: Buffer, limits: DecodeLimits): Command[] {
  const commands: Command[] = [];
  const reader = new ProtoReader(frame);
  try {
    while (reader.more) {
      if (commands.length >= limits.maxCommandsPerFrame) throw new WireError('too many commands');
      commands.push(decodeNested(CommandMessage, reader, {}));
    }
  } catch (error) {
    if (error instanceof WireError) throw new DisconnectException(Disconnects.BAD_REQUEST);
    throw error;
  }
  return commands;
}

/**
 * Decodes one message from `reader` (to its end) into a plain object keyed
 * by field name; fields not set are absent. Map fields are objects without
 * a prototype. Throws WireError for malformed input.
 */
export function decodeMessage(
  schema: MessageSchema,
  reader: ProtoReader,
  into: Record<string, unknown> = {},
): Record<string, unknown> {
  const byNumber = schema.byNumber;
  while (reader.more) {
    const key = reader.key();
    const number = key >>> 3;
    const wireType = key & 7;
    const field = byNumber[number];
    if (field === undefined) {
      reader.skip(wireType, number);
      continue;
    }
    if (field.map === true) {
      expectWireType(wireType, WireType.LEN);
      let map = into[field.name] as Record<string, unknown> | undefined;
      if (map === undefined) into[field.name] = map = Object.create(null) as Record<string, unknown>;
      const [entryKey, value] = decodeMapEntry(field, reader);
      if (!(entryKey in map) && Object.keys(map).length >= MAX_MAP_ENTRIES)
        throw new WireError('too many map entries');
      map[entryKey] = value;
    } else if (typeof field.type === 'object') {
      expectWireType(wireType, WireType.LEN);
      if (field.repeated === true) {
        let list = into[field.name] as unknown[] | undefined;
        if (list === undefined) into[field.name] = list = [];
        list.push(decodeNested(field.type, reader, {}));
      } else {
        // A message field seen twice merges, as protobuf decoders do.
        const existing = into[field.name] as Record<string, unknown> | undefined;
        into[field.name] = decodeNested(field.type, reader, existing ?? {});
      }
    } else into[field.name] = readScalar(reader, field.type, wireType);
  }
  return into;
}

/** Decodes the length-delimited message at the reader's position, then moves past it. */
function decodeNested(
  schema: MessageSchema,
  reader: ProtoReader,
  into: Record<string, unknown>,
): Record<string, unknown> {
  const [start, end] = reader.lengthDelimited();
  const outer = reader.end;
  reader.pos = start;
  reader.end = end;
  decodeMessage(schema, reader, into);
  reader.end = outer;
  reader.pos = end;
  return into;
}

/** A map entry (key 1, value 2) at the reader's position; the reader moves past it. */
function decodeMapEntry(field: FieldSchema, reader: ProtoReader): [string, unknown] {
  const [start, end] = reader.lengthDelimited();
  const outer = reader.end;
  reader.pos = start;
  reader.end = end;
  let key = '';
  let value: unknown;
  while (reader.more) {
    const k = reader.key();
    const number = k >>> 3;
    const wireType = k & 7;
    if (number === 1) {
      expectWireType(wireType, WireType.LEN);
      key = reader.string();
    } else if (number === 2) {
      if (typeof field.type === 'object') {
        expectWireType(wireType, WireType.LEN);
        value = decodeNested(field.type, reader, {});
      } else value = readScalar(reader, field.type, wireType);
    } else reader.skip(wireType, number);
  }
  reader.end = outer;
  reader.pos = end;
  if (value === undefined) value = typeof field.type === 'object' ? {} : defaultOf(field.type);
  return [key, value];
}

function readScalar(reader: ProtoReader, type: ScalarType, wireType: number): unknown {
  switch (type) {
    case 'string':
      expectWireType(wireType, WireType.LEN);
      return reader.string();
    case 'bytes':
      expectWireType(wireType, WireType.LEN);
      return reader.bytes();
    case 'bool':
      expectWireType(wireType, WireType.VARINT);
      return reader.varint() !== 0;
    case 'uint32':
      expectWireType(wireType, WireType.VARINT);
      return reader.uint32();
    case 'int32':
      expectWireType(wireType, WireType.VARINT);
      return reader.int32();
    case 'uint64':
      expectWireType(wireType, WireType.VARINT);
      return reader.varint();
  }
}

function defaultOf(type: ScalarType): unknown {
  switch (type) {
    case 'string':
      return '';
    case 'bytes':
      return Buffer.alloc(0);
    case 'bool':
      return false;
    default:
      return 0;
  }
}

function expectWireType(actual: number, expected: number): void {
  if (actual !== expected) throw new WireError(`wire type ${actual} where ${expected} belongs`);
}

// ---- encoding from values ----------------------------------------------------------------------

/** A growable output buffer. */
class Writer {
  buf = Buffer.allocUnsafe(256);
  pos = 0;

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  key(number: number, wireType: number): void {
    this.varint(number * 8 + wireType);
  }

  varint(value: number): void {
    this.room(10);
    this.pos =
      value < 0 ? writeNegativeVarint(this.buf, this.pos, value) : writeVarint(this.buf, this.pos, value);
  }

  bytes(data: Uint8Array): void {
    this.varint(data.length);
    this.room(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }

  string(text: string): void {
    const length = Buffer.byteLength(text);
    this.varint(length);
    this.room(length);
    this.pos += this.buf.write(text, this.pos, 'utf8');
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

/**
 * Encodes a value in its JSON shape (keys as field names) as a message.
 * Scalars at their default (false, 0, '') and null or undefined fields are
 * left out; message fields present are written even when empty. A `bytes`
 * field takes a Uint8Array as it is and any other value as its JSON text;
 * a `data` field gives way to a base64 `b64data` sibling (binary data).
 */
export function encodeMessage(schema: MessageSchema, value: Record<string, unknown>): Buffer {
  const w = new Writer();
  writeFields(w, schema, value);
  return Buffer.from(w.finish());
}

function writeFields(w: Writer, schema: MessageSchema, value: Record<string, unknown>): void {
  for (const field of schema.fields) {
    let v = value[field.name];
    if (field.name === 'data' && typeof value.b64data === 'string') v = Buffer.from(value.b64data, 'base64');
    if (v === undefined || v === null) continue;
    if (field.map === true) {
      for (const [key, entry] of Object.entries(v as Record<string, unknown>)) {
        const e = new Writer();
        e.key(1, WireType.LEN);
        e.string(key);
        writeField(e, 2, field.type, entry, true);
        w.key(field.number, WireType.LEN);
        w.bytes(e.finish());
      }
    } else if (field.repeated === true) {
      for (const item of v as unknown[]) writeField(w, field.number, field.type, item, true);
    } else writeField(w, field.number, field.type, v, false);
  }
}

function writeField(
  w: Writer,
  number: number,
  type: ScalarType | MessageSchema,
  v: unknown,
  always: boolean,
): void {
  if (typeof type === 'object') {
    const nested = new Writer();
    writeFields(nested, type, v as Record<string, unknown>);
    w.key(number, WireType.LEN);
    w.bytes(nested.finish());
    return;
  }
  switch (type) {
    case 'string':
      if (v === '' && !always) return;
      w.key(number, WireType.LEN);
      w.string(String(v));
      return;
    case 'bytes': {
      const bytes = v instanceof Uint8Array ? v : Buffer.from(JSON.stringify(v));
      if (bytes.length === 0 && !always) return;
      w.key(number, WireType.LEN);
      w.bytes(bytes);
      return;
    }
    case 'bool':
      if (v !== true && !always) return;
      w.key(number, WireType.VARINT);
      w.varint(v === true ? 1 : 0);
      return;
    default: {
      const n = Number(v);
      if (n === 0 && !always) return;
      w.key(number, WireType.VARINT);
      w.varint(n);
    }
  }
}

/** `bytes` prefixed with their length as a varint: one delimited message of a frame. */
export function delimited(bytes: Buffer): Buffer {
  const out = Buffer.allocUnsafe(varintSize(bytes.length) + bytes.length);
  bytes.copy(out, writeVarint(out, 0, bytes.length));
  return out;
}

// ---- replies and pushes --------------------------------------------------------------------------

/** A delimited Reply to command `id` with the result of `method`, from its JSON. */
export function encodeReply(id: number, method: string, resultJson: string): Buffer {
  fieldNamed(ReplyMessage, method);
  return delimited(encodeMessage(ReplyMessage, { id, [method]: JSON.parse(resultJson) as unknown }));
}

/** A delimited Reply to command `id` with an error. */
export function encodeErrorReply(
  id: number,
  error: { code: number; message: string; temporary?: boolean },
): Buffer {
  return delimited(encodeMessage(ReplyMessage, { id, error }));
}

/** A delimited push (Reply without id) to `channel` of `kind` with its body, from its JSON. */
export function encodePush(channel: string, kind: string, bodyJson: string): Buffer {
  fieldNamed(PushMessage, kind);
  return delimited(
    encodeMessage(ReplyMessage, { push: { channel, [kind]: JSON.parse(bodyJson) as unknown } }),
  );
}

/** ClientInfo encodings of recent publishers, by their JSON (a subscriber's is the same for each of its publications). */
const infoCache = new Map<string, Buffer>();
const INFO_CACHE_SIZE = 256;

/** A ClientInfo message (without its key and length) from its JSON; the result is shared, never modified. */
export function clientInfoBytes(infoJson: string): Buffer {
  let bytes = infoCache.get(infoJson);
  if (bytes === undefined) {
    bytes = encodeMessage(ClientInfoMessage, JSON.parse(infoJson) as Record<string, unknown>);
    if (infoCache.size >= INFO_CACHE_SIZE) infoCache.clear();
    infoCache.set(infoJson, bytes);
  }
  return bytes;
}

/** The tags of a Publication as its field 7 entries (keys and lengths included), from their JSON. */
export function tagsBytes(tagsJson: string): Buffer {
  const w = new Writer();
  writeFields(w, TAGS_ONLY, { tags: JSON.parse(tagsJson) as unknown });
  return Buffer.from(w.finish());
}

const TAGS_ONLY: MessageSchema = {
  name: 'PublicationTags',
  fields: [{ name: 'tags', number: 7, type: 'string', map: true }],
  byNumber: [],
};

/**
 * The publication push of the fan-out, delimited, written into one buffer:
 * Reply{push: Push{channel, pub: Publication{data, info, offset, tags}}}.
 * `info` is an encoded ClientInfo (clientInfoBytes), `tags` encoded
 * entries (tagsBytes); offset 0 is left out.
 */
export function encodePubPush(
  channel: string,
  data: Uint8Array,
  info: Uint8Array | undefined,
  offset: number,
  tags: Uint8Array | undefined,
): Buffer {
  const pubLength =
    (data.length > 0 ? 1 + varintSize(data.length) + data.length : 0) +
    (info === undefined ? 0 : 1 + varintSize(info.length) + info.length) +
    (offset > 0 ? 1 + varintSize(offset) : 0) +
    (tags === undefined ? 0 : tags.length);
  const channelLength = Buffer.byteLength(channel);
  const pushLength =
    (channelLength > 0 ? 1 + varintSize(channelLength) + channelLength : 0) +
    1 +
    varintSize(pubLength) +
    pubLength;
  const replyLength = 1 + varintSize(pushLength) + pushLength;
  const out = Buffer.allocUnsafe(varintSize(replyLength) + replyLength);
  let pos = writeVarint(out, 0, replyLength);
  out[pos++] = (4 << 3) | WireType.LEN; // Reply.push
  pos = writeVarint(out, pos, pushLength);
  if (channelLength > 0) {
    out[pos++] = (2 << 3) | WireType.LEN; // Push.channel
    pos = writeVarint(out, pos, channelLength);
    pos += out.write(channel, pos, 'utf8');
  }
  out[pos++] = (4 << 3) | WireType.LEN; // Push.pub
  pos = writeVarint(out, pos, pubLength);
  if (data.length > 0) {
    out[pos++] = (4 << 3) | WireType.LEN; // Publication.data
    pos = writeVarint(out, pos, data.length);
    out.set(data, pos);
    pos += data.length;
  }
  if (info !== undefined) {
    out[pos++] = (5 << 3) | WireType.LEN; // Publication.info
    pos = writeVarint(out, pos, info.length);
    out.set(info, pos);
    pos += info.length;
  }
  if (offset > 0) {
    out[pos++] = (6 << 3) | WireType.VARINT; // Publication.offset
    pos = writeVarint(out, pos, offset);
  }
  if (tags !== undefined) out.set(tags, pos);
  return out;
}
