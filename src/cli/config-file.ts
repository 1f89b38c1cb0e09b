/**
 * What `wshub serve` reads from disk and the environment: the JSON config
 * file (the library's camelCase option names), secrets (environment
 * variables or files named by flags, never flag values), room password
 * files and TLS material. Every problem becomes a UsageError with one line
 * of explanation.
 */
import { readFile } from 'node:fs/promises';
import { InvalidRoomPasswordError } from '../auth/errors.ts';
import { RoomPasswords } from '../auth/room-password.ts';
import { MIN_SECRET_BYTES } from '../auth/secret.ts';
import { Namespaces, type ChannelsConfig } from '../channels/options.ts';
import {
  checkApiKey,
  CODE_OPTIONS,
  CONFIG_KEYS,
  defaultConfig,
  resolveChannelBounds,
  type ChannelBounds,
  type WshubConfig,
} from '../config.ts';
import { ConfigError } from '../errors.ts';
import { defaultTextValidationOptions } from '../hub/validation.ts';
import { UsageError } from './args.ts';
import { checkFileValue } from './serve-options.ts';

/** Options that hold code and so cannot come from a JSON file. */
const FUNCTION_KEYS: ReadonlySet<string> = new Set(CODE_OPTIONS);

/** Options that are secrets: only the environment or a secret file may supply them. */
const SECRET_KEYS: Readonly<Record<string, string>> = {
  secret: 'WS_SECRET or --secret-file',
  broadcastSecret: 'WS_BROADCAST_SECRET or --broadcast-secret-file',
  apiKey: 'WS_API_KEY or --api-key-file',
  metricsKey: 'WS_METRICS_KEY or --metrics-key-file',
};

/** The server options a config file may set, plus its room passwords. */
export interface ConfigFile {
  config: Partial<WshubConfig>;
  roomPasswords: Record<string, string>;
}

/** Reads a whole file as UTF-8; UsageError naming `what` when it cannot be read. */
export async function readTextFile(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${what} ${path}: ${errorCode(error)}`);
  }
}

/** Reads a whole file as bytes; UsageError naming `what` when it cannot be read. */
export async function readBinaryFile(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new UsageError(`cannot read ${what} ${path}: ${errorCode(error)}`);
  }
}

/** Reads and parses a JSON file that must hold an object; UsageError otherwise. */
async function readJsonObject(path: string, what: string): Promise<Record<string, unknown>> {
  const text = await readTextFile(path, what);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const detail = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new UsageError(`${what} ${path} is not valid JSON: ${detail}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError(`${what} ${path} must contain a JSON object`);
  }
  return value as Record<string, unknown>;
}

/**
 * Loads `--config FILE`: a JSON object whose keys are WshubConfig option
 * names (plus `roomPasswords`). Rejects unknown keys, function-valued
 * options, secrets and values of the wrong type with a UsageError; range
 * checks are left to the server's own validation.
 */
export async function loadConfigFile(path: string): Promise<ConfigFile> {
  const raw = await readJsonObject(path, 'config file');
  const defaults = defaultConfig() as unknown as Record<string, unknown>;
  const known = new Set<string>(CONFIG_KEYS);
  const config: Partial<WshubConfig> & Record<string, unknown> = {};
  let roomPasswords: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) {
    const where = `config file ${path}: "${key}"`;
    if (key === 'roomPasswords') {
      roomPasswords = checkRoomPasswordMap(value, where);
      continue;
    }
    if (!known.has(key)) throw new UsageError(`${where} is not a wshub option`);
    if (key === 'cluster') {
      throw new UsageError(`${where} cannot be set in a config file: use --broker URL or --workers N`);
    }
    if (FUNCTION_KEYS.has(key)) {
      throw new UsageError(`${where} takes a function and cannot be set in a config file`);
    }
    const secretSource = SECRET_KEYS[key];
    if (secretSource !== undefined) {
      throw new UsageError(`${where} is a secret: supply it through ${secretSource}`);
    }
    config[key] = CHANNEL_CHECKS[key]?.(value, path) ?? checkValueType(key, value, defaults[key], where);
    // The bounds of the `wshub serve` option that sets this key, as for its flag and variable.
    const outOfBounds = checkFileValue(key, value);
    if (outOfBounds !== undefined) throw new UsageError(`config file ${path}: ${outOfBounds}`);
  }
  return { config, roomPasswords };
}

/**
 * The channel options and bounds, checked as the server will check them, so
 * that a mistake is reported with the file it is in (the ConfigError names
 * the key, e.g. `channels.namespaces[1].historyTtl`).
 */
const CHANNEL_CHECKS: Readonly<Record<string, (value: unknown, path: string) => unknown>> = {
  channels: (value, path) => {
    inFile(path, () => new Namespaces(value as ChannelsConfig));
    return value;
  },
  channelLimits: (value, path) => {
    inFile(path, () => resolveChannelBounds(value as Partial<ChannelBounds>));
    return value;
  },
};

/** Runs a check; its ConfigError becomes a UsageError that names the file. */
function inFile(path: string, check: () => unknown): void {
  try {
    check();
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(`config file ${path}: ${error.message}`);
    throw error;
  }
}

function checkValueType(key: string, value: unknown, fallback: unknown, where: string): unknown {
  if (key === 'messageValidation') return checkMessageValidation(value, where);
  if (Array.isArray(fallback)) {
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
      throw new UsageError(`${where} must be an array of strings`);
    }
    return [...(value as string[])];
  }
  if (typeof value !== typeof fallback) {
    throw new UsageError(`${where} must be a ${typeof fallback}, got ${describe(value)}`);
  }
  return value;
}

