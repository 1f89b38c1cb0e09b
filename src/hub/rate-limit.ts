// Token bucket behind the hub-wide connection rate limit. It keeps no timers:
// tokens are refilled lazily from the clock whenever the bucket is consulted.

/**
 * Allows `ratePerSecond` events per second on average, with bursts of up to
 * `burst` events (default 2 × rate, at least 1). A rate of 0 means unlimited.
 * The bucket starts full. `now` returns milliseconds from any fixed origin
 * (default `performance.now`); it lets tests drive time by hand.
 */
export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number;

  /** Throws a RangeError for a negative or non-finite rate, or a burst below 1. */
  constructor(ratePerSecond: number, burst?: number, now: () => number = () => performance.now()) {
    if (!Number.isFinite(ratePerSecond) || ratePerSecond < 0) {
      throw new RangeError(`ratePerSecond must be a finite number >= 0, got ${String(ratePerSecond)}`);
    }
    // A burst below one token would never let a single event through.
    const size = burst ?? Math.max(1, 2 * ratePerSecond);
    if (!Number.isFinite(size) || size < 1) {
      throw new RangeError(`burst must be a finite number >= 1, got ${String(burst)}`);
    }
    this.#rate = ratePerSecond;
    this.#burst = size;
    this.#now = now;
    this.#tokens = size;
    this.#last = now();
  }

  /** Takes one token if available; returns true when the event is allowed. */
  tryTake(): boolean {
    if (this.#rate === 0) return true;
    this.#refill();
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Returns how many events would be allowed right now (Infinity when unlimited). */
  available(): number {
    if (this.#rate === 0) return Infinity;
    this.#refill();
    return Math.floor(this.#tokens);
  }

  #refill(): void {
    const t = this.#now();
    const elapsed = t - this.#last;
    // The anchor never moves backwards, so a clock that steps back neither
    // drains the bucket nor credits the same interval twice later.
    if (elapsed > 0) {
      this.#tokens = Math.min(this.#burst, this.#tokens + (elapsed * this.#rate) / 1000);
      this.#last = t;
    }
  }
}
