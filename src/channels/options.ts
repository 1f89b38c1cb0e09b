/**
 * Channel options and namespaces, as Centrifugo defines them (camelCase
 * here, durations in milliseconds). A channel `ns:rest` takes the options of
 * namespace `ns`; a channel without ':' takes the top-level options. As in
 * Centrifugo, a namespace does not inherit the top-level options: whatever it
 * leaves out takes the default below.
 *
 * Everything is checked once, at construction; afterwards `resolve` is a
 * string search and a map lookup that returns shared, frozen objects.
 */
import { ConfigError } from '../errors.ts';

export interface ChannelOptions {
  /** Publications kept per channel; 0 = no history. History is on when both historySize and historyTtl are above 0. */
  historySize: number;
  /** Milliseconds a publication is kept; 0 = no history. */
  historyTtl: number;
  /** Every subscription is recoverable (needs history). */
  forceRecovery: boolean;
  /**
   * A client may turn recovery on for itself by subscribing with
   * `recoverable: true` (needs history). Centrifugo v6 has this option
   * (`allow_recovery`); like Centrifugo, a client that may read the
   * channel's history (see the allowHistoryFor* options) may also ask for
   * recovery without it.
   */
  allowRecovery: boolean;
  /** The channel keeps presence (who is subscribed); needed by the presence and presence_stats calls. */
  presence: boolean;
  /**
   * Subscribing and unsubscribing emit join/leave events. A subscriber
   * receives them when it asks (`join_leave: true`) and, as in Centrifugo,
   * may read the channel's presence (allowPresenceFor*).
   */
  joinLeave: boolean;
  /** Every subscriber receives join/leave events without asking (there are events only with joinLeave). */
  forcePushJoinLeave: boolean;
  /** A subscriber of the channel may publish to it. */
  allowPublishForSubscriber: boolean;
  /** Any connected client with a user may publish. */
  allowPublishForClient: boolean;
  /** Extends the two publish permissions above to anonymous clients (user ''). */
  allowPublishForAnonymous: boolean;
  /** A client with a user may subscribe without a subscription token. */
  allowSubscribeForClient: boolean;
  /** Extends allowSubscribeForClient to anonymous clients. */
  allowSubscribeForAnonymous: boolean;
  allowPresenceForSubscriber: boolean;
  allowPresenceForClient: boolean;
  /** Extends the two presence permissions above to anonymous clients. */
  allowPresenceForAnonymous: boolean;
  allowHistoryForSubscriber: boolean;
  allowHistoryForClient: boolean;
  /** Extends the two history permissions above to anonymous clients. */
  allowHistoryForAnonymous: boolean;
}

export interface NamespaceConfig extends Partial<ChannelOptions> {
  name: string;
}

/** What `wshub serve --config` reads under "channels" and the library takes as `channels`. */
export interface ChannelsConfig extends Partial<ChannelOptions> {
  namespaces?: NamespaceConfig[];
}

/** Everything off: no history, no presence, and no client may subscribe, publish or read without a token or the server's say-so. */
export const defaultChannelOptions: Readonly<ChannelOptions> = Object.freeze({
  historySize: 0,
  historyTtl: 0,
  forceRecovery: false,
  allowRecovery: false,
  presence: false,
  joinLeave: false,
  forcePushJoinLeave: false,
  allowPublishForSubscriber: false,
  allowPublishForClient: false,
  allowPublishForAnonymous: false,
  allowSubscribeForClient: false,
  allowSubscribeForAnonymous: false,
  allowPresenceForSubscriber: false,
  allowPresenceForClient: false,
  allowPresenceForAnonymous: false,
  allowHistoryForSubscriber: false,
  allowHistoryForClient: false,
  allowHistoryForAnonymous: false,
});

export const NAMESPACE_SEPARATOR = ':';

/** Most namespaces one config may define. */
export const MAX_NAMESPACES = 1024;
/** Largest historySize: a cap on what one channel can hold. */
export const MAX_HISTORY_SIZE = 100_000;
/** Largest historyTtl: 30 days. */
export const MAX_HISTORY_TTL = 30 * 24 * 60 * 60 * 1000;
/** What a namespace name may be. */
export const NAMESPACE_NAME = /^[a-zA-Z0-9_\-.]{1,64}$/;

