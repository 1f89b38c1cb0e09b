/**
 * Every `wshub serve` option, described once: its flag, type and bounds,
 * default, environment variable (`WSHUB_` + the flag in upper snake case)
 * and, when it sets a server option, the config-file key. The flag parser,
 * the environment reader, the config file's range checks, `serve --help` and
 * the table in docs/CONFIG.md all come from this list; precedence is flag,
 * then environment, then config file. Secrets are not here: they keep
 * their own variables (WS_SECRET, WS_BROADCAST_SECRET, WS_API_KEY,
 * WS_METRICS_KEY) or files.
 */
import type { ParseArgsConfig } from 'node:util';
import { MAX_READ_LIMIT } from '../connection/connection.ts';
import { UsageError } from './args.ts';
import { MAX_WORKERS } from './scaleout.ts';

/** What an option's value is. */
export type OptionKind = 'string' | 'path' | 'file' | 'int' | 'boolean' | 'list' | 'enum';

/** One option of `wshub serve`. */
export interface ServeOption {
  /** The flag without `--`. */
  flag: string;
  kind: OptionKind;
  /** Placeholder of the value in the help (e.g. N, FILE). */
  arg?: string;
  /** Inclusive bounds of an `int`; without `max`, "at least `min`". */
  min?: number;
  max?: number;
  /** The allowed values of an `enum`. */
  values?: readonly string[];
  /** The default as shown to users. */
  default?: string;
  /** True when the CLI itself applies `default` (otherwise the server's defaults apply). */
  cliDefault?: true;
  /** The config-file key (WshubConfig) this option sets, when it sets one directly. */
  key?: string;
  /** False for options that have no environment variable (--help). */
  env?: false;
  short?: string;
  /** What it does (lines of the help text). */
  help: string;
}

const MAX_PORT = 65535;

