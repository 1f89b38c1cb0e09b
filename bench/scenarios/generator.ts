/**
 * Scenario "generator": the load generator's self-test. The line-rate peer
 * (bench/peers/line-rate.ts, pinned like every server) writes pre-built
 * binary frames to N subscribers of the generator (pinned like in every
 * scenario) as fast as they read, and the generator counts them on the same
 * receive path that counts fan-out deliveries. Per run and cell:
 *
 * - frames counted per second inside the window, and per generator
 *   CPU-second: what one fully busy generator core counts ("capacity");
 * - frames per socket read (a read costs far more than a frame);
 * - whether the frames counted over the whole run equal the frames the peer
 *   wrote (it stops at the window's end; the generator drains what is left).
 *
 * Two write patterns bracket what servers do: one frame per write (each
 * message its own send, so a read rarely holds more than a few frames) and
 * 64 KiB writes (a server that batches a turn's messages per member).
 *
 * Both receive paths run in every invocation, whatever `--generator` says:
 * the Node worker and the Go receiver, one after the other per cell.
 */
import { runCapacity, type CapacityResult, type ReceivePath } from '../loadgen/index.ts';
import type { GeneratorRow } from '../results.ts';
import { summarize } from '../summary.ts';
import { repeat, withPeer, type ScenarioContext } from './context.ts';

/** Write patterns of the line-rate peer: bytes per write (one frame when smaller than a frame). */
export const WRITE_PATTERNS: ReadonlyArray<{ label: string; writeBytes: number }> = [
  { label: 'one frame per write', writeBytes: 18 },
  { label: '64 KiB writes', writeBytes: 64 * 1024 },
];

/** The receive paths the self-test measures, in table order. */
export const RECEIVE_PATHS: readonly ReceivePath[] = ['node', 'go'];

/** Run-start delay of the load generator between "connected" and the window's warm-up. */
const START_DELAY_MS = 100;

/** One self-test run: its counts and the frames the peer reported written. */
export interface CapacityRun {
  result: CapacityResult;
  framesSent: number;
  serverCpuSec: number;
}

/** Runs the self-test once against a fresh line-rate peer. */
export async function measureCapacity(
  ctx: ScenarioContext,
  subscribers: number,
  payloadBytes: number,
  writeBytes: number,
  timing: { warmupMs: number; durationMs: number },
  receivePath: ReceivePath = 'node',
): Promise<CapacityRun | undefined> {
  // The peer writes from the moment all subscribers are connected until about the window's end.
  const seconds = (START_DELAY_MS + timing.warmupMs + timing.durationMs) / 1000;
  const variant = {
    label: 'line-rate',
    name: 'line-rate',
    args: [
      '--subscribers',
      String(subscribers),
      '--payload',
      String(payloadBytes),
      '--seconds',
      String(seconds),
      '--write-bytes',
      String(writeBytes),
    ],
  };
  return withPeer(ctx, 'generator', variant, async (peer) => {
    const cpu0 = peer.cpuSeconds();
    const result = await runCapacity({
      target: { host: '127.0.0.1', port: peer.port, protocol: 'ws', path: '/ws' },
      subscribers,
      warmupMs: timing.warmupMs,
      durationMs: timing.durationMs,
      ...(ctx.generatorCpuList ? { cpuList: ctx.generatorCpuList } : {}),
      receivePath,
    });
    const stats = (await peer.stats()) as { framesSent?: number; writing?: boolean };
    if (typeof stats.framesSent !== 'number') throw new Error('line-rate peer did not report framesSent');
    if (stats.writing) throw new Error('line-rate peer was still writing when the generator had drained');
    return { result, framesSent: stats.framesSent, serverCpuSec: peer.cpuSeconds() - cpu0 };
  });
}

/** Runs the self-test for every pattern × payload × receive path at 1,000 subscribers (200 in quick mode). */
export async function runGeneratorScenario(ctx: ScenarioContext): Promise<GeneratorRow[]> {
  const subscribers = ctx.quick ? 200 : 1_000;
  const payloads = ctx.quick ? [64] : [64, 1024];
  const timing = ctx.quick ? { warmupMs: 300, durationMs: 1000 } : { warmupMs: 500, durationMs: 2000 };
  const rows: GeneratorRow[] = [];
  ctx.log(`generator self-test (line-rate peer, ${subscribers} subscribers)`);
  for (const pattern of WRITE_PATTERNS) {
    for (const payloadBytes of payloads) {
      for (const receivePath of RECEIVE_PATHS) {
        ctx.log(`  ${pattern.label}, payload ${payloadBytes} B, ${receivePath} receive path`);
        const runs = (
          await repeat(ctx.runs, async () => {
            const run = await measureCapacity(
              ctx,
              subscribers,
              payloadBytes,
              pattern.writeBytes,
              timing,
              receivePath,
            );
            if (run !== undefined) {
              const r = run.result;
              ctx.log(
                `    ${Math.round(r.framesPerSec)} frames/s, ${Math.round(r.framesPerCpuSec)} per generator CPU-s, ` +
                  `${r.framesPerRead.toFixed(1)} frames/read, generator ${Math.round(r.generatorCpu.busyFraction * 100)}% busy` +
                  `${r.generatorCpu.coreBusyFraction !== undefined ? ` (core ${Math.round(r.generatorCpu.coreBusyFraction * 100)}%)` : ''}, ` +
                  `counted ${r.framesTotal} of ${run.framesSent} sent`,
              );
            }
            return run;
          })
        ).filter((r): r is CapacityRun => r !== undefined);
        if (runs.length === 0) continue;
        rows.push({
          pattern: pattern.label,
          receivePath,
          subscribers,
          payloadBytes,
          framesPerSec: summarize(runs.map((r) => r.result.framesPerSec)),
          framesPerCpuSec: summarize(runs.map((r) => r.result.framesPerCpuSec)),
          framesPerRead: summarize(runs.map((r) => r.result.framesPerRead)),
          generatorBusy: summarize(runs.map((r) => r.result.generatorCpu.busyFraction)),
          generatorCoreBusy: summarize(runs.map((r) => r.result.generatorCpu.coreBusyFraction ?? NaN)),
          serverCpuSec: summarize(runs.map((r) => r.serverCpuSec)),
          exactRuns: runs.filter((r) => r.result.framesTotal === r.framesSent && r.framesSent > 0).length,
          runs: runs.length,
          connectFailures: runs.reduce((n, r) => n + r.result.connectFailures, 0),
        });
      }
    }
  }
  return rows;
}
