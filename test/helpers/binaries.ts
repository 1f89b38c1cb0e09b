// Gates tests on programs installed outside node_modules (chromium, python3 with
// a module, redis-server, nats-server). Locally a missing program skips the
// test with a reason; in CI (CI=true) it is an error, so a broken CI image can
// never turn a suite green by skipping it.
import { accessSync, constants, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { delimiter, isAbsolute, join } from 'node:path';

/** The part of node:test's TestOptions these helpers produce; spread it into your own options. */
export interface SkipOption {
  skip: string | false;
}

/** True when the environment variable CI is exactly `true` (as set by GitHub Actions and most CI systems). */
export function isCi(env: NodeJS.ProcessEnv = process.env): boolean {
  return env['CI'] === 'true';
}

/**
 * Turns "dependency missing" into a node:test option: returns `{ skip: reason }`
 * locally, and throws an Error naming the package to install when CI=true.
 */
export function missingDependency(reason: string, pkg: string): SkipOption {
  const message = `${reason} (install the '${pkg}' package)`;
  if (isCi()) throw new Error(`required in CI: ${message}`);
  return { skip: message };
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds an executable: an absolute or relative path is checked as is, a bare
 * name is searched on PATH. Returns the full path, or undefined when absent.
 */
export function findBinary(nameOrPath: string): string | undefined {
  if (isAbsolute(nameOrPath) || nameOrPath.includes('/')) {
    return isExecutableFile(nameOrPath) ? nameOrPath : undefined;
  }
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, nameOrPath);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Requires an executable (absolute path or bare name on PATH), `pkg` being the
 * package that provides it. Returns `{ skip: false }` when present, else see
 * {@link missingDependency}.
 *
 * @example test('renders', requireBinary('/usr/bin/chromium', 'chromium'), async () => { ... })
 */
export function requireBinary(nameOrPath: string, pkg: string): SkipOption {
  if (findBinary(nameOrPath) !== undefined) return { skip: false };
  return missingDependency(`${nameOrPath} not found`, pkg);
}

/**
 * Requires a Python interpreter that can import `module` (checked by running
 * `python -c "import module"` once). `pkg` names the package that provides the
 * module, e.g. 'python3-websockets'.
 */
export function requirePythonModule(python: string, module: string, pkg: string): SkipOption {
  const interpreter = requireBinary(python, 'python3');
  if (interpreter.skip !== false) return interpreter;
  const probe = spawnSync(python, ['-c', `import ${module}`], { stdio: 'ignore', timeout: 10_000 });
  if (probe.status === 0) return { skip: false };
  return missingDependency(`${python} cannot import the '${module}' module`, pkg);
}

/** Combines several requirements: the first one that skips wins, `{ skip: false }` if none does. */
export function requireAll(...requirements: SkipOption[]): SkipOption {
  return requirements.find((r) => r.skip !== false) ?? { skip: false };
}
