/**
 * What every scenario gets from the orchestrator, and the helpers they share:
 * run options, logging, error collection, starting a peer for a target, and
 * the load generator's view of that peer.
 */
import type { ReceivePath, Target } from '../loadgen/index.ts';
import { startPeer, type PeerProcess } from '../peer-process.ts';
import type { RunError } from '../results.ts';

/** Options and sinks shared by all scenarios of one invocation. */
export interface ScenarioContext {
  quick: boolean;
  /** Repetitions of each measurement. */
  runs: number;
  /** Selected targets, in report order (the floor peers take part only where `takesPart` says). */
  targets: string[];
  /** Include N = 10,000 in fan-out. */
  large: boolean;
  /** taskset CPU list for generator workers; undefined when not pinning. */
  generatorCpuList: string | undefined;
  /** taskset CPU list for the server. */
  serverCpuList: string;
  /**
   * The receive path of the fan-out scenario on plain WebSocket targets
   * (`--generator`; default 'node' when absent). The self-test always runs both.
   */
  receivePath?: ReceivePath;
  log(message: string): void;
  errors: RunError[];
}

/**
 * The floor peers: servers that only do the handshake and relay nothing.
 * bare-net (node:net) is the floor of idle memory and of an upgrade's
 * cost; tcp-handle (Node's TCP handle without node:net) only of the latter.
 */
const FLOOR_SCENARIOS: Readonly<Record<string, readonly string[]>> = {
  'bare-net': ['idle', 'handshakes'],
  'tcp-handle': ['handshakes'],
};

/** Whether target `name` takes part in `scenario`: every relaying target does, a floor peer only where it is a floor. */
export function takesPart(name: string, scenario: string): boolean {
  const floors = FLOOR_SCENARIOS[name];
  return floors === undefined || floors.includes(scenario);
}

/** A target as a peer to start: the peer file, its flags, and the label used in tables. */
export interface PeerVariant {
  label: string;
  name: string;
  args: string[];
}

/** The load generator's Target for a running peer. */
export function targetOf(peer: PeerProcess, headers?: Record<string, string>): Target {
  return {
    host: '127.0.0.1',
    port: peer.port,
    protocol: peer.name === 'socketio' ? 'socketio' : 'ws',
    path: '/ws',
    ...(headers ? { headers } : {}),
  };
}

/**
 * Starts the peer of `variant`, hands it to `body`, and always stops it.
 * A failure is logged and recorded in ctx.errors; the result is then undefined
 * so the scenario can go on with the next target.
 */
export async function withPeer<T>(
  ctx: ScenarioContext,
  scenario: string,
  variant: PeerVariant,
  body: (peer: PeerProcess) => Promise<T>,
): Promise<T | undefined> {
  let peer: PeerProcess | undefined;
  try {
    peer = await startPeer({ name: variant.name, args: variant.args, cpuList: ctx.serverCpuList });
    return await body(peer);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    ctx.errors.push({ scenario, target: variant.label, message });
    ctx.log(`  ! ${scenario} / ${variant.label}: ${message}`);
    return undefined;
  } finally {
    await peer?.stop();
  }
}

/** The plain variant of a target (no extra flags). */
export function plain(name: string): PeerVariant {
  return { label: name, name, args: [] };
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs `fn` `times` times in sequence and returns the results. */
export async function repeat<T>(times: number, fn: (run: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < times; i++) out.push(await fn(i));
  return out;
}
