/**
 * A stand-in for Connection with exactly the surface the Hub uses, so hub
 * semantics can be tested without sockets: it records every frame handed to
 * it and answers sendFrame/sendFrames with a status the test chooses.
 */
import { SendStatus, type Connection, type SendBehavior } from '../../../src/connection.ts';

export class FakeConn {
  room: string | undefined = undefined;
  readonly options: { sendBehavior: SendBehavior };
  /** Every frame passed to sendFrame, by reference. */
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
  private state: 'open' | 'closing' | 'closed' = 'open';
  private closedWaiters: Array<(info: { code: number; reason: string }) => void> = [];

  constructor(sendBehavior: SendBehavior = 'drop') {
    this.options = { sendBehavior };
  }

  /** The object typed as a Connection, for passing to the Hub. */
  get asConn(): Connection {
    return this as unknown as Connection;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  get readyState(): 'open' | 'closing' | 'closed' {
    return this.state;
  }

  sendFrame(frame: Buffer): SendStatus {
    return this.sendFrames(frame, 1, false);
  }

  /** The hub hands over a Buffer holding `count` frames (a broadcast batch holds several). */
  sendFrames(frame: Buffer, _count: number, _whole: boolean): SendStatus {
    this.frames.push(frame);
    return this.state === 'open' ? this.status : SendStatus.CLOSED;
  }

  waitAndSend(frame: Buffer, timeout: number): Promise<void> {
    return new Promise((resolve, reject) => this.waits.push({ frame, timeout, resolve, reject }));
  }

  close(code: number): void {
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
