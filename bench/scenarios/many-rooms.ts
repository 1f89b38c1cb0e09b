/**
 * Scenario "many rooms": rooms of 10 members (9 subscribers + 1 publisher),
 * every room with its own publisher at a fixed open-loop rate, 64 B
 * payloads → deliveries/s, loss, latency and the server's CPU in the
 * measurement window. 500 rooms (100 in quick mode).
 */
import { runFanout } from '../loadgen/index.ts';
import type { ManyRoomsRow } from '../results.ts';
import { summarize } from '../summary.ts';
import { plain, repeat, takesPart, targetOf, withPeer, type ScenarioContext } from './context.ts';
import { probeWindow } from './window-probe.ts';

const MEMBERS_PER_ROOM = 10;
const PAYLOAD_BYTES = 64;

let runCounter = 0;

/** Runs the many-rooms scenario for every selected target. */
export async function runManyRoomsScenario(ctx: ScenarioContext): Promise<ManyRoomsRow[]> {
  const roomCount = ctx.quick ? 100 : 500;
  const ratePerPublisher = ctx.quick ? 50 : 20;
  const timing = ctx.quick ? { warmupMs: 300, durationMs: 1000 } : { warmupMs: 1000, durationMs: 3000 };
  const rows: ManyRoomsRow[] = [];
  for (const name of ctx.targets) {
    if (!takesPart(name, 'many-rooms')) continue;
    ctx.log(
      `many rooms / ${name}: ${roomCount} rooms × ${MEMBERS_PER_ROOM}, ${ratePerPublisher} msg/s per room`,
    );
    const row = await withPeer(ctx, 'many-rooms', plain(name), async (peer) => {
      const runs = await repeat(ctx.runs, async () => {
        const tag = ++runCounter;
        const rooms = Array.from({ length: roomCount }, (_, i) => ({
          name: `mr-${tag}-${i}`,
          subscribers: MEMBERS_PER_ROOM - 1,
          publishers: 1,
        }));
        const { result, window } = await probeWindow(
          peer,
          roomCount * MEMBERS_PER_ROOM,
          timing.warmupMs,
          timing.durationMs,
          () =>
            runFanout({
              target: targetOf(peer),
              rooms,
              ratePerPublisher,
              payloadBytes: PAYLOAD_BYTES,
              ...timing,
              ...(ctx.generatorCpuList ? { cpuList: ctx.generatorCpuList } : {}),
            }),
        );
        ctx.log(
          `    ${Math.round(result.deliveriesPerSec)} deliveries/s, p99 ${result.latencyMs.p99.toFixed(1)} ms, lost ${result.lost}, server CPU ${window.cpuSec.toFixed(2)} s`,
        );
        return { result, cpuSec: window.cpuSec };
      });
      const out: ManyRoomsRow = {
        target: name,
        rooms: roomCount,
        membersPerRoom: MEMBERS_PER_ROOM,
        ratePerPublisher,
        payloadBytes: PAYLOAD_BYTES,
        deliveriesPerSec: summarize(runs.map((r) => r.result.deliveriesPerSec)),
        lost: summarize(runs.map((r) => r.result.lost)),
        p50Ms: summarize(runs.map((r) => r.result.latencyMs.p50)),
        p99Ms: summarize(runs.map((r) => r.result.latencyMs.p99)),
        serverCpuSec: summarize(runs.map((r) => r.cpuSec)),
        deliveriesPerCpuSec: summarize(runs.map((r) => r.result.delivered / r.cpuSec)),
        generatorLimited: runs.some((r) => r.result.generatorCpu.limited),
      };
      return out;
    });
    if (row) rows.push(row);
  }
  return rows;
}
