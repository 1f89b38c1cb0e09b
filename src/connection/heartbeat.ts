/**
 * One timer per distinct (pingPeriod, pongWait, writeTimeout) setting sweeps
 * all its connections, instead of a timer per connection: idle connections
 * then cost no timer objects, and 20,000 of them cost one sweep every few
 * seconds.
 */

/** What the sweep needs from a connection. */
export interface Sweepable {
  /** Called on every sweep with the current monotonic time in ms. */
  sweep(now: number): void;
}

export interface SweepTimings {
  pingPeriod: number;
  pongWait: number;
  writeTimeout: number;
}

const MIN_TICK_MS = 5;

/** A set of connections sharing one interval timer. */
export class Sweeper {
  private readonly members = new Set<Sweepable>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly tickMs: number,
    private readonly onEmpty: () => void,
  ) {}

  add(member: Sweepable): void {
    this.members.add(member);
    if (this.timer === null) {
      this.timer = setInterval(() => this.tick(), this.tickMs);
      this.timer.unref();
    }
  }

  delete(member: Sweepable): void {
    if (this.members.delete(member) && this.members.size === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
      this.onEmpty();
    }
  }

  private tick(): void {
    const now = performance.now();
    for (const member of this.members) member.sweep(now);
  }
}

const sweepers = new Map<string, Sweeper>();

/** The tick: a quarter of the shortest active timeout, so deadlines are met within 25%. */
export function tickFor(timings: SweepTimings): number {
  // pongWait only matters when pings are sent.
  const pong = timings.pingPeriod > 0 ? timings.pongWait : 0;
  const active = [timings.pingPeriod, pong, timings.writeTimeout].filter((t) => t > 0);
  if (active.length === 0) return 0;
  return Math.max(MIN_TICK_MS, Math.floor(Math.min(...active) / 4));
}

/**
 * Registers `member` with the sweeper for `timings` and returns that
 * sweeper (call its `delete` to unregister), or null when nothing needs
 * sweeping.
 */
export function joinSweep(member: Sweepable, timings: SweepTimings): Sweeper | null {
  const tick = tickFor(timings);
  if (tick === 0) return null;
  const key = `${timings.pingPeriod}/${timings.pongWait}/${timings.writeTimeout}`;
  let sweeper = sweepers.get(key);
  if (sweeper === undefined) {
    sweeper = new Sweeper(tick, () => sweepers.delete(key));
    sweepers.set(key, sweeper);
  }
  sweeper.add(member);
  return sweeper;
}

/** Number of live sweep timers (for leak checks in tests). */
export function activeSweepers(): number {
  return sweepers.size;
}
