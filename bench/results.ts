/**
 * The shape of a benchmark results file (`bench/results/*.json`), written by
 * bench/run.ts and read by bench/report.ts. Every measured quantity is a
 * {@link Summary} over the repeated runs.
 */
import type { Summary } from './summary.ts';
import type { DeflateResults } from './scenarios/deflate.ts';
import type { StormRow } from './scenarios/storm.ts';
import type { WorkersResults } from './scenarios/workers.ts';
import type { ReceivePath } from './loadgen/index.ts';

/** Where and how the suite ran. */
export interface MachineInfo {
  cpuModel: string;
  cores: number;
  ramBytes: number;
  node: string;
  kernel: string;
  /** 1-minute load average before and after the run. */
  loadBefore: number;
  loadAfter: number;
  /** Whether servers and generator were pinned to separate cores with taskset. */
  pinned: boolean;
}

/** One step of the maximum-sustainable-rate search. */
export interface RateStep {
  ratePerPublisher: number;
  deliveriesPerSec: number;
  p99Ms: number;
  lost: number;
  generatorLimited: boolean;
  pass: boolean;
  /** Server CPU-seconds in the step's window and its median latency (absent in older results). */
  serverCpuSec?: number;
  p50Ms?: number;
  /** Share of the server's core other processes used during the step (0–1), when measured. */
  otherLoad?: number;
  /** The generator's own CPU share of its cores, and its cores' total busy share (0–1), in the window. */
  generatorBusy?: number;
  generatorCoreBusy?: number;
}

/** Fan-out of one room with one publisher, for one target × members × payload. */
export interface FanoutCell {
  target: string;
  members: number;
  payloadBytes: number;
  /** The fixed open-loop rate of the measured runs, messages/s. */
  ratePerPublisher: number;
  deliveriesPerSec: Summary;
  lost: Summary;
  lossFraction: Summary;
  p50Ms: Summary;
  p99Ms: Summary;
  maxMs: Summary;
  serverCpuSec: Summary;
  deliveriesPerCpuSec: Summary;
  generatorLimited: boolean;
  /** Highest passing rate × members of each search (one search per run). */
  maxSustainable: Summary;
  /** True when the search stopped on a generator-limited step: the true maximum may be higher. */
  maxGeneratorBound: boolean;
  /**
   * 'server-bound' when in every run the step that failed just above the maximum left the
   * generator at least 3× headroom (see bench/scenarios/fanout.ts, limitOf); a ratio is only
   * claimed between server-bound maxima. Absent in older results.
   */
  maxBound?: 'server-bound' | 'generator-bound';
  /** The generator's CPU share at that limiting step, per run (absent in older results). */
  generatorBusyAtLimit?: Summary;
  /** The steps of the last search, for inspection. */
  searchSteps: RateStep[];
  /** The generator's receive path (the Go receiver or the Node worker); absent in older results, which used Node. */
  receivePath?: ReceivePath;
  /** Latency at half the maximum sustainable rate (undefined when no rate passed). */
  halfRate?: { ratePerPublisher: number; p50Ms: Summary; p99Ms: Summary; lost: Summary };
}

/** Many small rooms with a publisher each. */
export interface ManyRoomsRow {
  target: string;
  rooms: number;
  membersPerRoom: number;
  ratePerPublisher: number;
  payloadBytes: number;
  deliveriesPerSec: Summary;
  lost: Summary;
  p50Ms: Summary;
  p99Ms: Summary;
  serverCpuSec: Summary;
  deliveriesPerCpuSec: Summary;
  generatorLimited: boolean;
}

/** Idle connections held open. */
export interface IdleRow {
  target: string;
  connections: number;
  connected: Summary;
  rssPerConnBytes: Summary;
  /** -1 medians mean the peer could not report its heap. */
  heapPerConnBytes: Summary;
  /** CPU-seconds the server used while the connections sat idle for idleMs. */
  idleCpuSec: Summary;
  idleMs: number;
}

