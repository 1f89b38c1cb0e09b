/**
 * Peer `line-rate`: the load generator's self-test server. It does nothing
 * but the WebSocket handshake (by hand, like bare-net) and, once
 * `--subscribers N` connections are upgraded, writes one pre-built buffer of
 * whole binary frames to every one of them, again and again, as fast as each
 * socket takes it (the next write when the previous one has been handed to
 * the kernel), for `--seconds S`. Then it stops writing and keeps the sockets
 * open. Whatever the clients send is read and dropped.
 *
 * Each frame carries `--payload B` bytes (≥ 16): a float64 LE send time of
 * 0 and a uint32 LE sequence number, like a fan-out message, then filler. A
 * frame counts as sent once the write holding it has completed, so after the
 * writing stops and the clients have drained their sockets, the frames they
 * counted must equal `framesSent` exactly.
 *
 * Flow control, so that the kernel's socket buffers do not pile up gigabytes
 * the clients then need many seconds to drain: after every 4 KiB of frames
 * (or every write, when a write is larger) the server sends a ping (empty
 * payload), and it stops writing to a socket while MAX_UNANSWERED_PINGS of
 * its pings wait for their pong. At most two pings' worth of frames (8 KiB,
 * or two writes) per connection are therefore on their way at any time, so
 * the clients always have frames to read and never a long backlog.
 *
 * stdout: the `listening on` line, then `stats {…}` answers (see common.ts)
 * with two more fields: `framesSent` (completed) and `writing` (true while
 * the writes go on or have not finished).
 *
 * Run: node --import tsx bench/peers/line-rate.ts --port 0 --subscribers N
 *        [--payload 64] [--seconds 5] [--write-bytes 65536]
 */
import { createServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { HOST, collectStats, connectionsOnly, fail } from './common.ts';
import { lineRateFrames } from './line-rate-frames.ts';
import { rawUpgrade } from './raw-upgrade.ts';

const OPCODE_CLOSE = 8;
const OPCODE_PONG = 10;
const PING_FRAME = Buffer.from([0x89, 0x00]);
/** Bytes of frames between two pings (at least one write). */
const BYTES_PER_PING = 4 * 1024;
const MAX_UNANSWERED_PINGS = 2;
/** A client frame larger than this is not what a load generator sends: the connection is closed. */
const MAX_CLIENT_FRAME = 125;

interface LineRateOptions {
  port: number;
  subscribers: number;
  payloadBytes: number;
  seconds: number;
  writeBytes: number;
}

function parseOptions(): LineRateOptions {
  try {
    const { values } = parseArgs({
      options: {
        port: { type: 'string', default: '0' },
        subscribers: { type: 'string' },
        payload: { type: 'string', default: '64' },
        seconds: { type: 'string', default: '5' },
        'write-bytes': { type: 'string', default: '65536' },
      },
      strict: true,
    });
    const int = (name: string, value: string | undefined, min: number, max: number): number => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < min || n > max) throw new Error(`bad --${name} ${value}`);
      return n;
    };
    const seconds = Number(values.seconds);
    if (!(seconds > 0 && seconds <= 600)) throw new Error(`bad --seconds ${values.seconds}`);
    return {
      port: int('port', values.port, 0, 65535),
      subscribers: int('subscribers', values.subscribers, 1, 20_000),
      payloadBytes: int('payload', values.payload, 16, 65_535),
      seconds,
      writeBytes: int('write-bytes', values['write-bytes'], 18, 16 * 1024 * 1024),
    };
  } catch (error) {
    fail(
      `${error instanceof Error ? error.message : String(error)}\n` +
        'usage: line-rate.ts --subscribers N [--port N] [--payload B] [--seconds S] [--write-bytes N]',
      2,
    );
  }
}

const options = parseOptions();
const { buffer, frames: framesPerWrite } = lineRateFrames(options.payloadBytes, options.writeBytes);
const writesPerPing = Math.max(1, Math.ceil(BYTES_PER_PING / buffer.length));

