/**
 * A timer for a deadline that may lie far in the future (a token's `exp`).
 * Node's setTimeout takes at most 2^31−1 ms (about 24.8 days); a longer
 * delay fires after 1 ms and prints a TimeoutOverflowWarning, which would
 * close a connection holding a long-lived token at once. So the wait is cut
 * into steps of at most `maxStepMs`, and after each step the timer checks
 * the clock again and re-arms until the deadline is really reached.
 */

/** The longest delay setTimeout honours. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

export interface ExpiryTimerOptions {
  /** Current time in ms since the epoch (default Date.now); tests replace it. */
  now?: () => number;
  /** Longest single wait (default and upper bound MAX_TIMER_DELAY_MS). */
  maxStepMs?: number;
}

/** Calls `onExpire` once the wall clock reaches `deadline` (ms since the epoch), unless cancelled. */
export class ExpiryTimer {
  readonly #deadline: number;
  readonly #onExpire: () => void;
  readonly #now: () => number;
  readonly #maxStep: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(deadline: number, onExpire: () => void, options: ExpiryTimerOptions = {}) {
    const maxStep = options.maxStepMs ?? MAX_TIMER_DELAY_MS;
    if (!Number.isSafeInteger(maxStep) || maxStep < 1 || maxStep > MAX_TIMER_DELAY_MS) {
      throw new RangeError(`maxStepMs must be an integer from 1 to ${MAX_TIMER_DELAY_MS}`);
    }
    this.#deadline = deadline;
    this.#onExpire = onExpire;
    this.#now = options.now ?? Date.now;
    this.#maxStep = maxStep;
    this.#arm();
  }

  /** Whether the timer is still waiting (not fired, not cancelled). */
  get pending(): boolean {
    return this.#timer !== undefined;
  }

  /** Stops the timer; `onExpire` will not be called. */
  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(): void {
    const remaining = this.#deadline - this.#now();
    // NaN (a bad deadline) counts as reached rather than waiting forever.
    const delay = remaining > 0 ? Math.min(Math.ceil(remaining), this.#maxStep) : 0;
    this.#timer = setTimeout(() => this.#fire(), delay);
    // An expiry is no reason to keep the process alive.
    this.#timer.unref();
  }

  #fire(): void {
    if (this.#now() < this.#deadline) {
      this.#arm();
      return;
    }
    this.#timer = undefined;
    this.#onExpire();
  }
}
