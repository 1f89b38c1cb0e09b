/**
 * The channel benchmark's publisher: one `POST /api/publish` per
 * publication, as an application backend calls the server API, over a
 * keep-alive agent with a few connections so that requests overlap.
 *
 * Open loop: `publish` is called at the scheduled times whatever the
 * server's pace; requests beyond the agent's sockets wait in its queue
 * (their wait shows up as latency, since the body carries the scheduled
 * time), and past `maxPending` a publication is counted as failed instead
 * of queued, so memory stays bounded when the server falls behind.
 *
 * A publication counts as accepted only on status 200 with a body that is
 * not an error reply: Centrifugo answers API errors with 200 and
 * `{"error":{…}}`.
 */
import http from 'node:http';
import { PublicationTemplate } from './channel-frames.ts';

/** Where and what to publish. */
export interface HttpPublisherOptions {
  host: string;
  port: number;
  /** Default '/api/publish'. */
  path?: string;
  apiKey: string;
  channel: string;
  /** Size of the publication's `data` JSON in bytes (see PublicationTemplate). */
  payloadBytes: number;
  /** Keep-alive connections to the server (default 8). */
  connections?: number;
  /** Requests in flight or queued before new publications are counted as failed (default 5,000). */
  maxPending?: number;
  /** Per-request deadline in ms (default 10,000). */
  timeoutMs?: number;
}

/** Bytes of a response body kept for the error check; API replies here are a few dozen bytes. */
const BODY_LIMIT = 4096;

/** Publishes through the server API and counts the outcome of every request. */
export class HttpPublisher {
  /** Publications the server accepted. */
  accepted = 0;
  /** Publications refused, failed, timed out or dropped because too many were pending. */
  failed = 0;
  /** Requests not yet answered. */
  pending = 0;
  /** The first failure's description, for the report. */
  firstError: string | undefined;
  private readonly agent: http.Agent;
  private readonly template: PublicationTemplate;
  private readonly options: Required<HttpPublisherOptions>;
  private readonly headers: Record<string, string>;

  constructor(options: HttpPublisherOptions) {
    this.options = {
      path: '/api/publish',
      connections: 8,
      maxPending: 5_000,
      timeoutMs: 10_000,
      ...options,
    };
    this.agent = new http.Agent({ keepAlive: true, maxSockets: this.options.connections });
    this.template = new PublicationTemplate(options.channel, options.payloadBytes);
    this.headers = { 'Content-Type': 'application/json', 'X-API-Key': options.apiKey };
  }

  /** Sends one publication stamped with `timeMs` (its scheduled send time, ms since the epoch). */
  publish(timeMs: number): void {
    if (this.pending >= this.options.maxPending) {
      this.fail(`more than ${this.options.maxPending} requests pending`);
      return;
    }
    const body = this.template.stamped(timeMs);
    this.pending++;
    let settled = false;
    const settle = (error: string | undefined): void => {
      if (settled) return;
      settled = true;
      this.pending--;
      if (error === undefined) this.accepted++;
      else this.fail(error);
    };
    const req = http.request(
      {
        host: this.options.host,
        port: this.options.port,
        path: this.options.path,
        method: 'POST',
        agent: this.agent,
        headers: { ...this.headers, 'Content-Length': String(body.length) },
        timeout: this.options.timeoutMs,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (text.length < BODY_LIMIT) text += chunk;
        });
        res.on('end', () => {
          if (res.statusCode !== 200) settle(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
          else if (text.includes('"error"')) settle(`error reply: ${text.slice(0, 200)}`);
          else settle(undefined);
        });
        res.on('error', (error: Error) => settle(error.message));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${this.options.timeoutMs} ms`)));
    req.on('error', (error: Error) => settle(error.message));
    req.end(body);
  }

  /** Closes the agent's idle connections (requests still pending are ended too). */
  close(): void {
    this.agent.destroy();
  }

  private fail(error: string): void {
    this.failed++;
    this.firstError ??= error;
  }
}
