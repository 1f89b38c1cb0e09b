// Spawns the real `wshub` command (from source, through tsx) and waits for its
// "listening on http://HOST:PORT" line.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';

const ENTRY = fileURLToPath(new URL('../../src/cli/run.ts', import.meta.url));

export interface RunningCli {
  child: ChildProcess;
  /** e.g. http://127.0.0.1:41234 */
  url: string;
  /** e.g. ws://127.0.0.1:41234 */
  wsUrl: string;
  host: string;
  port: number;
  /** Everything the process wrote on stderr so far. */
  stderr(): string;
  /** Everything the process wrote on stdout so far. */
  stdout(): string;
  /** Sends SIGTERM (unless the process already exited) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The argv prefix that runs the wshub command from source. */
export function cliCommand(): string[] {
  return ['--import', 'tsx', ENTRY];
}

/** Runs `wshub ARGS` to completion (for commands that exit by themselves). */
export async function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 20_000,
): Promise<CliResult> {
  const child = spawn(process.execPath, [...cliCommand(), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Starts `wshub ARGS` and resolves once it printed its listening line. */
export async function startCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 20_000,
): Promise<RunningCli> {
  const child = spawn(process.execPath, [...cliCommand(), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = once(child, 'exit');
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`wshub did not print its listening line in ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      const match = /^listening on (https?:\/\/\S+)$/m.exec(stdout);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`wshub exited with ${code} before listening; stderr: ${stderr}`));
    });
  });
  const parsed = new URL(url);
  return {
    child,
    url,
    wsUrl: url.replace(/^http/, 'ws'),
    host: parsed.hostname,
    port: Number(parsed.port),
    stderr: () => stderr,
    stdout: () => stdout,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
}
