/**
 * Scenario "handshakes": 64 concurrent connectors loop connect → upgrade →
 * close against each target, without auth and with an HS256 JWT in
 * `Authorization: Bearer` (peers started with --jwt-secret-file) →
 * upgrades/s, upgrades per server CPU-second, handshake latency p99.
 * The server's CPU is read from /proc around the whole run; connectors do
 * nothing else, so there is no setup phase to exclude.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { runHandshakes } from '../loadgen/index.ts';
import type { HandshakeRow } from '../results.ts';
import { summarize } from '../summary.ts';
import { repeat, targetOf, withPeer, type ScenarioContext } from './context.ts';

const CONCURRENCY = 64;

/** Signs a bearer token valid for an hour with `secret` (HS256). */
async function signToken(secret: Buffer): Promise<string> {
  return new SignJWT({ sub: 'bench' })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(secret);
}

/** Runs the handshake scenario for every selected target (bare-net excluded). */
export async function runHandshakeScenario(ctx: ScenarioContext): Promise<HandshakeRow[]> {
  const durationMs = ctx.quick ? 1_000 : 5_000;
  const dir = mkdtempSync(join(tmpdir(), 'wshub-bench-'));
  // wshub requires HS256 secrets of at least 32 bytes; hex of 32 random bytes is 64.
  const secret = Buffer.from(randomBytes(32).toString('hex'));
  const secretFile = join(dir, 'jwt-secret');
  writeFileSync(secretFile, secret, { mode: 0o600 });
  const token = await signToken(secret);
  const rows: HandshakeRow[] = [];
  try {
    for (const jwt of [false, true]) {
      for (const name of ctx.targets) {
        if (name === 'bare-net') continue;
        const label = jwt ? `${name} (JWT)` : name;
        ctx.log(`handshakes / ${label}`);
        const variant = { label, name, args: jwt ? ['--jwt-secret-file', secretFile] : [] };
        const row = await withPeer(ctx, 'handshakes', variant, async (peer) => {
          const runs = await repeat(ctx.runs, async () => {
            const cpuBefore = peer.cpuSeconds();
            const result = await runHandshakes({
              target: targetOf(peer, jwt ? { Authorization: `Bearer ${token}` } : undefined),
              concurrency: CONCURRENCY,
              durationMs,
              ...(ctx.generatorCpuList ? { cpuList: ctx.generatorCpuList } : {}),
            });
            const cpuSec = peer.cpuSeconds() - cpuBefore;
            ctx.log(
              `    ${Math.round(result.perSec)} upgrades/s, ${result.failures} failures, p99 ${result.latencyMs.p99.toFixed(1)} ms, server CPU ${cpuSec.toFixed(2)} s`,
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
