/**
 * Scenario "cross-node": the fan-out of one room served by one wshub node,
 * and by two wshub nodes joined through Redis and through NATS — half the
 * subscribers on each node, the publisher on the first — at fixed open-loop
 * rates. Every server process (the nodes and the broker) runs on the server
 * CPU, the generator on the other, so the comparison shows what crossing a
 * broker costs on the same hardware: deliveries/s, loss and latency.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { runFanout } from '../loadgen/index.ts';
import { startPeer, tasksetAvailable, type PeerProcess } from '../peer-process.ts';
import type { CrossNodeRow } from '../results.ts';
import { summarize } from '../summary.ts';
import { repeat, sleep, targetOf, type ScenarioContext } from './context.ts';

type Mode = 'single node' | 'redis' | 'nats';

/** A broker process started for a scenario. */
export interface Broker {
  url: string;
  /** The broker's own pid (taskset execs it), for /proc CPU readings. */
  pid: number;
  stop(): Promise<void>;
}

let roomCounter = 0;

/** A free TCP port on loopback. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

/** Resolves once something accepts TCP connections on `port`. */
async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port}`);
    await sleep(50);
  }
}

/** Starts redis-server or nats-server on a free port, pinned like the servers; always `stop()` it. */
export async function startBroker(kind: 'redis' | 'nats', cpuList: string): Promise<Broker> {
  const port = await freePort();
  const [command, args] =
    kind === 'redis'
      ? ['redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']]
      : ['nats-server', ['-a', '127.0.0.1', '-p', String(port)]];
  const child: ChildProcess = tasksetAvailable()
    ? spawn('taskset', ['-c', cpuList, command, ...args], { stdio: 'ignore' })
    : spawn(command, args, { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('error', () => {});
  try {
    await waitForPort(port);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    url: `${kind}://127.0.0.1:${port}`,
    pid: child.pid ?? NaN,
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs the cross-node scenario (wshub only: the peers have no scale-out). */
export async function runCrossNodeScenario(ctx: ScenarioContext): Promise<CrossNodeRow[]> {
  const subscribers = ctx.quick ? 500 : 1_000;
  const payloadBytes = 64;
  const rates = ctx.quick ? [200] : [100, 1_000];
  const timing = ctx.quick ? { warmupMs: 500, durationMs: 1_000 } : { warmupMs: 1_000, durationMs: 3_000 };
  const rows: CrossNodeRow[] = [];
  for (const mode of ['single node', 'redis', 'nats'] as const satisfies readonly Mode[]) {
    ctx.log(`cross-node / wshub, ${mode}: ${subscribers} subscribers, ${payloadBytes} B`);
    let broker: Broker | undefined;
    const peers: PeerProcess[] = [];
    try {
      if (mode !== 'single node') broker = await startBroker(mode, ctx.serverCpuList);
      const args = broker ? ['--broker', broker.url] : [];
      for (let i = 0; i < (broker ? 2 : 1); i++) {
        peers.push(await startPeer({ name: 'wshub', args, cpuList: ctx.serverCpuList }));
      }
      for (const ratePerPublisher of rates) {
        const runs = await repeat(ctx.runs, async () => {
          const room = `xn-${++roomCounter}`;
          const first = peers[0]!;
          const second = peers[1];
          const result = await runFanout({
            target: targetOf(first),
            rooms: second
              ? [
                  { name: room, subscribers: subscribers / 2, publishers: 1 },
                  { name: room, subscribers: subscribers / 2, publishers: 0, target: targetOf(second) },
                ]
              : [{ name: room, subscribers, publishers: 1 }],
            ratePerPublisher,
            payloadBytes,
            ...timing,
            ...(ctx.generatorCpuList ? { cpuList: ctx.generatorCpuList } : {}),
          });
          ctx.log(
            `    rate ${ratePerPublisher}/s → ${Math.round(result.deliveriesPerSec)} deliveries/s, ` +
              `p50 ${result.latencyMs.p50.toFixed(1)} ms, p99 ${result.latencyMs.p99.toFixed(1)} ms, lost ${result.lost}`,
          );
          return result;
        });
        rows.push({
          mode,
          subscribers,
          payloadBytes,
          ratePerPublisher,
          deliveriesPerSec: summarize(runs.map((r) => r.deliveriesPerSec)),
          lost: summarize(runs.map((r) => r.lost)),
          p50Ms: summarize(runs.map((r) => r.latencyMs.p50)),
          p99Ms: summarize(runs.map((r) => r.latencyMs.p99)),
          maxMs: summarize(runs.map((r) => r.latencyMs.max)),
          generatorLimited: runs.some((r) => r.generatorCpu.limited),
        });
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      ctx.errors.push({ scenario: 'cross-node', target: `wshub (${mode})`, message });
      ctx.log(`  ! cross-node / ${mode}: ${message}`);
    } finally {
      for (const peer of peers) await peer.stop();
      await broker?.stop();
    }
  }
  return rows;
}
