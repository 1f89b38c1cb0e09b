/**
 * Builds the Go receive path of the load generator (bench/loadgen/go/receiver,
 * standard library only) into the benchmark's bin folder outside the
 * repository: $WSHUB_BENCH_BIN_DIR or ~/.cache/wshub-bench/bin, as
 * `wshub-receiver-<hash>` where the hash covers the program's source, so a
 * changed source gets a fresh build (and the builds of older sources are
 * removed) and an unchanged one is built once.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { centrifugoBinDir } from '../peers/centrifugo.ts';
import { runGo } from '../go-command.ts';

/** The Go program's folder in the repository. */
export const GO_RECEIVER_SOURCE = fileURLToPath(new URL('./go/receiver/', import.meta.url));

const BUILD_TIMEOUT_MS = 5 * 60_000;

/** A short hash of the receiver's go.mod and .go files, tests aside (names and contents). */
export function receiverSourceHash(dir = GO_RECEIVER_SOURCE): string {
  const hash = createHash('sha256');
  const files = readdirSync(dir)
    .filter((f) => (f.endsWith('.go') && !f.endsWith('_test.go')) || f === 'go.mod')
    .sort();
  for (const file of files) {
    hash.update(`${file}\0`);
    hash.update(readFileSync(join(dir, file)));
    hash.update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

/** The environment of every go command on the receiver: standard library only, so no module download and no toolchain switch. */
export function goEnv(): NodeJS.ProcessEnv {
  return { ...process.env, CGO_ENABLED: '0', GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod', GOPROXY: 'off' };
}

let building: Promise<string> | undefined;

/**
 * Returns the path of the receiver binary for the current source, building
 * it with `go build` first when it is not there. Throws a clear error when
 * Go is not installed or the build fails; `log` gets progress lines.
 */
export function ensureGoReceiver(log: (line: string) => void = () => {}): Promise<string> {
  building ??= build(log).catch((error: unknown) => {
    building = undefined;
    throw error;
  });
  return building;
}

async function build(log: (line: string) => void): Promise<string> {
  const binDir = centrifugoBinDir();
  const binary = join(binDir, `wshub-receiver-${receiverSourceHash()}`);
  if (existsSync(binary)) return binary;
  mkdirSync(binDir, { recursive: true });
  // Built under a temporary name and renamed, so concurrent builds never run a half-written file.
  const partial = `${binary}.${process.pid}.partial`;
  log(`  go receiver: building ${binary}`);
  const started = Date.now();
  await runGo(['build', '-trimpath', '-o', partial, '.'], {
    label: 'go receiver',
    whenMissing: 'install Go ≥ 1.22 or use --generator node',
    cwd: GO_RECEIVER_SOURCE,
    env: goEnv(),
    timeoutMs: BUILD_TIMEOUT_MS,
  });
  try {
    renameSync(partial, binary);
  } catch (error) {
    rmSync(partial, { force: true });
    throw error;
  }
  // Builds of earlier sources are of no further use.
  for (const file of readdirSync(binDir))
    if (/^wshub-receiver-[0-9a-f]{16}$/.test(file) && join(binDir, file) !== binary)
      rmSync(join(binDir, file), { force: true });
  log(`  go receiver: built in ${Math.round((Date.now() - started) / 1000)} s`);
  return binary;
}
