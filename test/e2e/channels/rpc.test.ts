/**
 * RPC and send end to end with the official SDK: the `onRpc` hook's data,
 * its protocol errors, its failures (100, logged), no hook (108), a hook
 * that never answers (100 after hookTimeout, later commands still
 * answered), and `send` reaching `onSend` with the sender's user and id.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { ReplyErrorException, type Json } from '../../../src/channels/protocol.ts';
import type { ChannelClient } from '../../../src/channels/session.ts';
import type { LogEntry } from '../../../src/server/server.ts';
import { cleanupHubs } from '../server/harness.ts';
import {
  channelLimits,
  closeClients,
  closeRawClients,
  connected,
  connectionToken,
  rawChannelClient,
  sdkClient,
  startChannelHub,
  within,
} from './sdk.ts';

afterEach(async () => {
  closeClients();
  closeRawClients();
  await cleanupHubs();
});

/** The rejection of `promise`. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail('expected a rejection');
}

describe('channel rpc and send', () => {
  it('answers rpc with what onRpc returns, for the method and data sent', async () => {
    const seen: [string, Json | undefined, string][] = [];
    const hub = await startChannelHub({
      channelHooks: {
        onRpc: ({ client, method, data }) => {
          seen.push([method, data, client.user]);
          return Promise.resolve({ method, echo: data ?? null });
        },
      },
    });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    assert.deepEqual(await client.rpc('sum', { a: [1, 2] }), {
      data: { method: 'sum', echo: { a: [1, 2] } },
    });
    assert.deepEqual(await client.rpc('none', null), { data: { method: 'none', echo: null } });
    assert.deepEqual(seen, [
      ['sum', { a: [1, 2] }, 'alice'],
      ['none', null, 'alice'],
    ]);
  });

  it('answers an rpc whose hook returns nothing with empty data', async () => {
    const hub = await startChannelHub({ channelHooks: { onRpc: () => undefined } });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    assert.deepEqual(await client.rpc('void', {}), { data: undefined });
  });

  it('passes an application error of the hook (code and message) to the client', async () => {
    const hub = await startChannelHub({
      channelHooks: {
        onRpc: ({ method }) => {
          if (method === 'fail') throw new ReplyErrorException({ code: 1000, message: 'no such order' });
          return 'ok';
        },
      },
    });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    assert.deepEqual(await rejection(client.rpc('fail', {})), {
      code: 1000,
      message: 'no such order',
      temporary: false,
    });
    assert.equal(client.state, 'connected');
    assert.deepEqual(await client.rpc('next', {}), { data: 'ok' });
  });

  it('answers a hook that throws a plain Error with 100, logs it, and keeps the connection', async () => {
    const hub = await startChannelHub({
      channelHooks: {
        onRpc: ({ method }) => {
          if (method === 'boom') throw new Error('database on fire');
          return 'ok';
        },
      },
    });
    const logged: LogEntry[] = [];
    hub.ws.log = (entry) => logged.push(entry);
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    const { client: id } = await connected(client);
    assert.deepEqual(await rejection(client.rpc('boom', {})), {
      code: 100,
      message: 'internal server error',
      temporary: true,
    });
    assert.deepEqual(await client.rpc('next', {}), { data: 'ok' });
    const errors = logged.filter((e) => e.event === 'channel_error');
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.level, 'error');
    assert.equal(errors[0]!.client, id);
    assert.match(String(errors[0]!.error), /database on fire/);
  });

  it('answers 100 (logged) when the hook returns what is not JSON, and keeps the connection', async () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const results: Record<string, unknown> = {
      circular,
      bigint: 10n,
      function: () => 1,
      symbol: Symbol('s'),
    };
    const hub = await startChannelHub({
      channelHooks: { onRpc: ({ method }) => (method in results ? results[method] : method) as Json },
    });
    const logged: LogEntry[] = [];
    hub.ws.log = (entry) => logged.push(entry);
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    for (const method of Object.keys(results)) {
      assert.deepEqual(
        await rejection(client.rpc(method, {})),
        { code: 100, message: 'internal server error', temporary: true },
        method,
      );
    }
    assert.deepEqual(await client.rpc('next', {}), { data: 'next' });
    assert.equal(logged.filter((e) => e.event === 'channel_error').length, 4);
  });

  it('answers rpc with 108 when there is no onRpc hook', async () => {
    const hub = await startChannelHub();
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    assert.deepEqual(await rejection(client.rpc('any', {})), {
      code: 108,
      message: 'not available',
      temporary: false,
    });
    assert.equal(client.state, 'connected');
  });

  it('answers a hook that never resolves with 100 after hookTimeout, then the commands queued behind it', async () => {
    const hub = await startChannelHub({
      channelLimits: channelLimits({ hookTimeout: 300 }),
      channelHooks: { onRpc: ({ method }) => (method === 'hang' ? new Promise<never>(() => {}) : method) },
    });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    await connected(client);
    const started = performance.now();
    const hang = rejection(client.rpc('hang', {})).then((error) => [error, performance.now() - started]);
    const after = client.rpc('after', {}).then((r) => [r, performance.now() - started]);
    const [[error, hangMs], [result, afterMs]] = await within(
      Promise.all([hang, after]),
      3000,
      'both replies',
    );
    assert.deepEqual(error, { code: 100, message: 'internal server error', temporary: true });
    assert.ok((hangMs as number) >= 280 && (hangMs as number) < 1500, `100 after ${String(hangMs)} ms`);
    assert.deepEqual(result, { data: 'after' });
    assert.ok(
      (afterMs as number) >= (hangMs as number) - 5,
      'the queued command is answered after the hung one',
    );
    assert.equal(client.state, 'connected');
  });

  it('delivers send to onSend with the sender’s user and client id, and answers nothing', async () => {
    const sent: [string, string, Json | undefined][] = [];
    let arrived: () => void = () => {};
    const twoArrived = new Promise<void>((resolve) => (arrived = resolve));
    const hub = await startChannelHub({
      channelHooks: {
        onSend: (client: ChannelClient, data) => {
          sent.push([client.user, client.id, data]);
          if (sent.length === 2) arrived();
        },
      },
    });
    const client = sdkClient(hub, { token: await connectionToken('alice') });
    const { client: id } = await connected(client);
    await client.send({ hello: 1 });
    await client.send('two');
    await within(twoArrived, 3000, 'two sends');
    assert.deepEqual(sent, [
      ['alice', id, { hello: 1 }],
      ['alice', id, 'two'],
    ]);
  });

  it('sends no reply to a send command, even with an id', async () => {
    const hub = await startChannelHub({ channelHooks: { onSend: () => {}, onRpc: () => 'r' } });
    const raw = await rawChannelClient(hub);
    await raw.connect(await connectionToken('alice'));
    raw.send({ send: { data: 1 } }, { id: 2, send: { data: 2 } }, { id: 3, rpc: { method: 'm' } });
    assert.deepEqual(await raw.reply(3), { id: 3, rpc: { data: 'r' } });
    assert.deepEqual(
      raw.messages.map((m) => m.id),
      [1, 3],
    );
  });
});
