// Client addresses behind proxies: only a trusted peer's header is read,
// hops are taken from the right, and every spoofing attempt lands on an
// address the client does not choose.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../../../src/errors.ts';
import { ADDRESS_SET_MEMO_SIZE, AddressSet, ClientAddressResolver } from '../../../src/http/trusted-proxy.ts';

const xff = (value: string) => ({ 'x-forwarded-for': value });

describe('AddressSet', () => {
  test('IPv4 and IPv6 CIDRs and single addresses; IPv4-mapped peers match IPv4 ranges', () => {
    const set = new AddressSet(['10.0.0.0/8', '192.0.2.7', '2001:db8::/32', '::1'], 'trustedProxies');
    assert.ok(set.has('10.200.1.1'));
    assert.ok(set.has('::ffff:10.1.1.1'));
    assert.ok(set.has('192.0.2.7'));
    assert.equal(set.has('192.0.2.8'), false);
    assert.ok(set.has('2001:db8:ffff::1'));
    assert.ok(set.has('::1'));
    assert.equal(set.has('2001:db9::1'), false);
    assert.equal(set.has('garbage'), false);
    assert.equal(set.has(undefined), false);
  });

  test('remembered answers stay right while more addresses than the memory holds come and go', () => {
    const set = new AddressSet(['10.0.0.0/16', '2001:db8::/48'], 'limitExempt');
    // Three passes over 1.5 × the memory's size: each answer is asked again after the memory was cleared.
    const count = Math.ceil(ADDRESS_SET_MEMO_SIZE * 1.5);
    for (let pass = 0; pass < 3; pass++) {
      for (let i = 0; i < count; i++) {
        const third = (i >> 8) & 0xff;
        assert.equal(
          set.has(`10.${i % 2}.${third}.${i & 0xff}`),
          i % 2 === 0,
          `10.${i % 2}.${third}.${i & 0xff}`,
        );
        assert.equal(set.has(`2001:db8:${i % 2}::${i.toString(16)}`), i % 2 === 0);
      }
    }
    assert.equal(set.has('10.0.0.1'), true);
    assert.equal(set.has('::ffff:10.0.0.1'), true);
    assert.equal(set.has('10.1.0.1'), false);
  });

  test('bad ranges are ConfigErrors naming the option', () => {
    for (const bad of ['10.0.0.0/33', '::/129', 'example.com', '10.0.0.0/', '1.2.3.4/-1', '']) {
      assert.throws(
        () => new AddressSet([bad], 'trustedProxies'),
        (e: unknown) => e instanceof ConfigError && e.option === 'trustedProxies',
        bad,
      );
    }
  });
});

describe('ClientAddressResolver', () => {
  const r = new ClientAddressResolver(['10.0.0.0/8', '2001:db8::/32']);

  test('an untrusted peer is the client whatever it sends', () => {
    assert.equal(r.resolve('203.0.113.1', xff('1.1.1.1')), '203.0.113.1');
    assert.equal(r.resolve('203.0.113.1', { forwarded: 'for=1.1.1.1' }), '203.0.113.1');
  });

  test('rightmost untrusted hop; hops the client wrote further left are ignored', () => {
    assert.equal(r.resolve('10.0.0.1', xff('203.0.113.9')), '203.0.113.9');
    assert.equal(r.resolve('10.0.0.1', xff('6.6.6.6, 203.0.113.9')), '203.0.113.9');
    assert.equal(r.resolve('10.0.0.1', xff('6.6.6.6, 203.0.113.9, 10.0.0.2')), '203.0.113.9');
    // A client claiming to be a trusted proxy itself gains nothing: the hop left of it is then taken.
    assert.equal(r.resolve('10.0.0.1', xff('10.0.0.5')), '10.0.0.5');
    assert.equal(r.resolve('10.0.0.1', xff('6.6.6.6, 10.0.0.5')), '6.6.6.6');
  });

  test('repeated headers (as an array) are one list in order', () => {
    assert.equal(r.resolve('10.0.0.1', { 'x-forwarded-for': ['6.6.6.6', '203.0.113.9'] }), '203.0.113.9');
  });

  test('ports and brackets are stripped; IPv6 and mapped forms are read', () => {
    assert.equal(r.resolve('10.0.0.1', xff('203.0.113.9:5555')), '203.0.113.9');
    assert.equal(r.resolve('10.0.0.1', xff('[2001:dead::1]:443')), '2001:dead::1');
    assert.equal(r.resolve('10.0.0.1', xff('::ffff:203.0.113.9')), '203.0.113.9');
    assert.equal(r.resolve('::ffff:10.0.0.1', xff('203.0.113.9')), '203.0.113.9');
  });

  test('an unreadable hop stops the walk at the trusted hop right of it', () => {
    const resolver = new ClientAddressResolver(['10.0.0.0/8']);
    assert.equal(resolver.resolve('10.0.0.1', xff('203.0.113.9, unknown')), '10.0.0.1');
    assert.equal(resolver.resolve('10.0.0.1', xff('203.0.113.9, junk, 10.0.0.3')), '10.0.0.3');
    assert.equal(resolver.resolve('10.0.0.1', xff('1.2.3.4:99999999')), '10.0.0.1');
    assert.equal(resolver.malformed, 3);
  });

  test('an over-long header is ignored (the peer is used), and only the last 32 hops are read', () => {
    const resolver = new ClientAddressResolver(['10.0.0.0/8']);
    assert.equal(resolver.resolve('10.0.0.1', xff('1.1.1.1,'.repeat(1000))), '10.0.0.1');
    const chain = [...Array<string>(40).fill('10.0.0.9'), '10.0.0.8'].join(',');
    assert.equal(resolver.resolve('10.0.0.1', xff(`6.6.6.6,${chain}`)), '10.0.0.9');
  });

  test('Forwarded: for= values, quoted IPv6 with port, other parameters ignored', () => {
    const fw = new ClientAddressResolver(['10.0.0.0/8'], 'forwarded');
    assert.equal(
      fw.resolve('10.0.0.1', { forwarded: 'for=192.0.2.60;proto=http;by=10.0.0.1' }),
      '192.0.2.60',
    );
    assert.equal(
      fw.resolve('10.0.0.1', { forwarded: 'for="[2001:db8:cafe::17]:4711"' }),
      '2001:db8:cafe::17',
    );
    assert.equal(fw.resolve('10.0.0.1', { forwarded: 'for=6.6.6.6, for=192.0.2.43' }), '192.0.2.43');
    assert.equal(fw.resolve('10.0.0.1', { forwarded: 'for=_hidden' }), '10.0.0.1');
    // The other header is not read.
    assert.equal(fw.resolve('10.0.0.1', xff('192.0.2.1')), '10.0.0.1');
  });

  test('no trusted proxies: always the peer', () => {
    const none = new ClientAddressResolver([]);
    assert.equal(none.enabled, false);
    assert.equal(none.resolve('127.0.0.1', xff('1.1.1.1')), '127.0.0.1');
  });
});
