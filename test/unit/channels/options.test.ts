// Channel options and namespaces: defaults, resolution by the first ':',
// no inheritance from the top level, and every refusal naming its key.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../../../src/errors.ts';
import {
  defaultChannelOptions,
  historyEnabled,
  mayPublish,
  mayReadHistory,
  mayReadPresence,
  maySubscribeWithoutToken,
  pushJoinLeave,
  recoveryEnabled,
  type ChannelOptions,
  MAX_HISTORY_SIZE,
  MAX_HISTORY_TTL,
  MAX_NAMESPACES,
  Namespaces,
  type ChannelsConfig,
} from '../../../src/channels/options.ts';

/** Asserts that building Namespaces from `config` throws a ConfigError for `option` whose message matches `message`. */
function refuses(config: unknown, option: string, message?: RegExp): void {
  assert.throws(
    () => new Namespaces(config as ChannelsConfig),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
      assert.equal(error.option, option);
      assert.equal(error.code, 'INVALID_CONFIG');
      if (message) assert.match(error.message, message);
      return true;
    },
  );
}

const history = { historySize: 10, historyTtl: 60_000 };

describe('Namespaces: resolution', () => {
  test('no config: every channel without ":" takes the defaults, any namespace is unknown', () => {
    const ns = new Namespaces();
    assert.deepEqual(ns.resolve('news'), { namespace: '', options: { ...defaultChannelOptions } });
    assert.equal(ns.resolve('chat:room'), null);
    assert.equal(ns.resolve(':x'), null);
    assert.equal(ns.size, 0);
  });

  test('defaults are all off', () => {
    for (const [key, value] of Object.entries(defaultChannelOptions)) {
      assert.ok(value === false || value === 0, `${key} defaults to ${String(value)}`);
    }
    assert.ok(Object.isFrozen(defaultChannelOptions));
  });

  test('top-level options apply to channels without a namespace', () => {
    const ns = new Namespaces({ presence: true, ...history, forceRecovery: true });
    const top = ns.resolve('news');
    assert.ok(top);
    assert.equal(top.namespace, '');
    assert.equal(top.options.presence, true);
    assert.equal(top.options.historySize, 10);
    assert.equal(top.options.historyTtl, 60_000);
    assert.equal(top.options.forceRecovery, true);
    assert.equal(top.options.joinLeave, false);
  });

  test('only the first ":" separates the namespace', () => {
    const ns = new Namespaces({ namespaces: [{ name: 'chat', presence: true }] });
    const hit = ns.resolve('chat:room:42');
    assert.ok(hit);
    assert.equal(hit.namespace, 'chat');
    assert.equal(hit.options.presence, true);
    assert.equal(ns.resolve('chat:'), hit, 'same shared object for every channel of the namespace');
    assert.equal(ns.resolve('room:chat:1'), null);
    assert.equal(ns.resolve('Chat:room'), null, 'names are case-sensitive');
  });

  test('a namespace does not inherit the top-level options', () => {
    const ns = new Namespaces({ presence: true, allowSubscribeForClient: true, namespaces: [{ name: 'a' }] });
    assert.deepEqual(ns.resolve('a:x')?.options, { ...defaultChannelOptions });
    assert.equal(ns.resolve('x')?.options.presence, true);
  });

  test('resolved options are frozen and the config passed in is not kept', () => {
    const config: ChannelsConfig = { namespaces: [{ name: 'a', presence: true }] };
    const ns = new Namespaces(config);
    const hit = ns.resolve('a:1');
    assert.ok(hit);
    assert.ok(Object.isFrozen(hit));
    assert.ok(Object.isFrozen(hit.options));
    assert.throws(() => {
      (hit.options as { presence: boolean }).presence = false;
    }, TypeError);
    config.namespaces![0]!.presence = false;
    assert.equal(ns.resolve('a:1')?.options.presence, true);
  });

  test('toJSON gives every option filled in, namespaces included, and copies', () => {
    const ns = new Namespaces({
      presence: true,
      namespaces: [{ name: 'h', ...history, allowRecovery: true }],
    });
    const json = ns.toJSON();
    assert.deepEqual(json, {
      ...defaultChannelOptions,
      presence: true,
      namespaces: [{ name: 'h', ...defaultChannelOptions, ...history, allowRecovery: true }],
    });
    const first = json.namespaces?.[0];
    assert.ok(first);
    first.historySize = 1;
    assert.equal(ns.resolve('h:x')?.options.historySize, 10);
    const again = JSON.parse(JSON.stringify(ns.toJSON())) as ChannelsConfig;
    assert.deepEqual(new Namespaces(again).toJSON(), ns.toJSON(), 'toJSON reads back as the same config');
    assert.deepEqual(new Namespaces().toJSON(), { ...defaultChannelOptions });
  });

  test('resolving a long channel name costs one search and one lookup', () => {
    const ns = new Namespaces({
      namespaces: Array.from({ length: MAX_NAMESPACES }, (_, i) => ({ name: `n${i}` })),
    });
    const long = 'n1023:' + 'x'.repeat(100_000);
    const start = performance.now();
    for (let i = 0; i < 1000; i++) assert.equal(ns.resolve(long)?.namespace, 'n1023');
    // 1000 lookups of a 100 kB channel: a scan of all namespaces or a regex would be far slower.
    assert.ok(performance.now() - start < 2000);
  });
});

