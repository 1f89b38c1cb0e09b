// A memory transport whose broker loses chosen messages after taking them:
// the publish succeeds for the sender and nobody receives the message. That
// is the loss only the receivers' sequence numbers can reveal, unlike an
// outage, where the sender's publish fails.
import { MemoryTransport } from '../../../src/broker/memory.ts';

export class LossyTransport extends MemoryTransport {
  /** Decides, for each publish the broker takes, whether it is lost. */
  drop: (channel: string, payload: Buffer) => boolean = () => false;
  /** Messages lost so far. */
  lost = 0;

  override publish(channel: string, payload: Buffer): Promise<void> {
    if (this.connected && this.drop(channel, payload)) {
      this.lost++;
      return Promise.resolve();
    }
    return super.publish(channel, payload);
  }
}

/** Drops the publishes on `channel` whose 1-based position among that channel's publishes is in `positions`. */
export function dropNth(channel: string, positions: number[]): (channel: string) => boolean {
  let seen = 0;
  const lose = new Set(positions);
  return (published) => published === channel && lose.has(++seen);
}
