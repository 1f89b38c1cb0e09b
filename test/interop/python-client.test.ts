// Interop: the Python `websockets` library (run by python_client.py) against `wshub echo`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { requirePythonModule } from '../helpers/binaries.ts';
import {
  BINARY_SIZES,
  CLOSE_CODE,
  CLOSE_REASON,
  ECHOED_CLOSE_REASON,
  EXPECTED_PROTOCOL,
  OFFERED_PROTOCOLS,
  ORDERED_COUNT,
  TEXT_SAMPLES,
  orderedMessage,
  randomPayload,
  startEchoServer,
} from './echo-fixture.ts';

// The system interpreter, where the python3-websockets package installs the module.
const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./python_client.py', import.meta.url));
const limits = { timeout: 15_000 };

type Observed = { type: 'text'; text: string } | { type: 'binary'; base64: string };

/** Runs one scenario of python_client.py and resolves with the JSON it printed. */
async function runPython<T>(request: Record<string, unknown>): Promise<T> {
  const child = spawn(PYTHON, [SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const timer = setTimeout(() => child.kill('SIGKILL'), limits.timeout - 2_000);
  child.stdin.end(JSON.stringify(request));
  const [code, signal] = await exited;
  clearTimeout(timer);
  if (code !== 0) {
    throw new Error(`python_client.py exited with ${code ?? signal}: ${stdout} ${stderr}`.trim());
  }
  return JSON.parse(stdout) as T;
}

function text(value: string): Observed {
  return { type: 'text', text: value };
}

describe(
  'Python websockets client against wshub echo',
  requirePythonModule(PYTHON, 'websockets', 'python3-websockets'),
  () => {
    let server: Awaited<ReturnType<typeof startEchoServer>>;
    before(async () => {
      server = await startEchoServer();
    });
    after(async () => {
      await server?.stop();
    });

    test('text messages, including non-ASCII, come back as the same text', limits, async () => {
      const result = await runPython<{ received: Observed[] }>({
        url: `${server.wsUrl}/any/path`,
        scenario: 'echo',
        texts: TEXT_SAMPLES,
      });
      assert.deepEqual(result.received, TEXT_SAMPLES.map(text));
    });

    test('binary messages up to 1 MiB come back byte for byte', limits, async () => {
      const payloads = BINARY_SIZES.map(randomPayload);
      const result = await runPython<{ received: Observed[] }>({
        url: server.wsUrl,
        scenario: 'echo',
        binaries: payloads.map((p) => p.toString('base64')),
      });
      assert.equal(result.received.length, payloads.length);
      result.received.forEach((reply, i) => {
        const sent = payloads[i] ?? Buffer.alloc(0);
        assert.equal(reply.type, 'binary', `opcode must stay binary (size ${sent.length})`);
        const bytes = Buffer.from(reply.type === 'binary' ? reply.base64 : '', 'base64');
        assert.equal(bytes.length, sent.length);
        assert.ok(bytes.equals(sent), `payload of ${sent.length} bytes differs`);
      });
    });

    test(`${ORDERED_COUNT} messages sent back to back come back in order`, limits, async () => {
      const sent = Array.from({ length: ORDERED_COUNT }, (_, i) => orderedMessage(i));
      const result = await runPython<{ received: Observed[] }>({
        url: server.wsUrl,
        scenario: 'ordered',
        texts: sent,
      });
      assert.deepEqual(result.received, sent.map(text));
    });

    test('a close with a code and reason is answered with the same code and reason', limits, async () => {
      const result = await runPython<{ code: number | null; reason: string }>({
        url: server.wsUrl,
        scenario: 'close',
        code: CLOSE_CODE,
        reason: CLOSE_REASON,
      });
      assert.equal(result.code, CLOSE_CODE);
      assert.equal(result.reason, ECHOED_CLOSE_REASON);
    });

    test('a ping is answered by a pong with the same payload', limits, async () => {
      const result = await runPython<{ pong: boolean; after: Observed }>({
        url: server.wsUrl,
        scenario: 'ping',
        base64: Buffer.from('are you there? ✓').toString('base64'),
      });
      assert.equal(result.pong, true, 'no pong carrying the ping payload arrived');
      assert.deepEqual(result.after, text('after ping'));
    });

    test('the first offered subprotocol is selected', limits, async () => {
      const result = await runPython<{ subprotocol: string | null }>({
        url: server.wsUrl,
        scenario: 'subprotocol',
        protocols: OFFERED_PROTOCOLS,
      });
      assert.equal(result.subprotocol, EXPECTED_PROTOCOL);
    });

    test('no subprotocol is selected when none is offered', limits, async () => {
      const result = await runPython<{ subprotocol: string | null }>({
        url: server.wsUrl,
        scenario: 'subprotocol',
      });
      assert.equal(result.subprotocol, null);
    });
  },
);