/** The options, in the order `serve --help` lists them. */
export const SERVE_OPTIONS: readonly ServeOption[] = [
  {
    flag: 'host',
    kind: 'string',
    arg: 'HOST',
    default: '127.0.0.1',
    cliDefault: true,
    help: 'address to listen on',
  },
  {
    flag: 'port',
    kind: 'int',
    arg: 'N',
    min: 0,
    max: MAX_PORT,
    default: '8080',
    cliDefault: true,
    help: 'port (0 picks a free port)',
  },
  {
    flag: 'path',
    kind: 'path',
    arg: 'PATH',
    key: 'wsRoutePath',
    default: '/ws',
    help: 'WebSocket endpoint path',
  },
  {
    flag: 'config',
    kind: 'file',
    arg: 'FILE',
    help: 'JSON object of server options (camelCase names, plus\n"roomPasswords": {"ROOM": "PASSWORD"}); flags and WSHUB_* variables override it',
  },
  {
    flag: 'secret-file',
    kind: 'file',
    arg: 'FILE',
    help: 'read the token secret from FILE instead of WS_SECRET',
  },
  {
    flag: 'broadcast-secret-file',
    kind: 'file',
    arg: 'FILE',
    help: 'read the broadcast secret from FILE instead of WS_BROADCAST_SECRET',
  },
  {
    flag: 'room-passwords',
    kind: 'file',
    arg: 'FILE',
    help: 'JSON object {"ROOM": "PASSWORD"} of password-protected rooms',
  },
  {
    flag: 'allow-unauthenticated',
    kind: 'boolean',
    key: 'allowUnauthenticated',
    help: 'accept clients without a token (a token, if sent, is still checked)',
  },
  {
    flag: 'token-public-key-file',
    kind: 'file',
    arg: 'FILE',
    help: 'verify RS256/ES256/EdDSA tokens with this public key\n(PEM SPKI or JWK); the algorithm follows the key',
  },
  {
    flag: 'jwks-url',
    kind: 'string',
    arg: 'URL',
    key: 'jwksUrl',
    help: "verify RS/PS/ES/EdDSA tokens with the issuer's JSON Web\nKey Set (cached; refetched once on an unknown kid)",
  },
  {
    flag: 'token-issuer',
    kind: 'list',
    arg: 'ISS',
    key: 'tokenIssuer',
    help: 'accepted "iss" of tokens (repeatable)',
  },
  {
    flag: 'token-audience',
    kind: 'list',
    arg: 'AUD',
    key: 'tokenAudience',
    help: 'accepted "aud" of tokens (repeatable)',
  },
  {
    flag: 'token-leeway',
    kind: 'int',
    arg: 'SECONDS',
    min: 0,
    max: 3600,
    key: 'tokenLeeway',
    default: '0',
    help: 'clock skew tolerated for "exp" and "nbf"',
  },
  {
    flag: 'allow-query-token',
    kind: 'boolean',
    key: 'allowQueryToken',
    help: 'accept the token in ?token= as well as in headers',
  },
  {
    flag: 'allow-origin',
    kind: 'list',
    arg: 'ORIGIN',
    key: 'allowedOrigins',
    help: "allow browser pages from ORIGIN (repeatable; replaces\nthe config file's allowedOrigins)",
  },
  { flag: 'allow-all-origins', kind: 'boolean', key: 'allowAllOrigins', help: 'allow every origin' },
  {
    flag: 'broadcast',
    kind: 'boolean',
    key: 'broadcastEnabled',
    help: 'enable the admin broadcast endpoint (needs the broadcast secret)',
  },
  {
    flag: 'broadcast-path',
    kind: 'path',
    arg: 'PATH',
    key: 'broadcastPath',
    default: '/_admin/broadcast',
    help: 'admin broadcast path',
  },
  {
    flag: 'max-room-connections',
    kind: 'int',
    arg: 'N',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    key: 'maxRoomConnections',
    default: '0',
    help: 'connections per room (0 = unlimited)',
  },
  {
    flag: 'max-room-registrations',
    kind: 'int',
    arg: 'N',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    key: 'maxRoomRegistrations',
    default: '0',
    help: 'room memberships in the whole hub (0 = unlimited)',
  },
  {
    flag: 'max-connection-rate',
    kind: 'int',
    arg: 'N',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    key: 'maxConnectionRate',
    default: '0',
    help: 'new joins per second, hub-wide (0 = unlimited)',
  },
  {
    flag: 'max-pending-handshakes',
    kind: 'int',
    arg: 'N',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    key: 'maxPendingHandshakes',
    default: '1024',
    help: 'handshakes in progress at once; past it the oldest\nis dropped for the newcomer (0 = unlimited)',
  },
  {
    flag: 'max-pending-handshakes-per-ip',
    kind: 'int',
    arg: 'N',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    key: 'maxPendingHandshakesPerAddress',
    default: '64',
    help: 'handshakes in progress per client address (IPv6: per /64);\npast it 429 (0 = unlimited)',
  },
  {
    flag: 'max-conns-per-ip',
    kind: 'int',
    arg: 'N',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    key: 'maxConnsPerIp',
    default: '1000',
    help: 'connections per client address (IPv6: per /64); past it\n429 (0 = unlimited)',
  },
  {
    flag: 'max-handshakes-per-ip',
    kind: 'int',
    arg: 'N',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    key: 'maxHandshakesPerIp',
    default: '100',
    help: 'new connections per client address per second; past it\n429 (0 = unlimited)',
  },
  {
    flag: 'max-conns-per-user',
    kind: 'int',
    arg: 'N',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    key: 'maxConnsPerUser',
    default: '0',
    help: 'connections per user (token "sub"), /ws and channels\ntogether; past it 429 or channel disconnect 3504 (0 = unlimited)',
  },
  {
    flag: 'max-messages-per-sec',
    kind: 'int',
    arg: 'N',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    key: 'maxMessagesPerSec',
    default: '1000',
    help: 'messages one connection may send per second; past it\nclose 1008 (channels 3013) (0 = unlimited)',
  },
  {
    flag: 'max-bytes-per-sec',
    kind: 'int',
    arg: 'BYTES',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    key: 'maxBytesPerSec',
    default: '16777216',
    help: 'bytes one connection may send per second; past it close\n1008 (channels 3013) (0 = unlimited)',
  },
  {
    flag: 'password-lockout',
    kind: 'int',
    arg: 'N',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    key: 'passwordLockout',
    default: '10',
    help: 'wrong room passwords from one address for one room\nbefore a lockout (429) (0 = no lockout)',
  },
  {
    flag: 'password-lockout-ms',
    kind: 'int',
    arg: 'MS',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    key: 'passwordLockoutMs',
    default: '60000',
    help: 'length of a room-password lockout',
  },
  {
    flag: 'limit-exempt',
    kind: 'list',
    arg: 'CIDR',
    key: 'limitExempt',
    help: 'client addresses the per-client limits skip (repeatable;\nreplaces the default 127.0.0.0/8 and ::1; "none" for none)',
  },
  {
    flag: 'trusted-proxy',
    kind: 'list',
    arg: 'CIDR',
    key: 'trustedProxies',
    help: 'read the client address from the forwarding header of\nrequests from these proxies (repeatable; IPv4 or IPv6)',
  },
  {
    flag: 'trusted-proxy-header',
    kind: 'enum',
    arg: 'NAME',
    values: ['x-forwarded-for', 'forwarded'],
    key: 'trustedProxyHeader',
    default: 'x-forwarded-for',
    help: 'the header they set: x-forwarded-for or forwarded',
  },
  {
    flag: 'send-behavior',
    kind: 'enum',
    arg: 'MODE',
    values: ['block', 'drop', 'close'],
    key: 'sendBehavior',
    default: 'block',
    help: 'full send queue: block, drop or close',
  },
  {
    flag: 'send-queue',
    kind: 'int',
    arg: 'N',
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    key: 'sendQueueSize',
    default: '256',
    help: 'messages queued per connection',
  },
  {
    flag: 'send-timeout',
    kind: 'int',
    arg: 'MS',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    key: 'sendTimeout',
    default: '200',
    help: 'how long a blocked send waits',
  },
  {
    flag: 'read-limit',
    kind: 'int',
    arg: 'BYTES',
    min: 1,
    max: MAX_READ_LIMIT,
    key: 'readLimit',
    default: '16777216',
    help: 'largest message accepted; for a compressed message,\nthe size once inflated',
  },
  {
    flag: 'deflate',
    kind: 'boolean',
    help: 'permessage-deflate on both WebSocket paths when the\nclient offers it (default: the channel path only)',
  },
  { flag: 'no-deflate', kind: 'boolean', help: 'never negotiate permessage-deflate' },
  {
    flag: 'deflate-threshold',
    kind: 'int',
    arg: 'BYTES',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    key: 'deflateThreshold',
    default: '128',
    help: 'messages shorter than this are sent uncompressed',
  },
  {
    flag: 'deflate-level',
    kind: 'int',
    arg: 'N',
    min: 0,
    max: 9,
    key: 'deflateLevel',
    default: '3',
    help: 'zlib level of compressed messages',
  },
  {
    flag: 'max-partial-message-bytes',
    kind: 'int',
    arg: 'BYTES',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    key: 'maxPartialMessageBytes',
    default: '268435456',
    help: 'bytes all incomplete incoming messages may hold together;\npast it a connection is closed with 1013',
  },
  {
    flag: 'max-outbound-bytes',
    kind: 'int',
    arg: 'BYTES',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    key: 'maxOutboundBytes',
    default: '33554432',
    help: 'bytes waiting to go out to one connection before it is\ndestroyed (default: twice the send queue bytes)',
  },
  {
    flag: 'message-validation',
    kind: 'enum',
    arg: 'MODE',
    values: ['strict', 'off'],
    default: 'strict',
    help: 'text message checks: strict or off (config file: messageValidation)',
  },
  {
    flag: 'channel-path',
    kind: 'path',
    arg: 'PATH',
    key: 'channelPath',
    default: '/connection/websocket',
    help: 'channel protocol endpoint',
  },
  { flag: 'no-channels', kind: 'boolean', help: 'do not serve the channel protocol' },
  {
    flag: 'allow-anonymous-connect',
    kind: 'boolean',
    help: 'accept channel connects without a token (as user "")',
  },
  {
    flag: 'api-key-file',
    kind: 'file',
    arg: 'FILE',
    help: 'read the server API key from FILE instead of WS_API_KEY',
  },
  {
    flag: 'tls-cert',
    kind: 'file',
    arg: 'FILE',
    help: 'serve https and wss with this PEM certificate (with --tls-key)',
  },
  { flag: 'tls-key', kind: 'file', arg: 'FILE', help: 'the PEM private key of --tls-cert' },
  {
    flag: 'metrics',
    kind: 'boolean',
    key: 'metricsEnabled',
    help: 'serve Prometheus metrics at /metrics on the main port, to scrapers\nsending "Authorization: Bearer" + WS_METRICS_KEY (needs the key)',
  },
  {
    flag: 'metrics-key-file',
    kind: 'file',
    arg: 'FILE',
    help: 'read the metrics key from FILE instead of WS_METRICS_KEY',
  },
  {
    flag: 'metrics-port',
    kind: 'int',
    arg: 'N',
    min: 0,
    max: MAX_PORT,
    help: 'serve /metrics on a listener of its own (no key: the port is\nthe access control; 0 picks a free port)',
  },
  {
    flag: 'metrics-host',
    kind: 'string',
    arg: 'HOST',
    default: '127.0.0.1',
    cliDefault: true,
    help: 'address of the --metrics-port listener',
  },
  {
    flag: 'log-level',
    kind: 'enum',
    arg: 'LEVEL',
    values: ['debug', 'info', 'warn', 'error'],
    default: 'info',
    cliDefault: true,
    help: 'least severe level logged: debug, info, warn or error',
  },
  {
    flag: 'broker',
    kind: 'string',
    arg: 'URL',
    help: 'scale out through a broker: redis://HOST:PORT, rediss://…\nor nats://HOST:PORT (comma-separate several NATS servers,\nor several Redis Cluster seed nodes with --broker-cluster);\nunreachable at start → exit code 1, no retry',
  },
  {
    flag: 'broker-cluster',
    kind: 'boolean',
    help: "the redis:// URLs are Redis Cluster nodes: the cluster\nclient, sharded pub/sub routed to each channel's master",
  },
  {
    flag: 'broker-sharded',
    kind: 'boolean',
    help: 'one Redis server, sharded pub/sub (SSUBSCRIBE/SPUBLISH,\nRedis 7+); implied by --broker-cluster',
  },
  { flag: 'node-id', kind: 'string', arg: 'ID', help: "this node's id in the cluster (default: random)" },
  {
    flag: 'broker-max-in-flight-bytes',
    kind: 'int',
    arg: 'BYTES',
    min: 1,
    default: '67108864',
    help: 'message bytes waiting for the broker at once; beyond\nthem publishes are dropped and counted',
  },
  {
    flag: 'broker-max-remote-rooms',
    kind: 'int',
    arg: 'N',
    min: 1,
    default: '1048576',
    help: "room counts kept from other nodes' announcements, all\nnodes together; beyond them announcements are refused\nand counted",
  },
  {
    flag: 'state',
    kind: 'string',
    arg: 'URL',
    help: "where channel history and presence live: memory (per\nnode) or redis://…, rediss://… (shared by all nodes);\ndefault: the --broker's Redis if it is one, else memory",
  },
  { flag: 'state-cluster', kind: 'boolean', help: 'the --state Redis is a Redis Cluster' },
  {
    flag: 'state-presence-ttl',
    kind: 'int',
    arg: 'MS',
    min: 1,
    max: 2147483647,
    default: '60000',
    help: 'presence entries of a node that stopped refreshing\nthem (e.g. killed) vanish within this',
  },
  {
    flag: 'workers',
    kind: 'int',
    arg: 'N',
    min: 1,
    max: MAX_WORKERS,
    help: 'run N worker processes sharing the port; they stay\nconsistent through --broker, or through the primary\nprocess when no broker is given; crashed workers restart',
  },
  {
    flag: 'dev',
    kind: 'boolean',
    help: 'development mode: the demo chat page at / (channels\nchat:* with history, recovery and presence), a random\nper-run secret when WS_SECRET is unset; not for production',
  },
  { flag: 'help', kind: 'boolean', short: 'h', env: false, help: 'show this help' },
];

