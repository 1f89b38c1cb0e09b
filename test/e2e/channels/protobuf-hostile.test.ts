// Hostile input at the channel endpoint in the protobuf encoding: random
// and mutated binary frames from raw `centrifuge-protobuf` connections.
// Malformed frames close with 3501 bad request; nothing fails internally
// (no 3004, no close without a code), and an SDK protobuf client
// connected all along keeps working.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import fc from 'fast-check';
import { Centrifuge as CentrifugeProtobuf } from 'centrifuge/build/protobuf';
import WebSocket from 'ws';
import type { LogEntry } from '../../../src/server/server.ts';
import { cleanupHubs, type RunningHub } from '../server/harness.ts';
import {
  CHANNEL_PATH,
  atLeast,
  closeClients,
  connected,
  connectionToken,
  record,
  sdkProtobufClient,
  startChannelHub,
  subscribed,
  within,
} from './sdk.ts';

afterEach(async () => {
  closeClients();
  await cleanupHubs();
});

/** The SDK's protobuf codec, to write valid commands and read replies. */
interface SdkCodec {
  encodeCommands(commands: unknown[]): Uint8Array;
  decodeReplies(data: Uint8Array): Array<Record<string, unknown>>;
}
const sdk = (new CentrifugeProtobuf('ws://127.0.0.1:1/never') as unknown as { _codec: SdkCodec })._codec;

const SEED = 20261202;
const FRAMES = 300;
const channels = {
  namespaces: [{ name: 'chat', allowSubscribeForClient: true, allowPublishForSubscriber: true }],
};

interface RawProtobuf {
  ws: WebSocket;
  replies: Array<Record<string, unknown>>;
  closed: Promise<{ code: number; reason: string }>;
}

/** A raw `centrifuge-protobuf` connection that records decoded replies and its close. */
async function rawProtobuf(hub: RunningHub): Promise<RawProtobuf> {
  const ws = new WebSocket(hub.url(CHANNEL_PATH), ['centrifuge-protobuf']);
  const replies: Array<Record<string, unknown>> = [];
  ws.on('message', (data: Buffer, binary: boolean) => {
    assert.ok(binary, 'the server writes binary frames only');
    replies.push(...sdk.decodeReplies(data));
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, replies, closed };
}

async function connectedRaw(hub: RunningHub, token: string): Promise<RawProtobuf> {
  const raw = await rawProtobuf(hub);
  raw.ws.send(sdk.encodeCommands([{ id: 1, connect: { token } }]));
  await atLeast(raw.replies, 1);
  assert.ok(raw.replies[0]!.connect, 'connected');
  return raw;
}

describe('protobuf encoding: hostile input', () => {
  it('malformed frames close with 3501; a text frame on a protobuf connection too', async () => {
    const hub = await startChannelHub({ channels });
    const token = await connectionToken('alice');
    const bad: Array<[string, Buffer | string]> = [
      ['length past the end', Buffer.from([0x05, 0x08, 0x01])],
      [
        'oversize varint',
        Buffer.from([0x0b, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
      ],
      ['wrong wire type', Buffer.from([0x02, 0x3a + 2, 0x01])],
      ['invalid UTF-8 channel', Buffer.from([0x08, 0x08, 0x02, 0x3a, 0x04, 0x0a, 0x02, 0xc3, 0x28])],
      ['text frame', '{"id":2,"ping":{}}'],
    ];
    for (const [what, frame] of bad) {
      const raw = await connectedRaw(hub, token);
      raw.ws.send(frame);
      const close = await within(raw.closed, 3000, what);
      assert.deepEqual([what, close.code, close.reason], [what, 3501, 'bad request']);
    }
    // Before connect, too.
    const early = await rawProtobuf(hub);
    early.ws.send(Buffer.from([0x80]));
    assert.equal((await within(early.closed, 3000, 'before connect')).code, 3501);
  });

  it('unknown fields are skipped: a command with them is answered', async () => {
    const hub = await startChannelHub({ channels });
    const raw = await connectedRaw(hub, await connectionToken('alice'));
    // Command{id: 2, 99: varint 1, ping: {}, 98: bytes "zz"}
    raw.ws.send(Buffer.from([0x0c, 0x08, 0x02, 0x98, 0x06, 0x01, 0x5a, 0x00, 0x92, 0x06, 0x02, 0x7a, 0x7a]));
    await atLeast(raw.replies, 2);
    assert.deepEqual([raw.replies[1]!.id, raw.replies[1]!.ping !== null], [2, true]);
    raw.ws.terminate();
  });

  it(`${FRAMES} random and mutated frames: only protocol closes, nothing internal; an SDK client keeps working`, async (t) => {
    const errors: LogEntry[] = [];
    const hub = await startChannelHub({ channels });
    hub.ws.log = (entry) => {
      if (entry.level === 'error') errors.push(entry);
    };
    const token = await connectionToken('fuzz');
    const watcher = sdkProtobufClient(hub, { token: await connectionToken('watcher') });
    await connected(watcher);
    const { sub } = await subscribed(watcher, 'chat:fuzz');
    const valid = Buffer.from(
      sdk.encodeCommands([
        { id: 2, subscribe: { channel: 'chat:fuzz', recover: true, offset: 3, epoch: 'e' } },
        { id: 3, publish: { channel: 'chat:fuzz', data: new Uint8Array([1, 2, 3]) } },
        { id: 4, history: { channel: 'chat:fuzz', limit: 5, since: { offset: 1, epoch: 'x' } } },
        { id: 5, presence: { channel: 'chat:fuzz' } },
        { id: 6, rpc: { method: 'm', data: new Uint8Array([0xff]) } },
      ]),
    );
    const frames = fc.sample(
      fc.oneof(
        fc.uint8Array({ maxLength: 120 }).map((b) => Buffer.from(b)),
        fc
          .tuple(
            fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
            fc.nat(valid.length),
          )
          .map(([flips, cut]) => {
            const frame = Buffer.from(valid.subarray(0, cut));
            for (const [at, value] of flips) if (at < frame.length) frame[at] = value;
            return frame;
          }),
      ),
      { numRuns: FRAMES, seed: SEED },
    );
    const codes = new Map<number, number>();
    let raw = await connectedRaw(hub, token);
    let open = true;
    void raw.closed.then(() => (open = false));
    for (const frame of frames) {
      if (!open) {
        const close = await raw.closed;
        codes.set(close.code, (codes.get(close.code) ?? 0) + 1);
        raw = await connectedRaw(hub, token);
        open = true;
        void raw.closed.then(() => (open = false));
      }
      raw.ws.send(frame);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    raw.ws.terminate();
    t.diagnostic(`protobuf fuzz: ${FRAMES} frames; closes ${JSON.stringify([...codes])}`);
    for (const code of codes.keys()) assert.ok([3501, 3500, 3503].includes(code), `close code ${code}`);
    assert.ok((codes.get(3501) ?? 0) > 0, 'some frames were bad requests');
    assert.deepEqual(errors, []);
    // The watcher was never disturbed and still works.
    assert.equal(watcher.state, 'connected');
    const pubs = record<{ data: Uint8Array }>(sub, 'publication');
    await sub.publish(new Uint8Array([42]));
    await atLeast(pubs, 1);
    assert.deepEqual([...pubs.at(-1)!.data], [42]);
  });
});
