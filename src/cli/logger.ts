/**
 * The CLI's structured logger, on pino: one JSON object per line
 * (`{"level","time","event",...}`) on stderr, filtered by level. Before a
 * line is written, fields whose names suggest a secret or a message body
 * are replaced, and secrets inside text (bearer tokens, `token=` query
 * parameters, passwords in URLs such as a Redis URL's) are masked, so a
 * careless log call cannot leak them.
 */
import { pino, type Logger as PinoLogger } from 'pino';
import type { LogEntry } from '../server/server.ts';

/** Log levels, least to most severe. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Writes structured log entries at or above a minimum level. */
export interface Logger {
  readonly level: LogLevel;
  /** Writes `entry` when its level is enabled. */
  log: (entry: LogEntry) => void;
  debug: (event: string, fields?: Record<string, unknown>) => void;
  info: (event: string, fields?: Record<string, unknown>) => void;
  warn: (event: string, fields?: Record<string, unknown>) => void;
  error: (event: string, fields?: Record<string, unknown>) => void;
}

/** What replaces a redacted value. */
export const REDACTED = '[redacted]';

// Matched against field names (lower case, without separators).
const REDACTED_FIELD =
  /secret|password|passwd|token|authorization|cookie|apikey|credential|body|payload|^data$|^message$/;

/** Secrets inside free text: each pattern keeps its first group and masks the rest. */
const SECRET_IN_TEXT: ReadonlyArray<RegExp> = [
  // Authorization header values.
  /(\b(?:bearer|basic|apikey)\s+)[A-Za-z0-9._~+/=-]+/gi,
  // Tokens, keys and passwords in query strings.
  /([?&](?:token|access_token|jwt|api_key|apikey|key|password|secret)=)[^&#\s"]*/gi,
  // user:password@ in URLs (redis://:pass@host, nats://user:pass@host, …).
  /(\b[a-z][a-z0-9+.-]*:\/\/[^/\s:@"]*:)[^@\s/"]*(?=@)/gi,
  // Anything shaped like a JWT.
  /()\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g,
];

/** Masks the secrets `SECRET_IN_TEXT` finds in `text`. */
export function scrubText(text: string): string {
  let out = text;
  for (const pattern of SECRET_IN_TEXT) out = out.replace(pattern, `$1${REDACTED}`);
  return out;
}

/** Returns whether `value` names a log level. */
export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

/** A field as it may be logged: redacted by name, scrubbed as text, nested objects likewise (bounded depth). */
function clean(key: string, value: unknown, depth: number): unknown {
  // Flags and counts under such names are harmless; strings, bytes and objects are not.
  const harmless = typeof value === 'boolean' || typeof value === 'number' || value === undefined;
  if (!harmless && REDACTED_FIELD.test(key.toLowerCase().replace(/[-_]/g, ''))) return REDACTED;
  if (typeof value === 'string') return scrubText(value);
  if (typeof value === 'bigint') return value.toString();
  if (value !== null && typeof value === 'object') {
    if (depth >= 3 || Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return REDACTED;
    if (Array.isArray(value)) return value.slice(0, 100).map((v) => clean(key, v, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = clean(k, v, depth + 1);
    return out;
  }
  return value;
}

/**
 * Creates a logger writing lines through `write` (default: stderr) for
 * entries at `level` or above; `now` supplies the timestamp (tests only).
 */
export function createLogger(
  level: LogLevel,
  write: (line: string) => void = (line) => process.stderr.write(line),
  now: () => Date = () => new Date(),
): Logger {
  const sink: PinoLogger = pino(
    {
      level,
      base: undefined,
      messageKey: 'event',
      timestamp: () => `,"time":"${now().toISOString()}"`,
      formatters: {
        level: (label) => ({ level: label }),
        log: (fields) => {
          const out: Record<string, unknown> = {};
          for (const [key, value] of Object.entries(fields)) {
            if (key === 'time' || key === 'level' || key === 'event') continue;
            out[key] = clean(key, value, 0);
          }
          return out;
        },
      },
    },
    { write: (line: string) => write(line) },
  );
  const log = (entry: LogEntry): void => {
    const { level: entryLevel, event, ...fields } = entry;
    try {
      sink[entryLevel](fields, event);
    } catch {
      // A field pino cannot encode must not take the process down.
      sink[entryLevel]({ unloggable: true }, event);
    }
  };
  const at =
    (entryLevel: LogLevel) =>
    (event: string, fields: Record<string, unknown> = {}): void =>
      log({ ...fields, level: entryLevel, event });
  return { level, log, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
