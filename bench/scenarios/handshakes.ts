/**
 * Scenario "handshakes": 64 concurrent connectors loop connect → upgrade →
 * close against each target, without auth and with an HS256 JWT in
 * `Authorization: Bearer` (peers started with --jwt-secret-file) →
 * upgrades/s, upgrades per server CPU-second, handshake latency p99.
 * The server's CPU is read from /proc around the whole run; connectors do
 * nothing else, so there is no setup phase to exclude.
 *
 * In the JWT variant every connection presents a different token: a pool
 * of TOKEN_POOL_SIZE distinct tokens (each its own `sub`) is signed before
 * any peer starts, so signing is not measured, and the generator hands them
 * out one per connection. A token comes back only after every other one
 * of its worker's share was used (counted and logged as reuses), far more
 * connections apart than any cache of verified tokens holds.
 *
 * Runs are interleaved across targets, each on a freshly started peer
 * after a warm-up that is not measured (the warm-up presents the second
 * half of the token pool, the measured run starts at the first).
 *
 * The connectors run in the Go worker for plain WebSocket targets (the
 * suite's `--generator go`, its default), in the Node worker for Socket.IO
 * and with `--generator node`; each row records which.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { runHandshakes, type HandshakeResult } from '../loadgen/index.ts';
import type { HandshakeRow } from '../results.ts';
import { summarize } from '../summary.ts';
import { takesPart, targetOf, withPeer, type ScenarioContext } from './context.ts';

const CONCURRENCY = 64;
/** Unmeasured handshakes on a fresh peer before a measured run (JIT warm-up, thread pool started). */
const WARMUP_MS = 1_000;
/** Distinct tokens of the JWT variant. */
export const TOKEN_POOL_SIZE = 20_000;

/** Signs `count` distinct bearer tokens (`sub` user-0 … user-N), valid for an hour, with `secret` (HS256). */
export async function signTokenPool(secret: Buffer, count: number): Promise<string[]> {
  const tokens: string[] = [];
  for (let i = 0; i < count; i++) {
    tokens.push(
      await new SignJWT({ sub: `user-${i}` })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(secret),
    );
  }
  return tokens;
}

/** One measured run of one target. */
interface HandshakeRun {
  result: HandshakeResult;
  cpuSec: number;
}

/**
 * Runs the handshake scenario for every selected target (bare-net and
 * tcp-handle as floors). Runs are interleaved: run 1 of every target, then
 * run 2 of every target, and so on, each on a freshly started peer after
 * WARMUP_MS of unmeasured handshakes, so that a shared machine's slow
 * minute falls on several targets instead of on all runs of one.
 */
export async function runHandshakeScenario(ctx: ScenarioContext): Promise<HandshakeRow[]> {
  const durationMs = ctx.quick ? 1_000 : 5_000;
  const warmupMs = ctx.quick ? 300 : WARMUP_MS;
  const dir = mkdtempSync(join(tmpdir(), 'wshub-bench-'));
  // wshub requires HS256 secrets of at least 32 bytes; hex of 32 random bytes is 64.
  const secret = Buffer.from(randomBytes(32).toString('hex'));
  const secretFile = join(dir, 'jwt-secret');
  writeFileSync(secretFile, secret, { mode: 0o600 });
  const signStart = performance.now();
  const tokens = await signTokenPool(secret, ctx.quick ? TOKEN_POOL_SIZE / 4 : TOKEN_POOL_SIZE);
  const bearers = tokens.map((t) => `Bearer ${t}`);
  // The warm-up presents the second half of the pool: the measured run, which starts at the first, meets them again only half a pool later.
  const warmupBearers = bearers.slice(bearers.length / 2);
  ctx.log(
    `handshakes: ${tokens.length} distinct tokens signed in ${((performance.now() - signStart) / 1000).toFixed(1)} s`,
  );
  const variants = [false, true].flatMap((jwt) =>
    ctx.targets
      .filter((name) => takesPart(name, 'handshakes'))
      .map((name) => ({
        jwt,
        variant: {
          label: jwt ? `${name} (JWT)` : name,
          name,
          args: jwt ? ['--jwt-secret-file', secretFile] : [],
        },
        runs: [] as HandshakeRun[],
      })),
  );
  const rows: HandshakeRow[] = [];
  try {
    for (let run = 0; run < ctx.runs; run++) {
      for (const { jwt, variant, runs } of variants) {
        ctx.log(`handshakes / ${variant.label} (run ${run + 1} of ${ctx.runs})`);
        const once = await withPeer(ctx, 'handshakes', variant, async (peer) => {
          const load = (ms: number, headers: string[]) =>
            runHandshakes({
              target: targetOf(peer),
              concurrency: CONCURRENCY,
              durationMs: ms,
              ...(jwt ? { headerPool: { name: 'Authorization', values: headers } } : {}),
              ...(ctx.generatorCpuList ? { cpuList: ctx.generatorCpuList } : {}),
              ...(ctx.receivePath ? { receivePath: ctx.receivePath } : {}),
            });
          await load(warmupMs, warmupBearers);
          const cpuBefore = peer.cpuSeconds();
          const result = await load(durationMs, bearers);
          const cpuSec = peer.cpuSeconds() - cpuBefore;
          ctx.log(
            `    ${Math.round(result.perSec)} upgrades/s, ${result.failures} failures, p99 ${result.latencyMs.p99.toFixed(1)} ms, server CPU ${cpuSec.toFixed(2)} s` +
              (jwt ? `, ${result.headerReuses} token reuses` : ''),
          );
          return { result, cpuSec };
        });
        if (once !== undefined) runs.push(once);
      }
    }
    for (const { jwt, variant, runs } of variants) {
      if (runs.length === 0) continue;
      rows.push({
        target: variant.name,
        jwt,
        concurrency: CONCURRENCY,
        upgradesPerSec: summarize(runs.map((r) => r.result.perSec)),
        upgradesPerCpuSec: summarize(runs.map((r) => r.result.upgrades / r.cpuSec)),
        p99Ms: summarize(runs.map((r) => r.result.latencyMs.p99)),
        failures: summarize(runs.map((r) => r.result.failures)),
        generatorLimited: runs.some((r) => r.result.generatorCpu.limited),
        receivePath: runs[0]!.result.receivePath,
        ...(jwt
          ? {
              distinctTokens: tokens.length,
              tokenReuses: Math.max(...runs.map((r) => r.result.headerReuses)),
            }
          : {}),
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
