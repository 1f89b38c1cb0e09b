/**
 * Inbound rate limits of one connection: messages per second and bytes
 * per second, each a token bucket holding one second's worth. No timers:
 * the buckets refill from the clock when data arrives, and the clock is
 * read at most once per socket chunk (a coarse clock: chunks, not
 * messages, advance it).
 */

/** Which inbound limit a connection passed. */
export type InboundRateLimit = 'messages' | 'bytes';

export class InboundRate {
  #messages: number;
  #bytes: number;
  #last: number;

  /** `messagesPerSec`, `bytesPerSec`: 0 leaves that limit off. */
  constructor(
    private readonly messagesPerSec: number,
    private readonly bytesPerSec: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#messages = messagesPerSec;
    this.#bytes = bytesPerSec;
    this.#last = now();
  }

  /** Socket bytes arrived; refills both buckets. Returns 'bytes' when the byte limit is passed. */
  received(bytes: number): InboundRateLimit | null {
    const t = this.now();
    const elapsed = t - this.#last;
    if (elapsed > 0) {
      this.#last = t;
      const seconds = elapsed / 1000;
      if (this.messagesPerSec > 0)
        this.#messages = Math.min(this.messagesPerSec, this.#messages + seconds * this.messagesPerSec);
      if (this.bytesPerSec > 0)
        this.#bytes = Math.min(this.bytesPerSec, this.#bytes + seconds * this.bytesPerSec);
    }
    if (this.bytesPerSec === 0) return null;
    this.#bytes -= bytes;
    return this.#bytes < 0 ? 'bytes' : null;
  }

  /** A complete message arrived; returns 'messages' when the message limit is passed. */
  message(): InboundRateLimit | null {
    if (this.messagesPerSec === 0) return null;
    this.#messages -= 1;
    return this.#messages < 0 ? 'messages' : null;
  }
}
