/**
 * IPC messages between the reconnection-storm orchestrator (storm.ts) and its
 * worker processes (storm-worker.ts). A worker is either the steady group
 * (subscribers and the publisher of one room, measuring delivery latency) or
 * a share of the storm (clients that connect at scheduled times, retry when
 * refused, and stay connected).
 */
import type { Target } from './index.ts';

/** How the storm clients of one worker retry and give up. */
export interface RetryPolicy {
  /** Attempts per client, the first included. */
  maxAttempts: number;
  /** Bound of one attempt from connect() to the join acknowledgement, ms. */
  attemptTimeoutMs: number;
  /** Backoff of the first retry without Retry-After, ms (doubled per attempt, up to maxBackoffMs). */
  backoffMs: number;
  maxBackoffMs: number;
  /** Random extra wait added to every retry, 0 … jitterMs. */
  jitterMs: number;
  /** Largest Retry-After honoured, in seconds (larger values are clamped to it). */
  maxRetryAfterSec: number;
}

export type ToStormWorker =
  | {
      type: 'steady';
      target: Target;
      room: string;
      subscribers: number;
      ratePerSec: number;
      payloadBytes: number;
    }
  | {
      type: 'storm';
      target: Target;
      room: string;
      worker: number;
      workers: number;
      /** Storm clients over all workers; this worker takes indices ≡ worker (mod workers). */
      clients: number;
      /** Source addresses 127.0.0.2 … 127.0.0.(1 + addresses). */
      addresses: number;
      /** Worker 0 also holds the roll-call connection (from 127.0.0.1, made before the storm). */
      rollCaller: boolean;
      retry: RetryPolicy;
    }
  /** Steady: publish open-loop from startAt (absolute ms) until stopAt (may be moved by `stop`). */
  | { type: 'publish'; startAt: number }
  | { type: 'stop'; at: number }
  /** Storm: client i starts at startAt + offset_i (spread over spreadMs); nothing starts after deadlineAt. */
  | { type: 'launch'; startAt: number; spreadMs: number; deadlineAt: number }
  | { type: 'rollcall' }
  | { type: 'poll' }
  /** Steady: latency and counts of the deliveries whose scheduled time falls in each window [from, to). */
  | { type: 'collect'; windows: Array<[number, number]> }
  | { type: 'release' };

/** One window of the steady group. */
export interface WindowCounts {
  /** Messages scheduled in the window. */
  sent: number;
  /** Deliveries of those messages received. */
  delivered: number;
  histogram: number[];
  maxUs: number;
}

/** What a storm worker reports at the end. */
export interface StormWorkerResult {
  clients: number;
  connected: number;
  gaveUp: number;
  /** Connections the server closed after the join was acknowledged. */
  closedAfterJoin: number;
  attempts: number;
  /** Clients that made at least one attempt (attempts − tried = retries). */
  tried: number;
  /** Refused answers by HTTP status ("429", "503", …). */
  refusals: Record<string, number>;
  /** Failed attempts without an HTTP answer, by kind ("ECONNRESET", "timeout", "closed", …). */
  failures: Record<string, number>;
  /** Retries that honoured a Retry-After header. */
  retryAfterHonoured: number;
  /** connect() → join acknowledged, per successful attempt (µs). */
  attemptHistogram: number[];
  attemptMaxUs: number;
  /** Scheduled start → join acknowledged, per connected client, retries included (µs). */
  clientHistogram: number[];
  clientMaxUs: number;
  /** Storm start → join acknowledged, per connected client (µs). */
  readyHistogram: number[];
  readyMaxUs: number;
  /** Last join acknowledgement, absolute ms (0 when none). */
  lastReadyAt: number;
  /** Latest first attempt behind its schedule, ms (the generator's own lag). */
  maxLaunchLagMs: number;
  /** Roll-call messages the connected clients received. */
  rollCallReceived: number;
  /** Worker CPU (user + system) from launch to the last client done, µs. */
  cpuUs: number;
}

export type FromStormWorker =
  | { type: 'ready'; connected: number; failures: number }
  | {
      type: 'progress';
      /** Storm: clients connected, clients done (connected or given up), last acknowledgement, roll-call receipts. */
      connected: number;
      done: number;
      lastReadyAt: number;
      rollCallReceived: number;
      /** Steady: deliveries so far (grows while deliveries arrive). */
      delivered: number;
    }
  | { type: 'steady-result'; windows: WindowCounts[]; members: number; cpuUs: number }
  | ({ type: 'storm-result' } & StormWorkerResult)
  | { type: 'released' };
