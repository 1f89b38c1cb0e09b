/** IPC messages between the load generator's orchestrating process and its workers. */
import type { Target } from './index.ts';

/** The connections one worker holds in one room. */
export interface WorkerRoom {
  name: string;
  subscribers: number;
  slow: number; // how many of `subscribers` stop reading at measurement start
  publishers: number;
  firstPublisher: number; // global index of this worker's first publisher here, to spread send phases
  target?: Target; // this room's server when it differs from the run's target (scale-out runs)
}

export type ToWorker =
  | {
      type: 'fanout';
      target: Target;
      worker: number;
      rooms: WorkerRoom[];
      totalPublishers: number;
      ratePerPublisher: number;
      payloadBytes: number;
      /**
       * Self-test against the line-rate peer: every binary frame counts whatever its stamp, and
       * `windowDelivered` counts those that arrive inside the window.
       */
      countAll?: boolean;
    }
  | { type: 'idle'; target: Target; worker: number; connections: number }
  | {
      type: 'handshake';
      target: Target;
      worker: number;
      concurrency: number;
      durationMs: number;
      /** This worker's share of the header pool: one value per connection, in turn. */
      headerPool?: HeaderPool;
    }
  | { type: 'start'; startAt: number; winStart: number; winEnd: number }
  | { type: 'poll' }
  | { type: 'drain' }
  | { type: 'collect' }
  | { type: 'release' };

export interface WorkerResult {
  /** Messages sent whose scheduled time is inside the window, per room. */
  sentByRoom: Record<string, number>;
  sentTotal: number;
  delivered: number;
  /** Self-test (`countAll`): deliveries that arrived between the window's start and end. */
  windowDelivered: number;
  /** Socket reads inside the window that carried frames (every mode). */
  windowReads: number;
  histogram: number[];
  maxUs: number;
  cpuUs: number;
  slowMembers: number;
  slowClosed: number;
  slowFrames: number;
  /** Channel mode: publication pushes received over the whole run. */
  pushesTotal: number;
  /** Channel mode: publications the server API accepted, and those it did not (or did not answer). */
  publishAccepted: number;
  publishFailed: number;
  /** The first publish failure's description, '' when none. */
  publishError: string;
}

export type FromWorker =
  | { type: 'connected'; connected: number; failures: number }
  /** `delivered` only grows while deliveries arrive; `pending` counts unanswered publish requests. */
  | { type: 'progress'; delivered: number; pending: number }
  | { type: 'drained' }
  | ({ type: 'result' } & WorkerResult)
  | {
      type: 'handshakes';
      upgrades: number;
      failures: number;
      histogram: number[];
      maxUs: number;
      cpuUs: number;
      elapsedMs: number;
      /** Connections that got a pool value an earlier connection of this worker had already used. */
      headerReuses: number;
    }
  | { type: 'released' };

/** Values of one request header, one per connection (e.g. a different bearer token each). */
export interface HeaderPool {
  /** The header's name, e.g. `Authorization`. */
  name: string;
  values: string[];
}
