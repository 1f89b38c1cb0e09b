/**
 * Protocol micro-benchmark: frame parsing and message encoding throughput,
 * single-threaded and in-process (no sockets), at 64 B, 1 KiB and 64 KiB
 * payloads.
 *
 * Parse: masked client frames are concatenated into one ~16 MiB buffer that
 * is pushed into a server-side FrameParser whose handlers only count. The
 * parser unmasks in place, so every iteration gets a fresh copy, made
 * outside the timed region.
 *
 * Encode: encodeMessage (server side, unmasked) of the same amount of payload,
 * as binary (Buffer) and as text (string, written as UTF-8).
 *
 * Each case runs warm-up iterations, then timed ones; the table gives the
 * median with the min–max range. MB/s counts payload bytes (1 MB = 10^6 B).
 *
 * Run: npm run bench:protocol
 */
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { FrameParser } from '../src/protocol/parser.ts';
import { Opcode, encodeFrame, encodeMessage, type DataOpcode } from '../src/protocol/frame.ts';

const SIZES = [64, 1024, 64 * 1024];
const TARGET_BYTES = 16 * 1024 * 1024;
const WARMUP = 3;
const ITERATIONS = 15;

interface Result {
  operation: string;
  size: number;
  frames: number;
  /** Seconds per iteration, one entry per timed iteration. */
  seconds: number[];
}

/** Runs `body` WARMUP + ITERATIONS times; `prepare` runs untimed before each. */
function measure(prepare: () => void, body: () => void): number[] {
  const seconds: number[] = [];
  for (let i = 0; i < WARMUP + ITERATIONS; i++) {
    prepare();
    const start = performance.now();
    body();
    const elapsed = (performance.now() - start) / 1000;
    if (i >= WARMUP) seconds.push(elapsed);
  }
  return seconds;
}

/** A payload of `size` printable ASCII bytes (valid for both text and binary). */
function payloadOf(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = 0x20 + ((i * 7) % 95);
  return b;
}

function benchParse(opcode: DataOpcode, size: number): Result {
  const payload = payloadOf(size);
  const count = Math.max(1, Math.floor(TARGET_BYTES / size));
  const frames: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    // Varying keys so unmasking does real work on every frame.
    const mask = Buffer.from([i & 0xff, (i >> 8) & 0xff, 0x5a, 0xa5]);
    frames.push(encodeFrame(opcode, payload, { mask }));
  }
  const pristine = Buffer.concat(frames);
  const work = Buffer.allocUnsafe(pristine.length);
  let messages = 0;
  let bytes = 0;
  const noop = (): void => {};
  const seconds = measure(
    () => {
      pristine.copy(work);
      messages = 0;
      bytes = 0;
    },
    () => {
      const parser = new FrameParser(
        {
          onMessage: (_opcode, data) => {
            messages++;
            bytes += data.length;
          },
          onPing: noop,
          onPong: noop,
          onClose: noop,
          onError: (e) => {
            throw e;
          },
        },
        { maxMessageSize: 0, expectMasked: true },
      );
      parser.push(work);
    },
  );
  // Guard against measuring a parser that silently skipped work.
  if (messages !== count || bytes !== count * size) {
    throw new Error(`parse ${size}: got ${messages} messages / ${bytes} bytes, expected ${count}`);
  }
  return {
    operation: `parse ${opcode === Opcode.TEXT ? 'text' : 'binary'} (masked)`,
    size,
    frames: count,
    seconds,
  };
}

function benchEncode(opcode: DataOpcode, size: number): Result {
  const payload = payloadOf(size);
  const text = payload.toString('latin1');
  const count = Math.max(1, Math.floor(TARGET_BYTES / size));
  let wire = 0;
  const seconds = measure(
    () => {
      wire = 0;
    },
    opcode === Opcode.TEXT
      ? () => {
          for (let i = 0; i < count; i++) wire += encodeMessage(Opcode.TEXT, text).length;
        }
      : () => {
          for (let i = 0; i < count; i++) wire += encodeMessage(Opcode.BINARY, payload).length;
        },
  );
  if (wire < count * size) throw new Error(`encode ${size}: wrote ${wire} bytes`);
  return { operation: `encode ${opcode === Opcode.TEXT ? 'text' : 'binary'}`, size, frames: count, seconds };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function formatSize(size: number): string {
  return size >= 1024 ? `${size / 1024} KiB` : `${size} B`;
}

function formatNumber(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(0);
}

/** "median (min–max)" of `rate(seconds)` over the iterations; faster iterations give the max. */
function rateCell(seconds: number[], perIteration: number, format: (n: number) => string): string {
  const rates = seconds.map((s) => perIteration / s);
  return `${format(median(rates))} (${format(Math.min(...rates))}–${format(Math.max(...rates))})`;
}

function main(): void {
  // Recorded because other processes on the machine skew single-core figures.
  const loadBefore = loadavg()[0]!;
  const started = performance.now();
  const results: Result[] = [];
  for (const size of SIZES) {
    results.push(benchParse(Opcode.BINARY, size));
    results.push(benchParse(Opcode.TEXT, size));
    results.push(benchEncode(Opcode.BINARY, size));
    results.push(benchEncode(Opcode.TEXT, size));
  }
  const cpu = cpus();
  const machine =
    `Machine: ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${cpu.length} cores; ` +
    `Node ${process.version}; ${new Date().toISOString().slice(0, 10)}; ` +
    `load average ${loadBefore.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after`;
  const lines = [
    machine,
    `Iterations: ${WARMUP} warm-up + ${ITERATIONS} timed, ~${TARGET_BYTES / (1024 * 1024)} MiB of payload each; median (min–max).`,
    '',
    '| Operation | Payload | Frames / iteration | MB/s | frames/s |',
    '| --- | --- | ---: | ---: | ---: |',
  ];
  for (const r of results) {
    const mb = rateCell(r.seconds, (r.frames * r.size) / 1e6, (n) => n.toFixed(0));
    const fps = rateCell(r.seconds, r.frames, formatNumber);
    lines.push(`| ${r.operation} | ${formatSize(r.size)} | ${r.frames} | ${mb} | ${fps} |`);
  }
  lines.push('', `Total time: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  console.log(lines.join('\n'));
}

main();
