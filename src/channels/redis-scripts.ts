/**
 * The Lua scripts of the Redis channel engine, and how they are run:
 * EVALSHA with the script's SHA-1, falling back to EVAL (which also caches
 * the script on that server) when the server answers NOSCRIPT — after a
 * restart, a failover or on a cluster node that never saw it.
 *
 * Every script touches only the keys it is given, all of one channel and
 * so of one hash slot (see redis-keys.ts), and the channel's pub/sub
 * channel of the same slot: it runs unchanged on Redis Cluster.
 * Times come from the Redis server's clock (TIME), so nodes with skewed
 * clocks agree on ages and expiries.
 */
import { createHash } from 'node:crypto';

/** A script and its SHA-1. */
export interface Script {
  readonly name: string;
  readonly source: string;
  readonly sha: string;
}

function script(name: string, source: string): Script {
  return { name, source, sha: createHash('sha1').update(source).digest('hex') };
}

// Shared: the server's time in ms.
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/**
 * Publish to a channel with history.
 * KEYS: stream, meta. ARGV: pubsub channel, size, ttl ms, meta ttl ms,
 * epoch to use when the meta key is missing, data JSON, tail, raw text
 * ('' = the data), mode ('p' PUBLISH, 's' SPUBLISH, 'n' none).
 * Returns {offset, epoch}.
 *
 * A missing meta key means the stream's position is lost (first use, meta
 * TTL, Redis restarted without persistence): a new epoch starts and any
 * stream left over is dropped, so no position of the old epoch can recover.
 */
export const PUBLISH_SCRIPT = script(
  'publish',
  `${NOW}local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[5]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', epoch, 's', 0)
end
local offset = redis.call('HINCRBY', KEYS[2], 's', 1)
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], string.format('%d-0', offset), 'd', ARGV[6], 't', ARGV[7], 'm', now)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local message = string.format('p %d %s %d %d\\n', offset, epoch, #ARGV[8], #ARGV[6]) .. ARGV[8] .. ARGV[6] .. ARGV[7]
if ARGV[9] == 's' then
  redis.call('SPUBLISH', ARGV[1], message)
elseif ARGV[9] == 'p' then
  redis.call('PUBLISH', ARGV[1], message)
end
return {offset, epoch}
`,
);

/**
 * Read the position and publications of a channel.
 * KEYS: stream, meta. ARGV: epoch to create when missing, meta ttl ms,
 * first offset ('0' = oldest), last offset ('0' = newest), count
 * (0 = position only), reverse ('1'), ttl ms (publications older are
 * left out; '0' = no age check).
 * Returns {epoch, top, offset1, data1, tail1, offset2, …}.
 */
export const READ_SCRIPT = script(
  'read',
  `${NOW}local epoch = redis.call('HGET', KEYS[2], 'e')
local top = 0
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', epoch, 's', 0)
else
  top = tonumber(redis.call('HGET', KEYS[2], 's') or '0')
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
local out = {epoch, top}
local count = tonumber(ARGV[5])
if count <= 0 then return out end
local lo = ARGV[3] == '0' and '-' or (ARGV[3] .. '-0')
local hi = ARGV[4] == '0' and '+' or (ARGV[4] .. '-0')
local entries
if ARGV[6] == '1' then
  entries = redis.call('XREVRANGE', KEYS[1], hi, lo, 'COUNT', count)
else
  entries = redis.call('XRANGE', KEYS[1], lo, hi, 'COUNT', count)
end
local ttl = tonumber(ARGV[7])
local oldest = ttl > 0 and now - ttl or -1
for _, entry in ipairs(entries) do
  local f = entry[2]
  local fields = {}
  for i = 1, #f, 2 do fields[f[i]] = f[i + 1] end
  if tonumber(fields['m'] or '0') > oldest then
    out[#out + 1] = string.match(entry[1], '^(%d+)')
    out[#out + 1] = fields['d']
    out[#out + 1] = fields['t'] or ''
  end
end
return out
`,
);

/**
 * Add or refresh presence entries.
 * KEYS: presence, presence users, presence expiry. ARGV: entry ttl ms,
 * then (client id, user, info JSON) for every entry. Every key lives
 * ttl ms after the last add.
 */
export const PRESENCE_ADD_SCRIPT = script(
  'presence_add',
  `${NOW}local ttl = tonumber(ARGV[1])
for i = 2, #ARGV, 3 do
  redis.call('ZADD', KEYS[3], now + ttl, ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
end
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ttl) end
return 1
`,
);

/** Remove a presence entry. KEYS: presence, presence users, presence expiry. ARGV: client id. */
export const PRESENCE_REMOVE_SCRIPT = script(
  'presence_remove',
  `redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
`,
);

/**
 * Read presence: expired entries are removed first (at most 1000 per call;
 * later ones are left out of the answer all the same).
 * KEYS: presence, presence users, presence expiry. ARGV: most entries
 * ('n'), mode ('get' or 'stats').
 * Returns {-1, count} when more than n entries are live; else for 'get'
 * {client1, info1, …}, for 'stats' {clients, distinct users}.
 */
export const PRESENCE_READ_SCRIPT = script(
  'presence_read',
  `${NOW}local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)
if #expired > 0 then
  redis.call('ZREM', KEYS[3], unpack(expired))
  redis.call('HDEL', KEYS[2], unpack(expired))
  redis.call('HDEL', KEYS[1], unpack(expired))
end
local n = redis.call('ZCOUNT', KEYS[3], '(' .. now, '+inf')
if n > tonumber(ARGV[1]) then return {-1, n} end
local live = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. now, '+inf')
local out = {}
local users = {}
local distinct = 0
for i = 1, #live, 500 do
  local chunk = {}
  for j = i, math.min(i + 499, #live) do chunk[#chunk + 1] = live[j] end
  local values = redis.call('HMGET', ARGV[2] == 'stats' and KEYS[2] or KEYS[1], unpack(chunk))
  for j, value in ipairs(values) do
    if value then
      if ARGV[2] == 'stats' then
        if not users[value] then users[value] = true; distinct = distinct + 1 end
      else
        out[#out + 1] = chunk[j]
        out[#out + 1] = value
      end
    end
  end
end
if ARGV[2] == 'stats' then return {#live, distinct} end
return out
`,
);

/** Runs a command on the server owning `key` (a cluster client routes by it); rejects with the server's error. */
export type KeyedCommand = (key: string, args: string[]) => Promise<unknown>;

/** Runs `s` with EVALSHA, and with EVAL when the server does not know it yet (NOSCRIPT). */
export async function runScript(
  command: KeyedCommand,
  s: Script,
  keys: string[],
  args: Array<string | number>,
): Promise<unknown> {
  const tail = [String(keys.length), ...keys, ...args.map(String)];
  try {
    return await command(keys[0]!, ['EVALSHA', s.sha, ...tail]);
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
    return command(keys[0]!, ['EVAL', s.source, ...tail]);
  }
}
