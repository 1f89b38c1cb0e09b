/**
 * Scenario "idle memory": hold N idle connections (5,000, 10,000 and 19,000;
 * 1,000 in quick mode) to a fresh server per run and measure the server's
 * RSS growth per connection (/proc VmRSS after − before, / connected), its
 * JS heap growth per connection (from the peer's `stats`), and the CPU it
 * burns while the connections sit idle. The bare-net peer is the floor the
 * others are compared with.
 */
import { holdIdle } from '../loadgen/index.ts';
import type { IdleRow } from '../results.ts';
import { summarize } from '../summary.ts';
import { plain, repeat, takesPart, sleep, targetOf, withPeer, type ScenarioContext } from './context.ts';

/** Lets the server settle (GC, lazily allocated state) before reading memory. */
const SETTLE_MS = 1000;

/** Runs the idle-memory scenario for every selected target (bare-net included when selected). */
export async function runIdleScenario(ctx: ScenarioContext): Promise<IdleRow[]> {
  const levels = ctx.quick ? [1_000] : [5_000, 10_000, 19_000];
  const idleMs = ctx.quick ? 2_000 : 10_000;
  const rows: IdleRow[] = [];
  for (const connections of levels) {
    for (const name of ctx.targets) {
      if (!takesPart(name, 'idle')) continue;
      ctx.log(`idle memory / ${name}: ${connections} connections`);
      const runs = await repeat(ctx.runs, async () =>
        withPeer(ctx, 'idle', plain(name), async (peer) => {
          await sleep(300);
          const before = await peer.stats();
          const rssBefore = peer.rssBytes();
          const hold = await holdIdle({
            target: targetOf(peer),
            connections,
            ...(ctx.generatorCpuList ? { cpuList: ctx.generatorCpuList } : {}),
          });
          try {
            await sleep(SETTLE_MS);
            const cpuBefore = peer.cpuSeconds();
            await sleep(idleMs);
            const cpuAfter = peer.cpuSeconds();
            const after = await peer.stats();
            const rssAfter = peer.rssBytes();
            const n = Math.max(1, hold.connected);
            const run = {
              connected: hold.connected,
              rssPerConn: (rssAfter - rssBefore) / n,
              heapPerConn:
                before.heapUsed >= 0 && after.heapUsed >= 0 ? (after.heapUsed - before.heapUsed) / n : NaN,
              idleCpu: cpuAfter - cpuBefore,
            };
            ctx.log(
              `    connected ${hold.connected} (failures ${hold.failures}), RSS/conn ${Math.round(run.rssPerConn)} B, heap/conn ${Math.round(run.heapPerConn)} B, idle CPU ${run.idleCpu.toFixed(2)} s`,
            );
            return run;
          } finally {
            await hold.release();
          }
        }),
      );
      const ok = runs.flatMap((r) => (r ? [r] : []));
      if (ok.length === 0) continue;
      rows.push({
        target: name,
        connections,
        connected: summarize(ok.map((r) => r.connected)),
        rssPerConnBytes: summarize(ok.map((r) => r.rssPerConn)),
        heapPerConnBytes: summarize(ok.map((r) => r.heapPerConn)),
        idleCpuSec: summarize(ok.map((r) => r.idleCpu)),
        idleMs,
      });
    }
  }
  return rows;
}
