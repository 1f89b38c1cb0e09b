/**
 * Redis key and pub/sub channel names of one channel's state, and the
 * message a publication travels in on Redis pub/sub.
 *
 * Every key and the pub/sub channel of a channel share one Redis Cluster
 * hash slot: they start with `<prefix>:{<tag>}` where the tag is a digest
 * of the channel name (24 hex characters). Redis hashes the text between
 * the first `{` and the next `}`; a digest never holds a brace and is never
 * empty, so whatever the channel name contains (`{`, `}`, `{}`), the tag is
 * the digest. The name itself follows the tag, so two channels never share
 * keys, and keys stay readable.
 */
import { createHash } from 'node:crypto';

/** The keys and the pub/sub channel of one channel. */
export interface ChannelKeys {
  /** The history stream (XADD; entry id = offset). */
  stream: string;
  /** The stream's position: hash of `e` (epoch) and `s` (top offset). */
  meta: string;
  /** Presence: hash client id → ClientInfo JSON. */
  presence: string;
  /** Presence: hash client id → user (for distinct users). */
  presenceUsers: string;
  /** Presence: sorted set client id → expiry time (ms, Redis clock). */
  presenceExpiry: string;
  /** The pub/sub (shard) channel its publications and join/leave events travel on. */
  pubsub: string;
}

/** The hash tag of `channel`: 24 hex characters of its SHA-256 (never empty, never a brace). */
export function hashTag(channel: string): string {
  return createHash('sha256').update(channel).digest('hex').slice(0, 24);
}

/** Checks a key prefix: 1–64 characters without `{`, `}` or whitespace (a brace would move the hash tag). */
export function checkKeyPrefix(prefix: string): string {
  if (!/^[^\s{}]{1,64}$/.test(prefix))
    throw new RangeError('channel state prefix must be 1-64 characters without braces or whitespace');
  return prefix;
}

/** The keys of `channel` under `prefix` (checked with checkKeyPrefix). */
export function channelKeys(prefix: string, channel: string): ChannelKeys {
  const base = `${prefix}:{${hashTag(channel)}}:`;
  return {
    stream: `${base}stream:${channel}`,
    meta: `${base}meta:${channel}`,
    presence: `${base}presence:${channel}`,
    presenceUsers: `${base}presence-users:${channel}`,
    presenceExpiry: `${base}presence-expiry:${channel}`,
    pubsub: `${base}pub:${channel}`,
  };
}

/**
 * The channel name of a pub/sub channel made by channelKeys under `prefix`,
 * or null when it is not one.
 */
export function channelOfPubsub(prefix: string, pubsub: string): string | null {
  const start = prefix.length + 2 + 24 + 2; // `<prefix>:{` tag `}:`
  if (!pubsub.startsWith(`${prefix}:{`) || pubsub.slice(start, start + 4) !== 'pub:') return null;
  const channel = pubsub.slice(start + 4);
  return pubsub.slice(prefix.length + 2, prefix.length + 26) === hashTag(channel) ? channel : null;
}

/** A message on a channel's pub/sub channel. */
export type StateMessage =
  | {
      kind: 'pub';
      offset: number;
      epoch: string;
      /** The publication's `data` as JSON text. */
      dataJson: string;
      /** The publication's fields after offset (`,"info":…,"tags":…`), or ''. */
      tail: string;
      /** What raw `/ws` members receive: the original text when it differs from dataJson, else null. */
      raw: string | null;
    }
  | { kind: 'join' | 'leave'; infoJson: string }
  /** A node's sync marker: every publication stored before it has passed. */
  | { kind: 'sync'; token: string };

/**
 * Decodes a pub/sub message. The publish script writes
 * `p <offset> <epoch> <rawBytes> <dataBytes>\n<raw><data><tail>` (lengths in
 * UTF-8 bytes; rawBytes 0: raw members get the data); join and leave are
 * `j\n<info>` and `l\n<info>`; a sync marker is `s <token>\n`. Returns null
 * for anything malformed.
 */
export function decodeStateMessage(message: Buffer): StateMessage | null {
  const newline = message.indexOf(0x0a);
  if (newline < 1 || newline > 200) return null;
  const head = message.toString('latin1', 0, newline).split(' ');
  const body = newline + 1;
  if (head[0] === 's') {
    if (head.length !== 2 || head[1] === '' || body !== message.length) return null;
    return { kind: 'sync', token: head[1]! };
  }
  if (head[0] === 'j' || head[0] === 'l') {
    if (head.length !== 1) return null;
    return { kind: head[0] === 'j' ? 'join' : 'leave', infoJson: message.toString('utf8', body) };
  }
  if (head[0] !== 'p' || head.length !== 5) return null;
  const [, offsetText, epoch, rawText, dataText] = head as [string, string, string, string, string];
  const offset = Number(offsetText);
  const rawBytes = Number(rawText);
  const dataBytes = Number(dataText);
  if (![offset, rawBytes, dataBytes].every((n) => Number.isSafeInteger(n) && n >= 0)) return null;
  if (offset < 1 || dataBytes < 1 || epoch === '' || body + rawBytes + dataBytes > message.length)
    return null;
  const dataStart = body + rawBytes;
  return {
    kind: 'pub',
    offset,
    epoch,
    raw: rawBytes === 0 ? null : message.toString('utf8', body, dataStart),
    dataJson: message.toString('utf8', dataStart, dataStart + dataBytes),
    tail: message.toString('utf8', dataStart + dataBytes),
  };
}

/** A join or leave message (`j\n<info>` / `l\n<info>`). */
export function encodeJoinLeave(kind: 'join' | 'leave', infoJson: string): string {
  return `${kind === 'join' ? 'j' : 'l'}\n${infoJson}`;
}

/** A sync marker carrying `token` (no spaces or newlines). */
export function encodeSync(token: string): string {
  return `s ${token}\n`;
}

/** The publication JSON a subscriber gets: `{"data":…,"offset":N…}`, as the in-memory history builds it. */
export function publicationJson(dataJson: string, offset: number, tail: string): string {
  return `{"data":${dataJson},"offset":${offset}${tail}}`;
}