/** Connect/upgrade/close loops. */
export interface HandshakeRow {
  target: string;
  jwt: boolean;
  concurrency: number;
  upgradesPerSec: Summary;
  upgradesPerCpuSec: Summary;
  p99Ms: Summary;
  failures: Summary;
  generatorLimited: boolean;
  /** JWT rows: distinct tokens handed out one per connection (absent in results written before the pool). */
  distinctTokens?: number;
  /** JWT rows: the most connections of one run that got a token already used in that run. */
  tokenReuses?: number;
  /** The program that ran the connectors (absent in results written before the Go worker: node). */
  receivePath?: ReceivePath;
}

/** A fan-out run where some subscribers stop reading, against the same run without them. */
export interface SlowRow {
  /** Target, with its send behaviour when it has one (e.g. `wshub (close)`). */
  target: string;
  members: number;
  slowMembers: number;
  ratePerPublisher: number;
  payloadBytes: number;
  baselineP99Ms: Summary;
  slowP99Ms: Summary;
  /** slow p99 / baseline p99 per run. */
  p99Ratio: Summary;
  healthyLost: Summary;
  rssGrowthBytes: Summary;
  /** Runs whose RSS grew < 5% of its total growth over the last third of the run. */
  plateauRuns: number;
  runs: number;
  /** RSS samples of the last run, every 500 ms: [ms since start, bytes]. */
  rssSamples: Array<[number, number]>;
  /** Last run's counters: server side (-1 = the target cannot tell) and client side. */
  serverDropped: number;
  serverClosed: number;
  clientClosedByServer: number;
  slowFramesReceived: number;
  /** Messages sent over the whole last run (warm-up included) × slow members. */
  slowFramesOffered: number;
}

/** Scale-out: one room's fan-out on one node, or on two nodes joined by a broker. */
export interface CrossNodeRow {
  mode: 'single node' | 'redis' | 'nats';
  subscribers: number;
  payloadBytes: number;
  ratePerPublisher: number;
  deliveriesPerSec: Summary;
  lost: Summary;
  p50Ms: Summary;
  p99Ms: Summary;
  maxMs: Summary;
  generatorLimited: boolean;
}

/**
 * Channel fan-out (one channel, N subscribers speaking the Centrifuge client
 * protocol, one publisher posting to the server API), for one target × N × payload.
 */
export interface ChannelCell {
  target: string;
  subscribers: number;
  payloadBytes: number;
  /** The fixed open-loop publication rate of the fixed-rate runs, publications/s. */
  ratePerPublisher: number;
  deliveriesPerSec: Summary;
  lost: Summary;
  p50Ms: Summary;
  p99Ms: Summary;
  serverCpuSec: Summary;
  /** Deliveries per server CPU-second at the fixed rate: the same work for every target. */
  deliveriesPerCpuSec: Summary;
  generatorLimited: boolean;
  /** Highest passing publication rate × subscribers of each search (one search per run). */
  maxSustainable: Summary;
  /** Deliveries per server CPU-second, p50 and p99 in the highest passing step of each search. */
  maxDeliveriesPerCpuSec: Summary;
  maxP50Ms: Summary;
  maxP99Ms: Summary;
  /** True when the search stopped on a generator-limited step: the true maximum may be higher. */
  maxGeneratorBound: boolean;
  /** Publications the server API refused or did not answer, fixed-rate runs. */
  publishFailures: Summary;
  /** Share of the server's core (0–1) other processes used during every run of the cell (fixed and search steps). */
  otherLoad: Summary;
  /** The steps of the last search, for inspection. */
  searchSteps: RateStep[];
}

/**
 * Cross-node channel fan-out: two nodes of one target joined through one
 * Redis, N subscribers (Centrifuge client protocol) on node B, the publisher
 * posting to node A's server API; for one target × history setting × N × payload.
 * CPU figures are the sum of node A, node B and redis-server in the window.
 */
