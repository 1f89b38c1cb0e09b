/**
 * Command-line parsing shared by the subcommands: node:util's strict parser,
 * with every mistake turned into a UsageError (one line on stderr, exit 2).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A bad command line or bad input to the command; the CLI exits with code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

type Options = NonNullable<ParseArgsConfig['options']>;
type FlagConfig<T extends Options> = { args: string[]; options: T; strict: true; allowPositionals: false };
/** The parsed flag values for an options table. */
export type Flags<T extends Options> = ReturnType<typeof parseArgs<FlagConfig<T>>>['values'];

/** Parses `argv` against `options`, throwing UsageError on unknown or malformed flags. */
export function parseFlags<T extends Options>(argv: string[], options: T): Flags<T> {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    // node:util sometimes explains over several lines; the CLI promises one line.
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(message.replace(/\s*\n\s*/g, ' ').trim());
  }
}

/** Parses an integer flag within [min, max]. */
export function intFlag(
  name: string,
  value: string | undefined,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be a whole number, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${value}`);
  return n;
}
