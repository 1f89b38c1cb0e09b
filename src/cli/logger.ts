/**
 * The CLI's structured logger: one JSON object per line
 * (`{"time","level","event",...}`), filtered by level. Fields whose names
 * suggest a secret or a message body are replaced, so a careless log call
 * cannot leak them.
 */
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

// Matched against field names (lower case, without separators).
const REDACTED_FIELD = /secret|password|token|authorization|cookie|body|payload|^data$|^message$/;

/** Returns whether `value` names a log level. */
export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
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
  const min = LOG_LEVELS.indexOf(level);
  const log = (entry: LogEntry): void => {
    if (LOG_LEVELS.indexOf(entry.level) < min) return;
    const { level: entryLevel, event, ...fields } = entry;
    const line: Record<string, unknown> = { time: now().toISOString(), level: entryLevel, event };
    for (const [key, value] of Object.entries(fields)) {
      if (key === 'time' || key === 'level' || key === 'event') continue;
      // Flags and counts under such names are harmless; strings, bytes and objects are not.
      const harmless = typeof value === 'boolean' || typeof value === 'number' || value === undefined;
      const sensitive = REDACTED_FIELD.test(key.toLowerCase().replace(/[-_]/g, ''));
      line[key] = sensitive && !harmless ? '[redacted]' : value;
    }
    write(`${safeStringify(line)}\n`);
  };
  const at =
    (entryLevel: LogLevel) =>
    (event: string, fields: Record<string, unknown> = {}): void =>
      log({ ...fields, level: entryLevel, event });
  return { level, log, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

// Log fields come from many places; a value JSON cannot encode must not take the process down.
function safeStringify(value: Record<string, unknown>): string {
  try {
    return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  } catch {
    return JSON.stringify({ time: value.time, level: value.level, event: value.event, unloggable: true });
  }
}
