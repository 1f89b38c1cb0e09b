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
 * The connectors run in the Go worker for plain WebSocket targets (the
 * suite's `--generator go`, its default), in the Node worker for Socket.IO
 * and with `--generator node`; each row records which.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { runHandshakes } from '../loadgen/index.ts';
import type { HandshakeRow } from '../results.ts';
import { summarize } from '../summary.ts';
import { repeat, takesPart, targetOf, withPeer, type ScenarioContext } from './context.ts';

const CONCURRENCY = 64;
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

/** Runs the handshake scenario for every selected target (bare-net and tcp-handle as floors). */
export async function runHandshakeScenario(ctx: ScenarioContext): Promise<HandshakeRow[]> {
  const durationMs = ctx.quick ? 1_000 : 5_000;
  const dir = mkdtempSync(join(tmpdir(), 'wshub-bench-'));
  // wshub requires HS256 secrets of at least 32 bytes; hex of 32 random bytes is 64.
  const secret = Buffer.from(randomBytes(32).toString('hex'));
  const secretFile = join(dir, 'jwt-secret');
  writeFileSync(secretFile, secret, { mode: 0o600 });
  const signStart = performance.now();
  const tokens = await signTokenPool(secret, ctx.quick ? TOKEN_POOL_SIZE / 4 : TOKEN_POOL_SIZE);
  const bearers = tokens.map((t) => `Bearer ${t}`);
  ctx.log(
    `handshakes: ${tokens.length} distinct tokens signed in ${((performance.now() - signStart) / 1000).toFixed(1)} s`,
  );
  const rows: HandshakeRow[] = [];
  try {
    for (const jwt of [false, true]) {
      for (const name of ctx.targets) {
        if (!takesPart(name, 'handshakes')) continue;
        const label = jwt ? `${name} (JWT)` : name;
        ctx.log(`handshakes / ${label}`);
        const variant = { label, name, args: jwt ? ['--jwt-secret-file', secretFile] : [] };
        const row = await withPeer(ctx, 'handshakes', variant, async (peer) => {
          const runs = await repeat(ctx.runs, async () => {
            const cpuBefore = peer.cpuSeconds();
            const result = await runHandshakes({
              target: targetOf(peer),
              concurrency: CONCURRENCY,
              durationMs,
              ...(jwt ? { headerPool: { name: 'Authorization', values: bearers } } : {}),
              ...(ctx.generatorCpuList ? { cpuList: ctx.generatorCpuList } : {}),
              ...(ctx.receivePath ? { receivePath: ctx.receivePath } : {}),
            });
            const cpuSec = peer.cpuSeconds() - cpuBefore;
            ctx.log(
              `    ${Math.round(result.perSec)} upgrades/s, ${result.failures} failures, p99 ${result.latencyMs.p99.toFixed(1)} ms, server CPU ${cpuSec.toFixed(2)} s` +
                (jwt ? `, ${result.headerReuses} token reuses` : ''),
            );
            return { result, cpuSec };
          });
          const out: HandshakeRow = {
            target: name,
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
          };
          return out;
        });
        if (row) rows.push(row);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
