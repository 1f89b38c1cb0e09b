/**
 * Runs the `go` tool for the benchmark's own builds (the Go receive path of
 * the load generator, the Centrifugo peer), bounded in time, with the tail
 * of its output in the error when it fails.
 */
import { spawn } from 'node:child_process';

export interface GoCommandOptions {
  /** Prefix of every error message, e.g. `go receiver`. */
  label: string;
  /** What the error says to do when `go` cannot be run at all. */
  whenMissing: string;
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** The command is killed after this long (ms). */
  timeoutMs: number;
}

/** Resolves when `go <args>` exits with 0; rejects with the reason (and its last 4,000 characters of output) otherwise. */
export function runGo(args: string[], options: GoCommandOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const child = spawn('go', args, {
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-4000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`${options.label}: cannot run go (${error.message}); ${options.whenMissing}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else
        reject(
          new Error(
            `${options.label}: go ${args.join(' ')} failed (code ${code}, signal ${signal}) ${output.trim()}`,
          ),
        );
    });
  });
}
