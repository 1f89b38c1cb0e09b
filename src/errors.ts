/**
 * Typed errors with stable codes. Each carries its meaning: a config error
 * names the option, a send error says why the message was not queued, a
 * CloseError says how to close the connection.
 */

/** Base class: every wshub error has a stable, machine-readable `code`. */
export class WshubError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Invalid configuration: thrown by constructors and registration. */
export class ConfigError extends WshubError {
  constructor(
    /** The option at fault, e.g. "secret" or "sendQueueSize". */
    readonly option: string,
    message: string,
  ) {
    super('INVALID_CONFIG', `${option}: ${message}`);
  }
}

/** The send queue was full and the send behaviour is "drop" (or a blocked send found no room). */
export class QueueFullError extends WshubError {
  constructor() {
    super('SEND_QUEUE_FULL', 'send queue is full');
  }
}

/** A "block" send waited `sendTimeout` without finding room in the queue. */
export class SendTimeoutError extends WshubError {
  constructor(timeoutMs: number) {
    super('SEND_TIMEOUT', `no room in the send queue within ${timeoutMs} ms`);
  }
}

/** The connection is closing or closed; nothing more can be sent. */
export class ConnectionClosedError extends WshubError {
  constructor() {
    super('CONNECTION_CLOSED', 'connection is closed');
  }
}

/**
 * Thrown (or rejected) by a message handler to close the connection with a
 * specific code and reason. Any other error closes it with 1011.
 */
export class CloseError extends WshubError {
  constructor(
    readonly closeCode: number,
    readonly reason = '',
  ) {
    super('CLOSE', `close ${closeCode}${reason ? `: ${reason}` : ''}`);
  }
}
