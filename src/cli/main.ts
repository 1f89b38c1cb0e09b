/**
 * The `wshub` command: dispatches to a subcommand and maps errors to exit
 * codes (2 for usage errors, 1 for anything unexpected).
 */
import { UsageError } from './args.ts';
import { echoCommand } from './echo.ts';
import { SERVE_USAGE, serveCommand } from './serve.ts';
import { TOKEN_USAGE, tokenCommand } from './token.ts';

const USAGE = `usage: wshub <command> [flags]

commands:
  serve   run the WebSocket hub (wshub serve --help for its flags; --dev for the demo)
  token   print an HS256 token signed with WS_SECRET (--sub, --name, --roles, --ttl)
  echo    echo server for testing clients (--host, --port)
  help    show this help, or a command's help: wshub help serve

Usage errors exit with code 2 and one line on stderr.
`;

const ECHO_USAGE = `usage: wshub echo [--host HOST] [--port N] [--no-deflate]

Echoes every WebSocket message on any path (default 127.0.0.1:8080; --port 0 picks a free port).
permessage-deflate is negotiated when the client offers it, unless --no-deflate.
`;

const COMMAND_USAGE: Readonly<Record<string, string>> = {
  serve: SERVE_USAGE,
  token: TOKEN_USAGE,
  echo: ECHO_USAGE,
};

/** Runs the command line `argv` (without node and script) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve':
        return await serveCommand(rest);
      case 'token':
        return await tokenCommand(rest);
      case 'echo':
        return await echoCommand(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        return help(command, rest);
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

function help(command: string | undefined, rest: string[]): number {
  const topic = command === 'help' ? rest[0] : undefined;
  if (topic !== undefined) {
    const text = COMMAND_USAGE[topic];
    if (text === undefined) throw new UsageError(`no help for "${topic}" (commands: serve, token, echo)`);
    process.stdout.write(text);
    return 0;
  }
  process.stdout.write(USAGE);
  return command === undefined ? 2 : 0;
}
