// Interop: Centrifugo's Python server SDK (`cent` 5.2.0, its sync Client,
// driven by cent/client.py) against wshub's server API, every method and a
// wrong key. The interpreter is WSHUB_TEST_PYTHON (set by .ci/run) or
// .venv-test/bin/python; without it the test skips locally and fails in CI.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { handleServerApi } from '../../src/http/server-api.ts';
import { CENT_TIMEOUT_MS, requireCent, runCent, type CentOutput, type CentStep } from './cent/run.ts';
import { FakeChannelApi } from '../helpers/fake-channel-api.ts';
import { closeServer, trackSockets } from '../helpers/leaks.ts';

// Passed as --key=…: a key starting with '-' would otherwise read as an option.
const KEY = randomBytes(32).toString('base64url');
const limits = { timeout: CENT_TIMEOUT_MS };

const CHANNELS = { history: 'chat:h', presence: 'chat:p', plain: 'news', unknown: 'nope:x' };

type Step = CentStep;
type Output = CentOutput;

let server: Server;
let fake: FakeChannelApi;
let url: string;

beforeEach(async () => {
  fake = new FakeChannelApi({ namespaces: ['chat'], history: ['chat'], presence: ['chat'] });
  server = trackSockets(
    createServer(
      (request, response) => void handleServerApi(request, response, { api: fake, key: Buffer.from(KEY) }),
    ),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`;
});

afterEach(() => closeServer(server));

function step(output: Output, name: string): Step {
  const found = output.steps.find((s) => s.name === name);
  assert.ok(found, `no step ${name}`);
  return found;
}

function result(output: Output, name: string): Record<string, unknown> {
  const s = step(output, name);
  assert.ok(s.result, `${name} did not succeed: ${JSON.stringify(s)}`);
  return s.result;
}

function dataOf(history: Record<string, unknown>): unknown[] {
  return (history['publications'] as Array<{ data: unknown }>).map((p) => p.data);
}

describe('Python cent 5.2.0 against the server API', requireCent(), () => {
  test('every method through the SDK, with the results and refusals it parses', limits, async () => {
    fake.connect('c1', 'alice', [CHANNELS.presence]);
    fake.connect('c2', 'alice', [CHANNELS.presence]);
    fake.connect('c3', 'bob', [CHANNELS.presence, 'chat:q']);
    const output = await runCent([
      'calls',
      ...['--url', url, `--key=${KEY}`],
      ...['--history-channel', CHANNELS.history, '--presence-channel', CHANNELS.presence],
      ...['--plain-channel', CHANNELS.plain, '--unknown-channel', CHANNELS.unknown],
      ...['--user', 'alice', '--client', 'c1'],
    ]);
    assert.equal(output.cent_version, '5.2.0');

    const published = result(output, 'publish');
    assert.equal(published['offset'], 1);
    const epoch = published['epoch'];
    assert.ok(typeof epoch === 'string' && epoch !== '');
    assert.deepEqual(result(output, 'publish_skip_history'), { offset: 2, epoch });

    assert.deepEqual(result(output, 'broadcast')['responses'], [
      { error: null, result: { offset: 3, epoch } },
      { error: { code: 102, message: 'unknown channel' }, result: null },
      // A channel without history: no position, which the SDK reads as its defaults.
      { error: null, result: { offset: 0, epoch: '' } },
    ]);

    const history = result(output, 'history');
    assert.deepEqual(dataOf(history), [{ text: 'hello' }, { text: 'to all' }], 'skip_history kept out');
    assert.deepEqual(history['publications'], [
      { data: { text: 'hello' }, offset: 1, tags: { kind: 'greeting' }, info: null },
      { data: { text: 'to all' }, offset: 3, tags: null, info: null },
    ]);
    assert.deepEqual({ offset: history['offset'], epoch: history['epoch'] }, { offset: 3, epoch });
    assert.deepEqual(dataOf(result(output, 'history_since_reverse')), [{ text: 'to all' }]);
    assert.deepEqual(result(output, 'history_position'), { publications: [], offset: 3, epoch });
    assert.deepEqual(result(output, 'history_remove'), {});
    assert.deepEqual(result(output, 'history_after_remove'), { publications: [], offset: 3, epoch });

    const client = (id: string, user: string) => ({ client: id, user, conn_info: null, chan_info: null });
    assert.deepEqual(result(output, 'presence'), {
      presence: { c1: client('c1', 'alice'), c2: client('c2', 'alice'), c3: client('c3', 'bob') },
    });
    assert.deepEqual(result(output, 'presence_stats'), { num_clients: 3, num_users: 2 });
    assert.deepEqual(result(output, 'channels'), {
      channels: { [CHANNELS.presence]: { num_clients: 3 }, 'chat:q': { num_clients: 1 } },
    });
    assert.deepEqual(result(output, 'channels_pattern'), result(output, 'channels'));
    const nodes = result(output, 'info')['nodes'] as Array<Record<string, unknown>>;
    assert.equal(nodes.length, 1);
    assert.deepEqual(
      { uid: nodes[0]?.['uid'], clients: nodes[0]?.['num_clients'], users: nodes[0]?.['num_users'] },
      { uid: 'fake-node-1', clients: 3, users: 2 },
    );

    assert.deepEqual(result(output, 'unsubscribe'), {});
    assert.deepEqual(fake.unsubscribed, [`c1@${CHANNELS.presence}`, `c2@${CHANNELS.presence}`]);
    assert.deepEqual(result(output, 'presence_after_unsubscribe'), {
      presence: { c3: client('c3', 'bob') },
    });

    assert.deepEqual(result(output, 'disconnect'), {});
    assert.deepEqual(result(output, 'disconnect_default'), {});
    assert.deepEqual(Object.fromEntries(fake.disconnected), {
      c1: { code: 4100, reason: 'bye from cent' },
      c2: { code: 3503, reason: 'force disconnect' },
    });

    assert.deepEqual(step(output, 'publish_unknown').error, { code: 102, message: 'unknown channel' });
    assert.equal(step(output, 'presence_unavailable').error?.code, 108);
    const b64 = step(output, 'publish_b64data').error;
    assert.equal(b64?.code, 107);
    assert.match(b64?.message ?? '', /b64data is not supported/);
    assert.equal(output.steps.length, 20, 'every step reported');
  });

  test('a wrong key: the SDK raises CentUnauthorizedError and nothing runs', limits, async () => {
    const output = await runCent([
      'wrong-key',
      ...['--url', url, `--key=${randomBytes(32).toString('base64url')}`],
      ...['--history-channel', CHANNELS.history],
    ]);
    assert.deepEqual(output.steps, [{ name: 'publish', raised: 'CentUnauthorizedError' }]);
    assert.deepEqual(fake.calls, []);
  });
});
