/**
 * What every benchmark peer shares: command-line flags, the `listening on`
 * line, the stdin `stats` protocol, the optional JWT check and SIGTERM
 * handling. It imports no WebSocket library, so the bare-net floor pays for
 * nothing it does not use.
 *
 * Protocol with the orchestrator:
 * - stdout gets exactly `listening on http://127.0.0.1:PORT` once the peer
 *   accepts connections, then only answers to `stats`;
 * - a line `stats` (or `stats gc`: after a full garbage collection) on stdin is answered with one line
 *   `stats {"rss","heapUsed","cpuUser","cpuSystem","connections","dropped","closed"}`
 *   (bytes, µs, counts; -1 where the target cannot tell);
 * - SIGTERM (and SIGINT) end the process at once with exit code 0.
 *
 * Flags: `--port N` (0 = any free port), `--send-behavior drop|close|block`
 * (wshub only; others ignore it), `--jwt-secret-file FILE` (require an
 * `Authorization: Bearer` HS256 token signed with the file's bytes, trailing
 * line breaks removed), `--deflate` (agree permessage-deflate when offered:
 * wshub with `perMessageDeflate: true`, ws with serverNoContextTakeover, uws with
 * its SHARED_COMPRESSOR; the others ignore it).
 */
import { readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

/** The host every peer listens on. */
export const HOST = '127.0.0.1';

/** The WebSocket path of the common semantics. */
export const WS_PATH = '/ws';

/** Room used when the URL carries no `room` parameter (wshub's default). */
export const DEFAULT_ROOM = 'default';

export type PeerSendBehavior = 'drop' | 'close' | 'block';

export interface PeerOptions {
  port: number;
  sendBehavior: PeerSendBehavior;
  /** HS256 secret when the JWT handshake variant is asked for. */
  jwtSecret: Buffer | undefined;
  /** Scale-out broker URL (wshub only): redis://… or nats://… */
  broker: string | undefined;
  /** `--deflate`: agree permessage-deflate when a client offers it (each peer its own way). */
  deflate: boolean;
}

/** What a peer can count; each getter returns -1 when the target cannot tell. */
export interface PeerCounters {
  connections(): number;
  dropped(): number;
  closed(): number;
}

/** The JSON object of a `stats` line. */
export interface PeerStats {
  rss: number;
  heapUsed: number;
  cpuUser: number;
  cpuSystem: number;
  connections: number;
  dropped: number;
  closed: number;
}

/**
 * Parses the peer flags from `argv` (default: this process's arguments).
 * Prints a usage error and exits with code 2 on bad input.
 */
export function parsePeerArgs(argv: string[] = process.argv.slice(2)): PeerOptions {
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        port: { type: 'string', default: '0' },
        'send-behavior': { type: 'string', default: 'drop' },
        'jwt-secret-file': { type: 'string' },
        broker: { type: 'string' },
        deflate: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad --port ${values.port}`);
    const sendBehavior = values['send-behavior'];
    if (sendBehavior !== 'drop' && sendBehavior !== 'close' && sendBehavior !== 'block') {
      throw new Error(`bad --send-behavior ${sendBehavior}`);
    }
    const file = values['jwt-secret-file'];
    return {
      port,
      sendBehavior,
      jwtSecret: file === undefined ? undefined : readSecret(file),
      broker: values.broker,
      deflate: values.deflate === true,
    };
  } catch (error) {
    process.stderr.write(
      `${error instanceof Error ? error.message : String(error)}\n` +
        'usage: <peer>.ts [--port N] [--send-behavior drop|close|block] [--jwt-secret-file FILE] [--broker URL] [--deflate]\n',
    );
    process.exit(2);
  }
}

/** Reads a secret file: its bytes without trailing CR/LF. */
function readSecret(file: string): Buffer {
  const bytes = readFileSync(file);
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d)) end--;
  if (end === 0) throw new Error(`--jwt-secret-file ${file} is empty`);
  return bytes.subarray(0, end);
}

/**
 * Announces readiness (the `listening on` line), starts answering `stats`
 * on stdin and installs the signal handlers. Call once, when listening.
 */
export function peerReady(port: number, counters: PeerCounters): void {
  process.stdout.write(`listening on http://${HOST}:${port}\n`);
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  lines.on('line', (line) => {
    const command = line.trim();
    if (command !== 'stats' && command !== 'stats gc') return;
    // `stats gc`: a full collection first (the peer runs with --expose-gc), for memory figures.
    if (command === 'stats gc') globalThis.gc?.();
    process.stdout.write(`stats ${JSON.stringify(collectStats(counters))}\n`);
  });
  // The orchestrator may close stdin; the peer keeps serving until SIGTERM.
  lines.on('error', () => {});
}

/** Snapshot of memory, CPU and the peer's counters. */
export function collectStats(counters: PeerCounters): PeerStats {
  const memory = process.memoryUsage();
  const cpu = process.cpuUsage();
  return {
    rss: memory.rss,
    heapUsed: memory.heapUsed,
    cpuUser: cpu.user,
    cpuSystem: cpu.system,
    connections: counters.connections(),
    dropped: counters.dropped(),
    closed: counters.closed(),
  };
}

/** Counters for targets that can only count connections. */
export function connectionsOnly(connections: () => number): PeerCounters {
  return { connections, dropped: () => -1, closed: () => -1 };
}

/** Prints `message` on stderr and exits with `code`. */
export function fail(message: string, code = 1): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));

// ---- request helpers (Node http based peers) ---------------------------------

/** The path of a request target, without the query. */
export function pathOf(url: string | undefined): string {
  const target = url ?? '/';
  const q = target.indexOf('?');
  return q < 0 ? target : target.slice(0, q);
}

/** The `room` query parameter of a request target, DEFAULT_ROOM when absent or empty. */
export function roomOf(url: string | undefined): string {
  const target = url ?? '';
  const q = target.indexOf('?');
  if (q < 0) return DEFAULT_ROOM;
  return new URLSearchParams(target.slice(q + 1)).get('room') || DEFAULT_ROOM;
}

/** Answers a refused upgrade on the raw socket and closes it. */
export function refuseUpgrade(socket: Duplex, status: 401 | 403 | 404, reason: string): void {
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/** Checks an Authorization header value; resolves true for a valid HS256 bearer token. */
export type BearerCheck = (authorization: string | undefined) => Promise<boolean>;

/**
 * Builds the JWT check of the handshake variant with jose's jwtVerify
 * (HS256 only, `exp`/`nbf` enforced). jose is loaded only when a secret is
 * given. The key is a WebCrypto CryptoKey imported once, as wshub hands it to
 * jose: given a KeyObject or bytes, jose would import the key again for every
 * token, and the peers would pay a cost wshub does not.
 */
export async function bearerCheck(secret: Buffer): Promise<BearerCheck> {
  const { jwtVerify } = await import('jose');
  const { webcrypto } = await import('node:crypto');
  const key = await webcrypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256' }, false, [
    'verify',
  ]);
  const options = { algorithms: ['HS256'] };
  return async (authorization) => {
    const token = bearerToken(authorization);
    if (token === undefined) return false;
    try {
      await jwtVerify(token, key, options);
      return true;
    } catch {
      return false;
    }
  };
}

/** The token of an `Authorization: Bearer` header value, or undefined. */
export function bearerToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const match = /^bearer\s+(\S+)\s*$/i.exec(authorization);
  return match?.[1];
}
