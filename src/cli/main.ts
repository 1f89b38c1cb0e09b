/**
 * The `wshub` command: dispatches to a subcommand and maps errors to exit
 * codes (2 for usage errors, 1 for anything unexpected).
 */
import { UsageError } from './args.ts';
import { echoCommand } from './echo.ts';

const USAGE = `usage: wshub <command> [flags]

commands:
  echo    echo server for testing clients (--host, --port)
`;

/** Runs the command line `argv` (without node and script) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'echo':
        return await echoCommand(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}" (try: wshub help)`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`wshub: ${error.message}\n`);
      return 2;
    }
    process.stderr.write(`wshub: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}