describe('Namespaces: refusals name the key', () => {
  test('the config must be an object; namespaces an array of objects', () => {
    refuses(null, 'channels');
    refuses([], 'channels');
    refuses('x', 'channels');
    refuses({ namespaces: {} }, 'channels.namespaces', /array/);
    refuses({ namespaces: [null] }, 'channels.namespaces[0]');
    refuses({ namespaces: [{ name: 'a' }, 'b'] }, 'channels.namespaces[1]');
  });

  test('unknown keys, with a hint for snake_case', () => {
    refuses({ foo: 1 }, 'channels.foo', /unknown option/);
    refuses({ history_size: 1 }, 'channels.history_size', /did you mean "historySize"/);
    refuses(
      { namespaces: [{ name: 'a' }, { name: 'b', join_leave: true }] },
      'channels.namespaces[1].join_leave',
      /joinLeave/,
    );
    refuses({ namespaces: [{ name: 'a', namespaces: [] }] }, 'channels.namespaces[0].namespaces');
    refuses({ name: 'top' }, 'channels.name');
  });

  test('wrong types', () => {
    refuses({ presence: 'yes' }, 'channels.presence', /true or false/);
    refuses({ presence: 1 }, 'channels.presence');
    refuses({ allowHistoryForAnonymous: null }, 'channels.allowHistoryForAnonymous');
    refuses({ historySize: '10', historyTtl: 1000 }, 'channels.historySize', /whole number/);
    refuses({ namespaces: [{ name: 'a', historyTtl: true }] }, 'channels.namespaces[0].historyTtl');
  });

  test('negative, fractional and non-finite numbers', () => {
    refuses({ historySize: -1, historyTtl: 1000 }, 'channels.historySize');
    refuses({ historySize: 1.5, historyTtl: 1000 }, 'channels.historySize');
    refuses({ historySize: 10, historyTtl: Number.NaN }, 'channels.historyTtl');
    refuses({ historySize: 10, historyTtl: Infinity }, 'channels.historyTtl');
    refuses(
      { namespaces: [{ name: 'a' }, { name: 'b' }, { name: 'c', historySize: -5 }] },
      'channels.namespaces[2].historySize',
    );
  });

  test('upper bounds on history', () => {
    new Namespaces({ historySize: MAX_HISTORY_SIZE, historyTtl: MAX_HISTORY_TTL });
    refuses({ historySize: MAX_HISTORY_SIZE + 1, historyTtl: 1000 }, 'channels.historySize', /100000/);
    refuses({ historySize: 1, historyTtl: MAX_HISTORY_TTL + 1 }, 'channels.historyTtl', /30 days/);
  });

  test('history needs both size and ttl', () => {
    refuses({ historySize: 10 }, 'channels.historyTtl', /both/);
    refuses({ historyTtl: 1000 }, 'channels.historySize', /both/);
    refuses(
      { namespaces: [{ name: 'a', historySize: 5, historyTtl: 0 }] },
      'channels.namespaces[0].historyTtl',
    );
  });

  test('recovery needs history', () => {
    refuses({ forceRecovery: true }, 'channels.forceRecovery', /history/);
    refuses({ allowRecovery: true }, 'channels.allowRecovery', /history/);
    refuses(
      { ...history, namespaces: [{ name: 'a', forceRecovery: true }] },
      'channels.namespaces[0].forceRecovery',
    );
    new Namespaces({ ...history, forceRecovery: true, allowRecovery: true });
  });

  test('namespace names: pattern, length, duplicates', () => {
    refuses({ namespaces: [{}] }, 'channels.namespaces[0].name');
    refuses({ namespaces: [{ name: '' }] }, 'channels.namespaces[0].name');
    refuses({ namespaces: [{ name: 'a:b' }] }, 'channels.namespaces[0].name');
    refuses({ namespaces: [{ name: 'a b' }] }, 'channels.namespaces[0].name');
    refuses({ namespaces: [{ name: 'é' }] }, 'channels.namespaces[0].name');
    refuses({ namespaces: [{ name: 'x'.repeat(65) }] }, 'channels.namespaces[0].name');
    refuses({ namespaces: [{ name: 7 }] }, 'channels.namespaces[0].name');
    refuses(
      { namespaces: [{ name: 'a' }, { name: 'b' }, { name: 'a' }] },
      'channels.namespaces[2].name',
      /duplicate/,
    );
    const ok = new Namespaces({ namespaces: [{ name: 'A-z_0.9' }, { name: 'x'.repeat(64) }] });
    assert.equal(ok.resolve('A-z_0.9:q')?.namespace, 'A-z_0.9');
  });

  test('at most 1024 namespaces', () => {
    const names = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `ns${i}` }));
    assert.equal(new Namespaces({ namespaces: names(MAX_NAMESPACES) }).size, MAX_NAMESPACES);
    refuses({ namespaces: names(MAX_NAMESPACES + 1) }, 'channels.namespaces', /1024/);
  });

  test('a huge bad value is shortened in the message', () => {
    assert.throws(
      () => new Namespaces({ namespaces: [{ name: 'x'.repeat(100_000) }] }),
      (error: unknown) => error instanceof ConfigError && error.message.length < 300,
    );
  });
});