const OPTION_KEYS = Object.keys(defaultChannelOptions) as (keyof ChannelOptions)[];
const NUMBER_KEYS = new Set<string>(['historySize', 'historyTtl']);
const OPTION_KEY_SET = new Set<string>(OPTION_KEYS);

/** What `resolve` answers for a known channel. */
export interface ResolvedChannel {
  /** The namespace's name; '' for the top-level options. */
  namespace: string;
  options: ChannelOptions;
}

/**
 * Validated, immutable namespaces. Throws ConfigError naming the key (e.g.
 * `channels.namespaces[2].historySize`) for unknown keys, wrong types,
 * negative or non-integer numbers, duplicate or invalid namespace names
 * (`^[a-zA-Z0-9_\-.]{1,64}$`), only one of historySize / historyTtl set,
 * forceRecovery or allowRecovery without history, more than 1024
 * namespaces, historySize above 100000 and historyTtl above 30 days.
 */
export class Namespaces {
  readonly #top: ResolvedChannel;
  readonly #byName = new Map<string, ResolvedChannel>();

  /** Takes the `channels` config (nothing: every option at its default, no namespaces). */
  constructor(config: ChannelsConfig = {}) {
    if (!isPlainObject(config)) throw new ConfigError('channels', 'must be an object');
    const top = readOptions(config, 'channels', ['namespaces']);
    this.#top = Object.freeze({ namespace: '', options: top });
    const namespaces: unknown = config.namespaces;
    if (namespaces === undefined) return;
    if (!Array.isArray(namespaces)) throw new ConfigError('channels.namespaces', 'must be an array');
    if (namespaces.length > MAX_NAMESPACES) {
      throw new ConfigError(
        'channels.namespaces',
        `at most ${MAX_NAMESPACES} namespaces, got ${namespaces.length}`,
      );
    }
    namespaces.forEach((ns: unknown, i) => {
      const at = `channels.namespaces[${i}]`;
      if (!isPlainObject(ns)) throw new ConfigError(at, 'must be an object with a name');
      const name = ns.name;
      if (typeof name !== 'string' || !NAMESPACE_NAME.test(name)) {
        throw new ConfigError(`${at}.name`, `must be 1 to 64 of a-z A-Z 0-9 _ - . (got ${describe(name)})`);
      }
      if (this.#byName.has(name)) throw new ConfigError(`${at}.name`, `duplicate namespace "${name}"`);
      this.#byName.set(name, Object.freeze({ namespace: name, options: readOptions(ns, at, ['name']) }));
    });
  }

  /**
   * Options for `channel`: `ns:rest` takes namespace `ns` (only the first ':'
   * separates), a channel without ':' the top-level options. Null when the
   * namespace is unknown (the node answers 102 unknown channel). The result
   * is shared and frozen.
   */
  resolve(channel: string): ResolvedChannel | null {
    const at = channel.indexOf(NAMESPACE_SEPARATOR);
    if (at < 0) return this.#top;
    return this.#byName.get(channel.slice(0, at)) ?? null;
  }

  /** Number of namespaces defined. */
  get size(): number {
    return this.#byName.size;
  }

  /** The config as given, with every option filled in (defaults included), for docs and logging. */
  toJSON(): ChannelsConfig {
    const out: ChannelsConfig = { ...this.#top.options };
    if (this.#byName.size > 0) {
      out.namespaces = [...this.#byName.values()].map((ns) => ({ name: ns.namespace, ...ns.options }));
    }
    return out;
  }
}

// ---- what the options allow (Centrifugo's rules) ------------------------------------------

/** Who asks: whether the client is anonymous (user '') and whether it is subscribed to the channel. */
export interface Asker {
  anonymous: boolean;
  subscribed: boolean;
}

/** Whether the channel keeps history (both historySize and historyTtl above 0); without it history calls answer 108 not available. */
export function historyEnabled(options: ChannelOptions): boolean {
  return options.historySize > 0 && options.historyTtl > 0;
}

/** Whether a client may publish: allowPublishForClient, or allowPublishForSubscriber when subscribed; an anonymous client also needs allowPublishForAnonymous. */
export function mayPublish(options: ChannelOptions, asker: Asker): boolean {
  return mayBy(
    options.allowPublishForClient,
    options.allowPublishForSubscriber,
    options.allowPublishForAnonymous,
    asker,
  );
}

/** Whether a client may call history (the channel must also have history). */
export function mayReadHistory(options: ChannelOptions, asker: Asker): boolean {
  return mayBy(
    options.allowHistoryForClient,
    options.allowHistoryForSubscriber,
    options.allowHistoryForAnonymous,
    asker,
  );
}

/** Whether a client may call presence and presence_stats (the channel must also have presence). */
export function mayReadPresence(options: ChannelOptions, asker: Asker): boolean {
  return mayBy(
    options.allowPresenceForClient,
    options.allowPresenceForSubscriber,
    options.allowPresenceForAnonymous,
    asker,
  );
}

/** Whether a client may subscribe without a subscription token. */
export function maySubscribeWithoutToken(options: ChannelOptions, anonymous: boolean): boolean {
  return options.allowSubscribeForClient && (!anonymous || options.allowSubscribeForAnonymous);
}

/**
 * Whether a new subscription is recoverable: always with forceRecovery;
 * when the client asked (`recoverable: true`) with allowRecovery or when it
 * may read the channel's history (as a subscriber). Never without history.
 */
export function recoveryEnabled(options: ChannelOptions, asked: boolean, anonymous: boolean): boolean {
  if (!historyEnabled(options)) return false;
  if (options.forceRecovery) return true;
  return asked && (options.allowRecovery || mayReadHistory(options, { anonymous, subscribed: true }));
}

/**
 * Whether a new subscriber receives join/leave events: with
 * forcePushJoinLeave, or when it asked (`join_leave: true`), the channel has
 * joinLeave and the client may read its presence (as a subscriber).
 */
export function pushJoinLeave(options: ChannelOptions, asked: boolean, anonymous: boolean): boolean {
  if (options.forcePushJoinLeave) return true;
  return asked && options.joinLeave && mayReadPresence(options, { anonymous, subscribed: true });
}

function mayBy(forClient: boolean, forSubscriber: boolean, forAnonymous: boolean, asker: Asker): boolean {
  if (asker.anonymous && !forAnonymous) return false;
  return forClient || (forSubscriber && asker.subscribed);
}

function readOptions(source: Record<string, unknown>, at: string, extraKeys: string[]): ChannelOptions {
  for (const key of Object.keys(source)) {
    if (OPTION_KEY_SET.has(key) || extraKeys.includes(key)) continue;
    const camel = key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    const hint = camel !== key && OPTION_KEY_SET.has(camel) ? ` (did you mean "${camel}"?)` : '';
    throw new ConfigError(`${at}.${key}`, `unknown option${hint}`);
  }
  const options: ChannelOptions = { ...defaultChannelOptions };
  for (const key of OPTION_KEYS) {
    const value = source[key];
    if (value === undefined) continue;
    if (NUMBER_KEYS.has(key)) {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
        throw new ConfigError(`${at}.${key}`, `must be a whole number of 0 or more, got ${describe(value)}`);
      }
    } else if (typeof value !== 'boolean') {
      throw new ConfigError(`${at}.${key}`, `must be true or false, got ${describe(value)}`);
    }
    (options as unknown as Record<string, unknown>)[key] = value;
  }
  if (options.historySize > MAX_HISTORY_SIZE) {
    throw new ConfigError(`${at}.historySize`, `at most ${MAX_HISTORY_SIZE}, got ${options.historySize}`);
  }
  if (options.historyTtl > MAX_HISTORY_TTL) {
    throw new ConfigError(
      `${at}.historyTtl`,
      `at most ${MAX_HISTORY_TTL} ms (30 days), got ${options.historyTtl}`,
    );
  }
  // One without the other would be history that never keeps anything (or
  // keeps it forever); Centrifugo refuses it too.
  if (options.historySize > 0 !== options.historyTtl > 0) {
    const missing = options.historySize > 0 ? 'historyTtl' : 'historySize';
    throw new ConfigError(`${at}.${missing}`, 'history needs both historySize and historyTtl above 0');
  }
  const history = options.historySize > 0;
  for (const key of ['forceRecovery', 'allowRecovery'] as const) {
    if (options[key] && !history) {
      throw new ConfigError(`${at}.${key}`, 'recovery needs history (historySize and historyTtl above 0)');
    }
  }
  return Object.freeze(options);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (value === null || Array.isArray(value)) return value === null ? 'null' : 'an array';
  return typeof value === 'number' || typeof value === 'boolean' ? String(value) : `a ${typeof value}`;
}
