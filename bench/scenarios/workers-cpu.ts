/**
 * Where the CPU goes while `wshub serve --workers N` is under load: one
 * snapshot reads, from /proc, the CPU-seconds of every process of the
 * server tree (primary and workers), of the broker (redis-server) when there
 * is one, and the busy time of the cores the run is pinned to; two snapshots
 * make a {@link CpuShare} in cores. The load generator measures its own CPU
 * inside its window; whatever else kept the cores busy is "others" (other
 * work on the machine). {@link limiters} names what was full.
 */
import { availableParallelism } from 'node:os';
import type { AttackServer } from '../attacks/server.ts';
import { coreBusySeconds, procCpuSeconds } from '../peer-process.ts';
import { treeCpu } from './serve-tree.ts';

/** One reading of every CPU counter the scenario follows. */
export interface CpuSnapshot {
  /** performance.now() of the reading. */
  at: number;
  /** CPU-seconds of the primary, then of each worker (by pid). */
  primary: number;
  workers: Map<number, number>;
  /** CPU-seconds of the broker process (0 without one). */
  broker: number;
  /** Busy CPU-seconds of the pinned cores together. */
  coresBusy: number;
}

/** CPU use over a span, in cores (CPU-seconds per second). */
export interface CpuShare {
  /** Length of the span in seconds. */
  spanSec: number;
  primary: number;
  /** One entry per worker alive at both ends of the span, in pid order. */
  workers: number[];
  broker: number;
  /** The load generator's processes (their own reading, over their window). */
  generator: number;
  /** Everything else on the pinned cores: busy cores less server, broker and generator (≥ 0). */
  others: number;
  /** Number of cores the run is pinned to. */
  cores: number;
}

/** CPU numbers of a taskset list such as '0,1' or '0-3'; every core when undefined. */
export function cpusOf(cpuList: string | undefined): number[] {
  if (cpuList === undefined) return Array.from({ length: availableParallelism() }, (_, i) => i);
  const out: number[] = [];
  for (const part of cpuList.split(',')) {
    const [a, b] = part.split('-').map((x) => Number.parseInt(x, 10));
    if (a === undefined || Number.isNaN(a)) continue;
    for (let c = a; c <= (b ?? a); c++) out.push(c);
  }
  return out;
}

/** Reads the server tree, the broker and the pinned cores now. */
export function snapshot(server: AttackServer, brokerPid: number | undefined, cpus: number[]): CpuSnapshot {
  const at = performance.now();
  const [primary, ...workers] = treeCpu(server);
  const broker = brokerPid !== undefined ? procCpuSeconds(brokerPid) : 0;
  let coresBusy = 0;
  for (const cpu of cpus) coresBusy += coreBusySeconds(cpu);
  return {
    at,
    primary: primary?.cpuSec ?? NaN,
    workers: new Map(workers.map((w) => [w.pid, w.cpuSec])),
    broker: Number.isFinite(broker) ? broker : 0,
    coresBusy,
  };
}

/**
 * The share of each process between two snapshots. `generatorCpuSec` is
 * the generator's CPU over the same span (as measured by the generator).
 */
export function shareBetween(
  from: CpuSnapshot,
  to: CpuSnapshot,
  generatorCpuSec: number,
  cores: number,
): CpuShare {
  const spanSec = Math.max(1e-3, (to.at - from.at) / 1000);
  const workers: number[] = [];
  for (const [pid, end] of [...to.workers].sort((a, b) => a[0] - b[0])) {
    const start = from.workers.get(pid);
    if (start !== undefined) workers.push((end - start) / spanSec);
  }
  const primary = (to.primary - from.primary) / spanSec;
  const broker = (to.broker - from.broker) / spanSec;
  const generator = generatorCpuSec / spanSec;
  const busy = (to.coresBusy - from.coresBusy) / spanSec;
  const server = primary + workers.reduce((a, b) => a + b, 0);
  return {
    spanSec,
    primary,
    workers,
    broker,
    generator,
    others: Math.max(0, busy - server - broker - generator),
    cores,
  };
}

/** A process (or the cores together) at or above this share of its capacity counts as full. */
export const FULL = 0.85;

/**
 * What was full during the span: `primary` (one core: the relay and the
 * accept loop live there), `worker` (one of them at a full core), `broker`,
 * `cores` (the pinned cores busy ≥ FULL together: server, generator and
 * others compete). Empty when nothing was: the limit was latency or loss
 * below CPU saturation.
 */
export function limiters(share: CpuShare): string[] {
  const out: string[] = [];
  if (share.primary >= FULL) out.push('primary');
  if (share.workers.some((w) => w >= FULL)) out.push('worker');
  if (share.broker >= FULL) out.push('broker');
  const total = share.primary + share.workers.reduce((a, b) => a + b, 0) + share.broker;
  if (total + share.generator + share.others >= FULL * share.cores) out.push('cores');
  return out;
}

/**
 * "primary 0.12 · workers 0.61+0.58 · redis 0.20 · generator 0.70 · others 0.05" (cores);
 * redis is shown when `withBroker` (or when it used any CPU).
 */
export function formatShare(share: CpuShare | undefined, withBroker = false): string {
  if (share === undefined) return '–';
  const f = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : '–');
  const parts = [`primary ${f(share.primary)}`, `workers ${share.workers.map(f).join('+') || '–'}`];
  if (withBroker || share.broker > 0) parts.push(`redis ${f(share.broker)}`);
  parts.push(`generator ${f(share.generator)}`, `others ${f(share.others)}`);
  return parts.join(' · ');
}