function checkMessageValidation(value: unknown, where: string): unknown {
  if (value === false) return false;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError(`${where} must be false or an object`);
  }
  const defaults = defaultTextValidationOptions() as unknown as Record<string, unknown>;
  for (const [key, v] of Object.entries(value)) {
    if (!(key in defaults)) throw new UsageError(`${where}: unknown field "${key}"`);
    if (typeof v !== typeof defaults[key]) {
      throw new UsageError(`${where}: "${key}" must be a ${typeof defaults[key]}, got ${describe(v)}`);
    }
  }
  return { ...value };
}

function checkRoomPasswordMap(value: unknown, where: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError(`${where} must be an object mapping room names to passwords`);
  }
  const out: Record<string, string> = {};
  for (const [room, password] of Object.entries(value)) {
    // The password itself never appears in a message.
    if (typeof password !== 'string' || password === '') {
      throw new UsageError(`${where}: the password of room "${room}" must be a non-empty string`);
    }
    out[room] = password;
  }
  return out;
}

/** Loads `--room-passwords FILE`: a JSON object mapping room names to passwords. */
export async function loadRoomPasswordFile(path: string): Promise<Record<string, string>> {
  const raw = await readJsonObject(path, 'room passwords file');
  return checkRoomPasswordMap(raw, `room passwords file ${path}`);
}

/**
 * Builds a RoomPasswords holding `passwords` (stored hashed). Resolves once
 * every hash is computed; UsageError when a password cannot be stored.
 */
export async function buildRoomPasswords(passwords: Record<string, string>): Promise<RoomPasswords> {
  const store = new RoomPasswords();
  for (const [room, password] of Object.entries(passwords)) {
    try {
      await store.setRoomPassword(room, password);
    } catch (error) {
      if (error instanceof InvalidRoomPasswordError) {
        throw new UsageError(`room password of "${room}" is not usable (${error.reason})`);
      }
      throw error;
    }
  }
  return store;
}

/** Where a secret comes from: an environment variable and an optional file flag. */
export interface SecretSource {
  /** e.g. WS_SECRET */
  env: string;
  /** e.g. --secret-file */
  flag: string;
  /** The file named by the flag, if given (it wins over the environment). */
  file: string | undefined;
}

/**
 * Resolves a secret: the file named by the flag (one trailing newline
 * removed) or else the environment variable (empty counts as unset).
 * Returns undefined when neither is set; UsageError when the secret is
 * shorter than 32 bytes or the file is unreadable. The secret is never
 * part of a message.
 */
export async function loadSecret(
  source: SecretSource,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Buffer | undefined> {
  let secret: Buffer;
  let origin: string;
  if (source.file !== undefined) {
    const bytes = await readBinaryFile(source.file, `${source.flag} file`);
    secret = stripTrailingNewline(bytes);
    origin = `the ${source.flag} file`;
  } else {
    const value = env[source.env];
    if (value === undefined || value === '') return undefined;
    secret = Buffer.from(value, 'utf8');
    origin = source.env;
  }
  if (secret.length < MIN_SECRET_BYTES) {
    throw new UsageError(
      `${origin} is too weak: a secret must be at least ${MIN_SECRET_BYTES} bytes, got ${secret.length}`,
    );
  }
  return secret;
}

function stripTrailingNewline(bytes: Buffer): Buffer {
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === 0x0a) end--;
  if (end > 0 && bytes[end - 1] === 0x0d) end--;
  return bytes.subarray(0, end);
}

function errorCode(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string') {
    return error.code === 'ENOENT' ? 'no such file' : error.code;
  }
  return error instanceof Error ? error.message : String(error);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    // String values are not echoed: a misplaced secret must not end up on the terminal.
    case 'string':
      return 'a string';
    case 'number':
    case 'boolean':
      return String(value);
    default:
      return `a ${typeof value}`;
  }
}

/**
 * The server API key: the `--api-key-file` file (it wins) or WS_API_KEY.
 * Takes the file flag's value, the token secret and the environment; returns
 * the key, or undefined when neither is set (the server API stays off).
 * UsageError when the key is shorter than 32 bytes or equals the token
 * secret. The key is never part of a message.
 */
export async function loadApiKey(
  file: string | undefined,
  tokenSecret: Uint8Array | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Buffer | undefined> {
  const key = await loadSecret({ env: 'WS_API_KEY', flag: '--api-key-file', file }, env);
  if (key === undefined) return undefined;
  const origin = file !== undefined ? 'the --api-key-file file' : 'WS_API_KEY';
  try {
    checkApiKey(key, tokenSecret);
  } catch (error) {
    if (error instanceof ConfigError)
      throw new UsageError(`${origin}: the server API key ${error.message.replace(/^apiKey: /, '')}`);
    throw error;
  }
  return key;
}

/**
 * The metrics key of /metrics on the main port: the `--metrics-key-file`
 * file (it wins) or WS_METRICS_KEY. Returns undefined when neither is set;
 * UsageError when the key is shorter than 32 bytes or equals the token
 * secret. The key is never part of a message.
 */
export async function loadMetricsKey(
  file: string | undefined,
  tokenSecret: Uint8Array | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Buffer | undefined> {
  const key = await loadSecret({ env: 'WS_METRICS_KEY', flag: '--metrics-key-file', file }, env);
  if (key === undefined) return undefined;
  const origin = file !== undefined ? 'the --metrics-key-file file' : 'WS_METRICS_KEY';
  try {
    checkApiKey(key, tokenSecret, 'metricsKey');
  } catch (error) {
    if (error instanceof ConfigError)
      throw new UsageError(`${origin}: the metrics key ${error.message.replace(/^metricsKey: /, '')}`);
    throw error;
  }
  return key;
}
