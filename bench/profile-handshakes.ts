/**
 * Profiles one peer's upgrade path under the handshake scenario's load:
 * the peer runs pinned to CPU 0 under `node --cpu-prof`, the generator on
 * CPU 1 loops connect → upgrade → close with 64 connectors (with `--jwt`,
 * a different HS256 token per connection), and the heaviest functions by
 * self time are printed. The connectors run in the Go worker by default
 * (`--generator node` for the Node worker; Socket.IO always uses it). The
 * `.cpuprofile` files (main thread and any other) stay in the given
 * directory for Chrome DevTools.
 *
 * The profiler samples wall time: on a machine busy with other work a
 * sample may stand for time the process spent waiting for the CPU, so the
 * shares are only trustworthy on a quiet machine. Upgrades per CPU-second
 * come from /proc and stay meaningful.
 *
 * Run: node --import tsx bench/profile-handshakes.ts [--target wshub] [--jwt]
 *        [--generator go|node] [--seconds 5] [--runs 2] [--dir /tmp/wshub-profile] [--top 30]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runHandshakes } from './loadgen/index.ts';
import { procCpuSeconds } from './peer-process.ts';
import { TOKEN_POOL_SIZE, signTokenPool } from './scenarios/handshakes.ts';

const { values } = parseArgs({
  options: {
    target: { type: 'string', default: 'wshub' },
    jwt: { type: 'boolean', default: false },
    generator: { type: 'string', default: 'go' },
    seconds: { type: 'string', default: '5' },
    runs: { type: 'string', default: '2' },
    dir: { type: 'string', default: join(tmpdir(), 'wshub-profile') },
    top: { type: 'string', default: '30' },
  },
  strict: true,
});
const target = values.target;
if (!/^[a-z-]+$/.test(target)) throw new Error(`bad --target ${target}`);
if (values.generator !== 'go' && values.generator !== 'node')
  throw new Error(`bad --generator ${values.generator}`);
const receivePath = values.generator;
const seconds = Number(values.seconds);
const runs = Number(values.runs);
const top = Number(values.top);
const profileDir = join(values.dir, `${target}-${values.jwt ? 'jwt' : 'none'}`);
rmSync(profileDir, { recursive: true, force: true });
mkdirSync(profileDir, { recursive: true });

const secretDir = mkdtempSync(join(tmpdir(), 'wshub-profile-secret-'));
const secret = Buffer.from(randomBytes(32).toString('hex'));
const secretFile = join(secretDir, 'secret');
writeFileSync(secretFile, secret, { mode: 0o600 });
const bearers = values.jwt ? (await signTokenPool(secret, TOKEN_POOL_SIZE)).map((t) => `Bearer ${t}`) : [];

const peerFile = join(dirname(fileURLToPath(import.meta.url)), 'peers', `${target}.ts`);
const args = ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, '--import', 'tsx', peerFile, '--port', '0'];
if (values.jwt) args.push('--jwt-secret-file', secretFile);
const child = spawn('taskset', ['-c', '0', process.execPath, ...args], {
  stdio: ['pipe', 'pipe', 'inherit'],
});
const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
const port = await new Promise<number>((resolve, reject) => {
  createInterface({ input: child.stdout }).on('line', (line) => {
    const m = /^listening on http:\/\/[^:]+:(\d+)/.exec(line);
    if (m) resolve(Number(m[1]));
  });
  void exited.then(() => reject(new Error(`${target} exited before listening`)));
});

try {
  for (let run = 0; run < runs; run++) {
    const before = procCpuSeconds(child.pid!);
    const r = await runHandshakes({
      target: { host: '127.0.0.1', port, protocol: target === 'socketio' ? 'socketio' : 'ws', path: '/ws' },
      concurrency: 64,
      durationMs: seconds * 1000,
      cpuList: '1',
      receivePath,
      ...(values.jwt ? { headerPool: { name: 'Authorization', values: bearers } } : {}),
    });
    const cpu = procCpuSeconds(child.pid!) - before;
    process.stdout.write(
      `run ${run + 1}: ${Math.round(r.perSec)} upgrades/s, ${r.failures} failures, server CPU ${cpu.toFixed(2)} s, ` +
        `${Math.round(r.upgrades / cpu)} upgrades per CPU-s, ${r.receivePath} generator ${(100 * r.generatorCpu.busyFraction).toFixed(0)}% busy\n`,
    );
  }
} finally {
  // SIGTERM ends the peer with process.exit(0), which writes the profile.
  child.kill('SIGTERM');
  await exited;
  rmSync(secretDir, { recursive: true, force: true });
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

// The main thread's profile holds the most samples.
const files = readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'));
const profiles = files.map((f) => JSON.parse(readFileSync(join(profileDir, f), 'utf8')) as CpuProfile);
const main = profiles.sort((a, b) => b.samples.length - a.samples.length)[0];
if (main === undefined) throw new Error(`no profile written in ${profileDir}`);
const byId = new Map(main.nodes.map((n) => [n.id, n]));
const self = new Map<string, number>();
let busy = 0;
main.samples.forEach((id, i) => {
  const frame = byId.get(id)!.callFrame;
  if (frame.functionName === '(idle)') return;
  const where = frame.url.replace(/^.*\/(?=(src|dist|bench|node_modules)\/)/, '');
  const key = `${frame.functionName || '(anonymous)'} ${where}${where ? `:${frame.lineNumber + 1}` : ''}`;
  const dt = main.timeDeltas[i] ?? 0;
  self.set(key, (self.get(key) ?? 0) + dt);
  busy += dt;
});
process.stdout.write(
  `\nself time, % of the main thread's busy time (${(busy / 1e6).toFixed(2)} s, start-up included):\n`,
);
for (const [key, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top))
  process.stdout.write(`${((100 * t) / busy).toFixed(1).padStart(5)}  ${key}\n`);
process.stdout.write(`\nprofiles: ${profileDir}\n`);
