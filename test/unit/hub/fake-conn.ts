/**
 * A hub Recipient without a socket, so hub semantics can be tested directly:
 * it records every frame handed to it and answers with a status the test
 * chooses; a FULL status becomes what a full queue with its send behaviour
 * answers (WAIT under "block", DROPPED otherwise).
 */
import { SendStatus, type ConnectionState, type SendBehavior } from '../../../src/connection/connection.ts';
import type { Recipient } from '../../../src/hub/hub.ts';
import { Delivery } from '../../../src/connection/send-queue.ts';

export class FakeConn implements Recipient {
  room: string | undefined = undefined;
  beforeDirectWrite: (() => void) | null = null;
  readonly sendBehavior: SendBehavior;
  /** Every frame handed over, by reference. */
  readonly frames: Buffer[] = [];
  /** What sendFrame answers while the connection is open. */
  status: SendStatus = SendStatus.QUEUED;
  /** Close codes passed to close(). */
  readonly closeCodes: number[] = [];
  terminated = false;
  /** Whether close() finishes the close handshake at once (a peer that answers). */
  answersClose = true;
  /** Pending waitAndSend calls, for the test to settle. */
  readonly waits: Array<{ frame: Buffer; timeout: number; resolve: () => void; reject: (e: Error) => void }> =
    [];
  private state: ConnectionState = 'open';
  private closedWaiters: Array<(info: { code: number; reason: string }) => void> = [];

  constructor(sendBehavior: SendBehavior = 'drop') {
    this.sendBehavior = sendBehavior;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  get readyState(): ConnectionState {
    return this.state;
  }

  /** The hub hands over a Buffer holding `count` frames (a broadcast batch holds several). */
  deliver(frame: Buffer, _count: number, _whole: boolean): Delivery {
    this.frames.push(frame);
    if (this.state !== 'open') return Delivery.CLOSED;
    if (this.status === SendStatus.FULL && this.sendBehavior === 'block') return Delivery.WAIT;
    return this.status;
  }

  waitAndSend(frame: Buffer, timeout: number): Promise<void> {
    return new Promise((resolve, reject) => this.waits.push({ frame, timeout, resolve, reject }));
  }

  close(code: number, _reason = ''): void {
    this.closeCodes.push(code);
    this.state = 'closing';
    if (this.answersClose) this.finish(code);
  }

  terminate(): void {
    this.terminated = true;
    this.finish(1006);
  }

  /** Marks the connection closed (as if its socket went away). */
  finish(code = 1006): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const resolve of this.closedWaiters.splice(0)) resolve({ code, reason: '' });
  }

  closed(): Promise<{ code: number; reason: string }> {
    if (this.state === 'closed') return Promise.resolve({ code: 1006, reason: '' });
    return new Promise((resolve) => this.closedWaiters.push(resolve));
  }
}

/** `n` fresh fakes. */
export function fakes(n: number, sendBehavior: SendBehavior = 'drop'): FakeConn[] {
  return Array.from({ length: n }, () => new FakeConn(sendBehavior));
}
