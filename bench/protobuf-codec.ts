/**
 * Protobuf codec micro-benchmark: wshub's hand-written codec of the channel
 * protocol against protobufjs (the library the SDK's protobuf build uses),
 * on the two hot paths, single-threaded and in-process:
 *
 * - pub push: one publication push for the fan-out, as the node builds it
 *   once per publication (the publisher's ClientInfo, kept encoded by
 *   wshub and kept parsed for protobufjs, then the delimited
 *   Reply{push{channel, pub{data, info, offset}}}); also wshub's general
 *   encoder (from the publication's JSON, as replies use it) for reference.
 * - publish decode: a binary frame with one Command{id, publish{channel,
 *   data}} decoded to its fields.
 *
 * protobufjs gets the same messages as a schema parsed at start (reflection
 * with its generated encoders and decoders). Each case runs in rounds,
 * alternating between the codecs, so machine noise falls on both; the
 * table gives ns per operation, median and min–max over the rounds.
 *
 * Run: npm run bench:protobuf
 */
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import protobuf from 'protobufjs';
import {
  clientInfoBytes,
  decodeProtobufCommands,
  encodePubPush,
  encodePush,
} from '../src/channels/protobuf-codec.ts';

const ROUNDS = 15;
const OPS = 50_000;
const DATA_SIZES = [64, 1024];

/** The messages both codecs handle here, with client.proto's field numbers. */
const SCHEMA = `
syntax = "proto3";
message ClientInfo { string user = 1; string client = 2; bytes conn_info = 3; bytes chan_info = 4; }
message Publication { bytes data = 4; ClientInfo info = 5; uint64 offset = 6; map<string, string> tags = 7; }
message Push { string channel = 2; Publication pub = 4; }
message Reply { uint32 id = 1; Push push = 4; }
message PublishRequest { string channel = 1; bytes data = 2; }
message Command { uint32 id = 1; PublishRequest publish = 7; }
`;

const root = protobuf.parse(SCHEMA, { keepCase: true }).root;
const Reply = root.lookupType('Reply');
const Command = root.lookupType('Command');

const CHANNEL = 'chat:general';
const INFO_JSON = JSON.stringify({ user: 'user-42', client: '3f2c9a1e-6d2b-4c47-9a55-0e1f9b7c2d11' });

interface Case {
  name: string;
  run: () => unknown;
}

function measure(run: () => unknown): number {
  const start = performance.now();
  for (let i = 0; i < OPS; i++) run();
  return ((performance.now() - start) * 1e6) / OPS;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function cases(size: number): Case[][] {
  const data = Buffer.from(JSON.stringify({ text: 'x'.repeat(Math.max(0, size - 12)) }).slice(0, size));
  const pubJson = `{"data":${data.toString()},"offset":12345,"info":${INFO_JSON}}`;
  // protobufjs gets the publisher's info parsed once, as wshub keeps its encoding (clientInfoBytes).
  const info = JSON.parse(INFO_JSON) as object;
  const frame = Buffer.from(
    Command.encodeDelimited(Command.create({ id: 7, publish: { channel: CHANNEL, data } })).finish(),
  );
  // Both decoders must see the same: checked once before timing.
  const ours = decodeProtobufCommands(frame, { maxCommandsPerFrame: 100 })[0]!;
  const theirs = Command.toObject(Command.decodeDelimited(frame)) as { publish: { data: Uint8Array } };
  if (!Buffer.from(theirs.publish.data).equals(ours.publish!.data as unknown as Buffer))
    throw new Error('the decoders disagree');
  const fast = encodePubPush(CHANNEL, data, clientInfoBytes(INFO_JSON), 12345, undefined);
  const lib = Reply.encodeDelimited(
    Reply.create({ push: { channel: CHANNEL, pub: { data, info, offset: 12345 } } }),
  ).finish();
  if (!Buffer.from(lib).equals(fast)) throw new Error('the encoders disagree');
  return [
    [
      {
        name: `pub push encode, ${size} B data: wshub`,
        run: () => encodePubPush(CHANNEL, data, clientInfoBytes(INFO_JSON), 12345, undefined),
      },
      {
        name: `pub push encode, ${size} B data: wshub general (from JSON)`,
        run: () => encodePush(CHANNEL, 'pub', pubJson),
      },
      {
        name: `pub push encode, ${size} B data: protobufjs`,
        run: () =>
          Reply.encodeDelimited(
            Reply.create({
              push: {
                channel: CHANNEL,
                pub: { data, info, offset: 12345 },
              },
            }),
          ).finish(),
      },
    ],
    [
      {
        name: `publish decode, ${size} B data: wshub`,
        run: () => decodeProtobufCommands(frame, { maxCommandsPerFrame: 100 }),
      },
      {
        name: `publish decode, ${size} B data: protobufjs`,
        run: () => {
          const reader = protobuf.Reader.create(frame);
          const out: unknown[] = [];
          while (reader.pos < reader.len) out.push(Command.decodeDelimited(reader));
          return out;
        },
      },
    ],
  ];
}

const rows: Array<{ name: string; ns: number[] }> = [];
for (const size of DATA_SIZES) {
  for (const group of cases(size)) {
    const ns = group.map(() => [] as number[]);
    for (const c of group) measure(c.run); // warm-up
    for (let round = 0; round < ROUNDS; round++) group.forEach((c, i) => ns[i]!.push(measure(c.run)));
    group.forEach((c, i) => rows.push({ name: c.name, ns: ns[i]! }));
  }
}

const cpu = cpus()[0]?.model ?? 'unknown';
console.log(
  `node ${process.version}, ${cpus().length} × ${cpu}, load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}, ${new Date().toISOString()}`,
);
console.log(`${ROUNDS} rounds × ${OPS} operations; ns/op median (min–max)\n`);
console.log('| case | ns/op median | min–max |');
console.log('| --- | ---: | ---: |');
for (const row of rows) {
  const min = Math.min(...row.ns);
  const max = Math.max(...row.ns);
  console.log(`| ${row.name} | ${median(row.ns).toFixed(0)} | ${min.toFixed(0)}–${max.toFixed(0)} |`);
}
