/**
 * Running Centrifugo's Python server SDK (`cent` 5.2.0) from the interop
 * tests: the interpreter (WSHUB_TEST_PYTHON, set by .ci/run, or
 * .venv-test/bin/python), the skip rule (skipped locally without it,
 * failing under CI=true), and client.py's JSON output.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import {
  findBinary,
  missingDependency,
  requirePythonModule,
  type SkipOption,
} from '../../helpers/binaries.ts';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const PYTHON = process.env['WSHUB_TEST_PYTHON'] || `${REPO}.venv-test/bin/python`;
const SCRIPT = fileURLToPath(new URL('./client.py', import.meta.url));
const PACKAGE = 'cent==5.2.0';

/** Per-test time limit of the cent tests (a Python start costs about a second). */
export const CENT_TIMEOUT_MS = 30_000;

/** The venv's interpreter with cent: skips locally when absent, fails under CI=true. */
export function requireCent(): SkipOption {
  if (findBinary(PYTHON) === undefined)
    return missingDependency(
      `no Python interpreter at ${PYTHON}: .ci/run creates .venv-test, or set WSHUB_TEST_PYTHON`,
      PACKAGE,
    );
  return requirePythonModule(PYTHON, 'cent', PACKAGE);
}

/** One call's outcome as client.py reports it. */
export interface CentStep {
  name: string;
  result?: Record<string, unknown>;
  error?: { code: number; message: string };
  raised?: string;
  status?: number;
}

export interface CentOutput {
  cent_version: string;
  steps: CentStep[];
}

/**
 * Runs client.py with `args` (pass the key as `--key=…`: a key starting
 * with '-' would otherwise read as an option) and resolves with the JSON it
 * printed; rejects when the script fails or outlives the test's limit.
 */
export async function runCent(args: string[]): Promise<CentOutput> {
  const child = spawn(PYTHON, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const timer = setTimeout(() => child.kill('SIGKILL'), CENT_TIMEOUT_MS - 5_000);
  const [code, signal] = await exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`client.py exited with ${code ?? signal}: ${stdout} ${stderr}`.trim());
  return JSON.parse(stdout) as CentOutput;
}