export interface ChannelClusterCell {
  target: string;
  /** Whether the channel keeps a history in Redis on this target (both targets alike in one run). */
  history: boolean;
  /** With history: publications kept per channel and their time to live (absent in older results). */
  historySize?: number;
  historyTtlSec?: number;
  subscribers: number;
  payloadBytes: number;
  /** The fixed open-loop publication rate of the fixed-rate runs, publications/s. */
  ratePerPublisher: number;
  deliveriesPerSec: Summary;
  lost: Summary;
  p50Ms: Summary;
  p99Ms: Summary;
  /** CPU-seconds in the window at the fixed rate: node A (publishing), node B (subscribers), redis-server. */
  cpuSecA: Summary;
  cpuSecB: Summary;
  cpuSecRedis: Summary;
  /** CPU µs of the three processes together per delivery at the fixed rate. */
  cpuUsPerDelivery: Summary;
  generatorLimited: boolean;
  /** Highest passing publication rate × subscribers of each search (one search per run). */
  maxSustainable: Summary;
  /** CPU µs (three processes) per delivery, p50 and p99 in the highest passing step of each search. */
  maxCpuUsPerDelivery: Summary;
  maxP50Ms: Summary;
  maxP99Ms: Summary;
  maxGeneratorBound: boolean;
  /** Publications node A's API refused or did not answer, fixed-rate runs. */
  publishFailures: Summary;
  /** Share of the servers' core (0–1) taken by processes other than the three, every run of the cell. */
  otherLoad: Summary;
  searchSteps: RateStep[];
}

/**
 * The load generator's self-test against the line-rate peer, for one write
 * pattern × payload (bench/scenarios/generator.ts).
 */
export interface GeneratorRow {
  /** How the peer wrote: 'one frame per write' or '64 KiB writes'. */
  pattern: string;
  /** The receive path that counted (absent in older results, which had only Node's). */
  receivePath?: ReceivePath;
  subscribers: number;
  payloadBytes: number;
  /** Frames counted per second inside the window. */
  framesPerSec: Summary;
  /** Frames counted per generator CPU-second inside the window: one busy core's capacity. */
  framesPerCpuSec: Summary;
  framesPerRead: Summary;
  /** The generator's own CPU share, and its cores' total busy share (0–1), in the window. */
  generatorBusy: Summary;
  generatorCoreBusy: Summary;
  /** The line-rate peer's CPU-seconds over the whole run. */
  serverCpuSec: Summary;
  /** Runs in which the generator counted exactly the frames the peer wrote. */
  exactRuns: number;
  runs: number;
  connectFailures: number;
}

/** Scenarios with a docs/BENCHMARKS.md section of their own (not the hub section). */
export const CHANNEL_SCENARIOS: readonly string[] = ['channels', 'channels-cluster', 'storm', 'workers'];

/** Whether a run of `scenarios` measured anything of the hub section (and its chart). */
export function hasHubScenarios(scenarios: readonly string[]): boolean {
  return scenarios.some((s) => !CHANNEL_SCENARIOS.includes(s));
}

/** A failed measurement, kept so the report says what is missing and why. */
export interface RunError {
  scenario: string;
  target: string;
  message: string;
}

/** A whole results file. */
export interface BenchResults {
  version: 1;
  command: string;
  startedAt: string;
  durationSec: number;
  quick: boolean;
  runs: number;
  targets: string[];
  scenarios: string[];
  machine: MachineInfo;
  notes: string[];
  fanout: FanoutCell[];
  manyRooms: ManyRoomsRow[];
  idle: IdleRow[];
  handshakes: HandshakeRow[];
  slow: SlowRow[];
  /** Absent in results written before the scenario existed. */
  crossNode?: CrossNodeRow[];
  /** Absent in results written before the scenario existed. */
  channels?: ChannelCell[];
  /** Absent in results written before the scenario existed. */
  channelCluster?: ChannelClusterCell[];
  /** Absent in results written before the scenario existed. */
  deflate?: DeflateResults;
  /** Reconnection storm; absent in results written before the scenario existed. */
  storm?: StormRow[];
  /** Absent in results written before the scenario existed. */
  workers?: WorkersResults;
  /** The load generator's self-test; absent in results written before the scenario existed. */
  generator?: GeneratorRow[];
  errors: RunError[];
}
