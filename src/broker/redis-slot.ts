/**
 * The Redis Cluster hash slot of a key or sharded channel name, as the
 * cluster specification defines it: CRC16 (XMODEM: polynomial 0x1021, initial
 * value 0) of the name, modulo 16384. When the name holds a non-empty hash
 * tag — the bytes between the first `{` and the first `}` after it — only the
 * tag is hashed, so names sharing a tag share a slot. Names are hashed as
 * their UTF-8 bytes.
 */

/** Number of hash slots in a Redis Cluster. */
export const REDIS_CLUSTER_SLOTS = 16_384;

const TABLE = buildTable();

function buildTable(): Uint16Array {
  const table = new Uint16Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte << 8;
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[byte] = crc;
  }
  return table;
}

function crc16(bytes: Uint8Array, from: number, to: number): number {
  let crc = 0;
  for (let i = from; i < to; i++) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ bytes[i]!) & 0xff]!;
  return crc;
}

/** The hash slot (0–16383) Redis Cluster assigns to `name` (a key or a sharded pub/sub channel). */
export function redisSlot(name: string | Uint8Array): number {
  const bytes = typeof name === 'string' ? Buffer.from(name, 'utf8') : name;
  const open = bytes.indexOf(0x7b); // '{'
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1); // '}'
    // An empty tag ("{}") does not count: the whole name is hashed.
    if (close > open + 1) return crc16(bytes, open + 1, close) % REDIS_CLUSTER_SLOTS;
  }
  return crc16(bytes, 0, bytes.length) % REDIS_CLUSTER_SLOTS;
}

/** Groups names by hash slot, keeping their order within each group. */
export function groupBySlot(names: readonly string[]): Map<number, string[]> {
  const groups = new Map<number, string[]>();
  for (const name of names) {
    const slot = redisSlot(name);
    const group = groups.get(slot);
    if (group === undefined) groups.set(slot, [name]);
    else group.push(name);
  }
  return groups;
}
