// The server every interop test talks to (`wshub echo`) and the inputs they
// share, so that all clients are held to the same cases.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { startCli, type RunningCli } from '../helpers/cli.ts';

/** Starts `wshub echo` on a free loopback port; call `stop()` on the result when done. */
export async function startEchoServer(): Promise<RunningCli> {
  return startCli(['echo', '--host', '127.0.0.1', '--port', '0']);
}

/** Text messages with 2-, 3- and 4-byte UTF-8 sequences, an empty one, and a long one. */
export const TEXT_SAMPLES: readonly string[] = [
  'hello',
  'grüße, señor — ½ € ✓',
  'こんにちは世界 😀🎉 👩🏽‍💻',
  '',
  'x'.repeat(70_000) + '∑',
];

/** Binary sizes around the 7-bit, 16-bit and 64-bit length encodings, up to 1 MiB. */
export const BINARY_SIZES: readonly number[] = [0, 1, 125, 126, 65_535, 65_536, 1024 * 1024];

/** Random bytes of the given size (random so that any corruption shows). */
export function randomPayload(size: number): Buffer {
  return randomBytes(size);
}

/** How many messages the ordering test sends back to back. */
export const ORDERED_COUNT = 100;

/** The n-th message of the ordering test. */
export function orderedMessage(n: number): string {
  return `message #${n}`;
}

/** Close code and reason the client sends. */
export const CLOSE_CODE = 4000;
export const CLOSE_REASON = 'bye from the client ✓';
/**
 * The reason in the server's answering close frame: wshub echoes the peer's
 * code (as RFC 6455 §5.5.1 suggests) and its reason.
 */
export const ECHOED_CLOSE_REASON = CLOSE_REASON;

/** Subprotocols offered in preference order; the echo server picks the first. */
export const OFFERED_PROTOCOLS: readonly string[] = ['chat.v2', 'chat.v1'];
export const EXPECTED_PROTOCOL = 'chat.v2';

/** A connected client of any library: its selected subprotocol, and a clean close. */
export interface ProtocolClient {
  ws: { protocol: string };
  dispose(): Promise<void>;
}

/**
 * Registers the subprotocol checks shared by the clients whose API exposes
 * the selected protocol: the first offered one is selected, and none when
 * none is offered.
 */
export function subprotocolTests(
  url: () => string,
  connect: (url: string, protocols?: string[]) => Promise<ProtocolClient>,
  options: { timeout: number },
): void {
  test('the first offered subprotocol is selected', options, async () => {
    const client = await connect(url(), [...OFFERED_PROTOCOLS]);
    try {
      assert.equal(client.ws.protocol, EXPECTED_PROTOCOL);
    } finally {
      await client.dispose();
    }
  });

  test('no subprotocol is selected when none is offered', options, async () => {
    const client = await connect(url());
    try {
      assert.equal(client.ws.protocol, '');
    } finally {
      await client.dispose();
    }
  });
}