/** A connection's write and pong state. */
interface Stream {
  socket: Socket;
  /** Pings sent and not yet answered. */
  unanswered: number;
  /** Data writes since the last ping. */
  sincePing: number;
  /** Whether a write is outstanding (its callback will go on pumping). */
  busy: boolean;
  /** Unparsed bytes of the client's frames. */
  rest: Buffer;
}

const upgraded: Stream[] = [];
let connections = 0;
let framesSent = 0;
let pendingWrites = 0;
let writing = false;
let started = false;

const onHandshakeData = rawUpgrade((socket, rest) => {
  connections++;
  const stream: Stream = { socket, unanswered: 0, sincePing: 0, busy: false, rest };
  socket.on('close', onClose);
  socket.on('data', (chunk: Buffer) => onClientData(stream, chunk));
  upgraded.push(stream);
  if (!started && upgraded.length >= options.subscribers) start();
});

/**
 * Reads the client's masked frames: pongs release the flow control, a close
 * or anything malformed or oversized ends the connection, the rest is dropped.
 */
function onClientData(stream: Stream, chunk: Buffer): void {
  let data = stream.rest.length === 0 ? chunk : Buffer.concat([stream.rest, chunk]);
  let i = 0;
  while (data.length - i >= 2) {
    const opcode = data[i]! & 0x0f;
    const masked = (data[i + 1]! & 0x80) !== 0;
    const length = data[i + 1]! & 0x7f;
    if (!masked || length > MAX_CLIENT_FRAME || opcode === OPCODE_CLOSE) {
      stream.socket.destroy();
      return;
    }
    if (data.length - i < 6 + length) break;
    i += 6 + length;
    if (opcode === OPCODE_PONG && stream.unanswered > 0) {
      stream.unanswered--;
      if (!stream.busy) pump(stream);
    }
  }
  data = data.subarray(i);
  stream.rest = data.length === 0 ? EMPTY : Buffer.from(data);
}

const EMPTY = Buffer.alloc(0);

function onClose(): void {
  connections--;
}

/**
 * Writes the buffer to the stream again each time the previous write has
 * completed, while writing and while fewer than MAX_UNANSWERED_PINGS pings
 * wait for their pong; a ping follows every `writesPerPing` writes.
 */
function pump(stream: Stream): void {
  const socket = stream.socket;
  if (!writing || socket.destroyed || stream.unanswered >= MAX_UNANSWERED_PINGS) return;
  if (stream.sincePing >= writesPerPing) {
    stream.sincePing = 0;
    stream.unanswered++;
    socket.write(PING_FRAME);
    if (stream.unanswered >= MAX_UNANSWERED_PINGS) return;
  }
  stream.busy = true;
  stream.sincePing++;
  pendingWrites++;
  socket.write(buffer, (error) => {
    pendingWrites--;
    stream.busy = false;
    if (error) return;
    framesSent += framesPerWrite;
    pump(stream);
  });
}

function start(): void {
  started = true;
  writing = true;
  for (const stream of upgraded) pump(stream);
  setTimeout(() => (writing = false), options.seconds * 1000);
}

const server = createServer((socket) => {
  socket.on('error', () => {});
  socket.on('data', onHandshakeData);
});
server.listen(options.port, HOST, () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  process.stdout.write(`listening on http://${HOST}:${port}\n`);
  const counters = connectionsOnly(() => connections);
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  lines.on('line', (line) => {
    const command = line.trim();
    if (command !== 'stats' && command !== 'stats gc') return;
    if (command === 'stats gc') globalThis.gc?.();
    const stats = { ...collectStats(counters), framesSent, writing: writing || pendingWrites > 0 };
    process.stdout.write(`stats ${JSON.stringify(stats)}\n`);
  });
  lines.on('error', () => {});
});