/** The environment variable of an option: `WSHUB_` + the flag in upper snake case. */
export function envName(flag: string): string {
  return `WSHUB_${flag.toUpperCase().replace(/-/g, '_')}`;
}

type ParseOptions = NonNullable<ParseArgsConfig['options']>;

/** The node:util parseArgs table of the options (no defaults: those apply after the environment). */
export function parseArgsOptions(): ParseOptions {
  const out: ParseOptions = {};
  for (const o of SERVE_OPTIONS) {
    out[o.flag] = {
      type: o.kind === 'boolean' ? 'boolean' : 'string',
      ...(o.kind === 'list' ? { multiple: true } : {}),
      ...(o.short !== undefined ? { short: o.short } : {}),
    };
  }
  return out;
}

/** An option's checked value. */
export type OptionValue = string | number | boolean | string[];

/** The options after flags and environment are merged and checked; absent ones are undefined. */
export interface ServeValues {
  /** The value of `flag` (its default when neither a flag nor the environment set it and it has one). */
  get(flag: string): OptionValue | undefined;
  /** Where the value came from: `--flag`, `WSHUB_FLAG`, or undefined for a default or nothing. */
  source(flag: string): string | undefined;
  /** The values as parseArgs would give them (strings, booleans, string arrays), defaults left out. */
  raw(): Record<string, string | boolean | string[] | undefined>;
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off']);

/**
 * Merges parsed flags over the environment and checks every value against
 * its option; a UsageError names the flag or the variable it came from
 * (`WSHUB_PORT must be a whole number, got "abc"`). Empty variables count
 * as unset; booleans take 1/0, true/false, yes/no, on/off; lists are
 * comma-separated.
 */
export function readServeValues(
  flags: Record<string, string | boolean | string[] | undefined>,
  env: NodeJS.ProcessEnv,
): ServeValues {
  const values = new Map<string, OptionValue>();
  const sources = new Map<string, string>();
  const raw: Record<string, string | boolean | string[] | undefined> = {};
  for (const o of SERVE_OPTIONS) {
    let given: string | boolean | string[] | undefined = flags[o.flag];
    let source = `--${o.flag}`;
    if (given === undefined && o.env !== false) {
      const name = envName(o.flag);
      const text = env[name];
      if (text !== undefined && text !== '') {
        source = name;
        given = fromEnv(o, text, name);
      }
    }
    if (given === undefined) {
      if (o.cliDefault === true && o.default !== undefined)
        values.set(o.flag, o.kind === 'int' ? Number(o.default) : o.default);
      continue;
    }
    raw[o.flag] = given;
    sources.set(o.flag, source);
    values.set(o.flag, check(o, given, source));
  }
  return {
    get: (flag) => values.get(flag),
    source: (flag) => sources.get(flag),
    raw: () => ({ ...raw }),
  };
}

/** The value of a variable as the flag parser would give it. */
function fromEnv(o: ServeOption, text: string, name: string): string | boolean | string[] {
  if (o.kind === 'boolean') {
    const lower = text.trim().toLowerCase();
    if (TRUE.has(lower)) return true;
    if (FALSE.has(lower)) return false;
    throw new UsageError(`${name} must be true or false (or 1/0, yes/no, on/off), got "${text}"`);
  }
  if (o.kind === 'list')
    return text
      .split(',')
      .map((part) => part.trim())
      .filter((part) => part !== '');
  return text;
}

/** Checks one value of option `o` from `source`; returns it typed. */
function check(o: ServeOption, value: string | boolean | string[], source: string): OptionValue {
  if (typeof value === 'boolean' || Array.isArray(value)) return value;
  switch (o.kind) {
    case 'int':
      return checkInt(o, value, source);
    case 'enum':
      if (!o.values!.includes(value))
        throw new UsageError(`${source} must be one of ${o.values!.join(', ')}, got "${value}"`);
      return value;
    case 'path':
      if (!value.startsWith('/'))
        throw new UsageError(`${source}: paths must start with "/", got "${value}"`);
      return value;
    case 'string':
    case 'file':
      if (value === '') throw new UsageError(`${source} must not be empty`);
      return value;
    default:
      return value;
  }
}

function checkInt(o: ServeOption, value: string, source: string): number {
  const n = Number(value);
  const whole = /^\d+$/.test(value) && Number.isSafeInteger(n);
  const min = o.min ?? 0;
  if (o.max === undefined) {
    if (!whole || n < min)
      throw new UsageError(`${source} must be a whole number of at least ${min}, got "${value}"`);
    return n;
  }
  if (!whole) throw new UsageError(`${source} must be a whole number, got "${value}"`);
  if (n < min || n > o.max)
    throw new UsageError(`${source} must be between ${min} and ${o.max}, got ${value}`);
  return n;
}

/**
 * Checks a config-file value of a key some option sets against that
 * option's bounds (types are checked by the file reader); returns an error
 * message or undefined.
 */
export function checkFileValue(key: string, value: unknown): string | undefined {
  const o = SERVE_OPTIONS.find((option) => option.key === key);
  if (o === undefined) return undefined;
  if (o.kind === 'int' && typeof value === 'number') {
    try {
      checkInt(o, String(value), `"${key}"`);
    } catch (error) {
      return (error as Error).message;
    }
  }
  if (o.kind === 'enum' && typeof value === 'string' && !o.values!.includes(value))
    return `"${key}" must be one of ${o.values!.join(', ')}, got "${value}"`;
  if (o.kind === 'path' && typeof value === 'string' && !value.startsWith('/'))
    return `"${key}" must be a path starting with "/", got "${value}"`;
  return undefined;
}

/** The flags part of `serve --help`. */
export function flagsHelp(): string {
  const lines: string[] = [];
  for (const o of SERVE_OPTIONS) {
    const head = `  --${o.flag}${o.arg !== undefined ? ` ${o.arg}` : ''}${o.short !== undefined ? `, -${o.short}` : ''}`;
    const text = o.help.split('\n');
    if (o.default !== undefined) text[text.length - 1] += ` (default ${o.default})`;
    const [first = '', ...more] = text;
    if (head.length < 33) lines.push(`${head.padEnd(33)}${first}`);
    else lines.push(head, `${' '.repeat(33)}${first}`);
    for (const line of more) lines.push(`${' '.repeat(33)}${line}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The type column of the docs table. */
function typeOf(o: ServeOption): string {
  switch (o.kind) {
    case 'int':
      return o.max === undefined || o.max === Number.MAX_SAFE_INTEGER
        ? `integer ≥ ${o.min ?? 0}`
        : `integer ${o.min ?? 0}–${o.max}`;
    case 'enum':
      return o.values!.join(' \\| ');
    case 'list':
      return 'list (repeatable; env: comma-separated)';
    default:
      return o.kind;
  }
}

/** The Markdown table of every option for docs/CONFIG.md (checked by test/cli/serve-options.test.ts). */
export function optionsTable(): string {
  const rows = [
    '| Flag | Environment | Config file key | Type | Default | Meaning |',
    '| ---- | ----------- | --------------- | ---- | ------- | ------- |',
  ];
  for (const o of SERVE_OPTIONS) {
    const flag = `\`--${o.flag}\`${o.short !== undefined ? `, \`-${o.short}\`` : ''}`;
    const env = o.env === false ? '—' : `\`${envName(o.flag)}\``;
    const key = o.key !== undefined ? `\`${o.key}\`` : '—';
    const def = o.default !== undefined ? `\`${o.default}\`` : '—';
    rows.push(
      `| ${flag} | ${env} | ${key} | ${typeOf(o)} | ${def} | ${o.help.replace(/\n/g, ' ').replace(/\|/g, '\\|')} |`,
    );
  }
  return `${rows.join('\n')}\n`;
}