describe('what the options allow', () => {
  const opts = (o: Partial<ChannelOptions>): ChannelOptions => ({ ...defaultChannelOptions, ...o });
  const user = { anonymous: false, subscribed: false };
  const subscriber = { anonymous: false, subscribed: true };
  const anon = { anonymous: true, subscribed: false };
  const anonSubscriber = { anonymous: true, subscribed: true };

  test('nothing is allowed by default', () => {
    const o = opts({});
    for (const who of [user, subscriber, anon, anonSubscriber]) {
      assert.equal(mayPublish(o, who), false);
      assert.equal(mayReadHistory(o, who), false);
      assert.equal(mayReadPresence(o, who), false);
    }
    assert.equal(maySubscribeWithoutToken(o, false), false);
    assert.equal(historyEnabled(o), false);
    assert.equal(recoveryEnabled(o, true, false), false);
    assert.equal(pushJoinLeave(o, true, false), false);
  });

  test('ForClient lets any client with a user; ForSubscriber only subscribers; ForAnonymous extends both', () => {
    const table: [Partial<ChannelOptions>, boolean[]][] = [
      // [options, [user, subscriber, anon, anonSubscriber]]
      [{ allowPublishForClient: true }, [true, true, false, false]],
      [{ allowPublishForSubscriber: true }, [false, true, false, false]],
      [{ allowPublishForAnonymous: true }, [false, false, false, false]],
      [{ allowPublishForClient: true, allowPublishForAnonymous: true }, [true, true, true, true]],
      [{ allowPublishForSubscriber: true, allowPublishForAnonymous: true }, [false, true, false, true]],
    ];
    for (const [o, want] of table) {
      const got = [user, subscriber, anon, anonSubscriber].map((who) => mayPublish(opts(o), who));
      assert.deepEqual(got, want, JSON.stringify(o));
    }
    assert.equal(mayReadHistory(opts({ allowHistoryForSubscriber: true }), subscriber), true);
    assert.equal(mayReadHistory(opts({ allowHistoryForSubscriber: true }), anonSubscriber), false);
    assert.equal(
      mayReadHistory(opts({ allowPublishForClient: true }), user),
      false,
      'publish rights are not history rights',
    );
    assert.equal(
      mayReadPresence(opts({ allowPresenceForClient: true, allowPresenceForAnonymous: true }), anon),
      true,
    );
    assert.equal(mayReadPresence(opts({ allowPresenceForClient: true }), anon), false);
  });

  test('subscribe without a token', () => {
    assert.equal(maySubscribeWithoutToken(opts({ allowSubscribeForClient: true }), false), true);
    assert.equal(maySubscribeWithoutToken(opts({ allowSubscribeForClient: true }), true), false);
    assert.equal(
      maySubscribeWithoutToken(
        opts({ allowSubscribeForClient: true, allowSubscribeForAnonymous: true }),
        true,
      ),
      true,
    );
    assert.equal(maySubscribeWithoutToken(opts({ allowSubscribeForAnonymous: true }), true), false);
  });

  test('recovery: forced, or asked with allowRecovery or history rights, and never without history', () => {
    const h = { historySize: 10, historyTtl: 1000 };
    assert.equal(historyEnabled(opts(h)), true);
    assert.equal(recoveryEnabled(opts({ ...h, forceRecovery: true }), false, true), true);
    assert.equal(recoveryEnabled(opts({ ...h, allowRecovery: true }), false, false), false, 'not asked');
    assert.equal(recoveryEnabled(opts({ ...h, allowRecovery: true }), true, true), true);
    assert.equal(
      recoveryEnabled(opts(h), true, false),
      false,
      'asked, but neither allowed nor history rights',
    );
    assert.equal(recoveryEnabled(opts({ ...h, allowHistoryForSubscriber: true }), true, false), true);
    assert.equal(recoveryEnabled(opts({ ...h, allowHistoryForSubscriber: true }), true, true), false);
    assert.equal(recoveryEnabled(opts({ forceRecovery: true }), true, false), false, 'no history');
  });

  test('join/leave: forced, or asked with joinLeave and presence rights', () => {
    assert.equal(pushJoinLeave(opts({ forcePushJoinLeave: true }), false, true), true);
    assert.equal(pushJoinLeave(opts({ joinLeave: true }), true, false), false, 'no presence rights');
    assert.equal(
      pushJoinLeave(opts({ joinLeave: true, allowPresenceForSubscriber: true }), true, false),
      true,
    );
    assert.equal(
      pushJoinLeave(opts({ joinLeave: true, allowPresenceForSubscriber: true }), false, false),
      false,
    );
    assert.equal(pushJoinLeave(opts({ allowPresenceForClient: true }), true, false), false, 'joinLeave off');
  });
});
