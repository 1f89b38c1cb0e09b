import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import {
  HS256TokenAuthenticator,
  InvalidRoomPasswordError,
  InvalidTokenError,
  SecureRoomAuth,
  signHS256,
  type RoomAuthContext,
} from '../../../src/auth/index.ts';

const SECRET = 's'.repeat(32);

function ctx(room: string, password: string | undefined): RoomAuthContext {
  return {
    request: { socket: { remoteAddress: '127.0.0.1' } } as IncomingMessage,
    room,
    password,
    user: undefined,
    claims: undefined,
  };
}

function secure(options: { allowWeakPasswords?: boolean; withTokens?: boolean } = {}): SecureRoomAuth {
  return new SecureRoomAuth({
    iterations: 1000,
    allowWeakPasswords: options.allowWeakPasswords ?? false,
    ...(options.withTokens ? { tokenAuthenticator: new HS256TokenAuthenticator(SECRET) } : {}),
  });
}

describe('SecureRoomAuth', () => {
  test('starts with all counters at zero', () => {
    assert.deepEqual(secure().metrics(), {
      jwtFailures: 0,
      weakPasswords: 0,
      successfulAuths: 0,
      roomAuthFailures: 0,
    });
  });

  test('weak passwords are refused with a typed error and counted', async () => {
    const auth = secure();
    for (const pw of ['short1A', 'alllowercase1', 'ALLUPPERCASE1', 'NoDigitsHere']) {
      await assert.rejects(auth.setRoomPassword('r', pw), (err: unknown) => {
        return err instanceof InvalidRoomPasswordError && err.code === 'INVALID_ROOM_PASSWORD';
      });
    }
    assert.equal(auth.hasRoomPassword('r'), false);
    assert.equal(auth.metrics().weakPasswords, 4);
  });

  test('empty and over-long passwords are refused but not counted as weak', async () => {
    const auth = secure({ allowWeakPasswords: true });
    await assert.rejects(auth.setRoomPassword('r', ''), InvalidRoomPasswordError);
    await assert.rejects(auth.setRoomPassword('r', 'x'.repeat(4097)), InvalidRoomPasswordError);
    assert.equal(auth.metrics().weakPasswords, 0);
  });

  test('allowWeakPasswords accepts simple passwords', async () => {
    const auth = secure({ allowWeakPasswords: true });
    await auth.setRoomPassword('r', 'pw');
    assert.equal(await auth.verify('r', 'pw'), true);
    assert.equal(auth.metrics().weakPasswords, 0);
  });

  test('authorize counts successes and failures; open rooms succeed', async () => {
    const auth = secure();
    await auth.setRoomPassword('vip', 'Str0ngPass');
    assert.equal(await auth.authorize(ctx('vip', 'Str0ngPass')), true);
    assert.equal(await auth.authorize(ctx('vip', 'wrong')), false);
    assert.equal(await auth.authorize(ctx('vip', undefined)), false);
    assert.equal(await auth.authorize(ctx('lobby', undefined)), true);
    const m = auth.metrics();
    assert.equal(m.successfulAuths, 2);
    assert.equal(m.roomAuthFailures, 2);
  });

  test('change, removal and listing of room passwords', async () => {
    const auth = secure();
    await auth.setRoomPassword('vip', 'Str0ngPass');
    await auth.setRoomPassword('vip', 'An0therPass');
    assert.equal(await auth.verify('vip', 'Str0ngPass'), false);
    assert.equal(await auth.verify('vip', 'An0therPass'), true);
    assert.deepEqual(auth.rooms(), ['vip']);
    assert.equal(auth.removeRoomPassword('vip'), true);
    assert.equal(await auth.verify('vip', undefined), true);
  });

  test('authenticateToken counts successes and JWT failures', async () => {
    const auth = secure({ withTokens: true });
    const user = await auth.authenticateToken(await signHS256({ sub: 'u1' }, SECRET));
    assert.equal(user.id, 'u1');
    await assert.rejects(auth.authenticateToken('garbage'), InvalidTokenError);
    await assert.rejects(
      auth.authenticate(await signHS256({ sub: 'u1' }, 'o'.repeat(32))),
      InvalidTokenError,
    );
    const m = auth.metrics();
    assert.equal(m.successfulAuths, 1);
    assert.equal(m.jwtFailures, 2);
  });

  test('without a token authenticator, tokens are rejected as unconfigured', async () => {
    const auth = secure();
    await assert.rejects(auth.authenticateToken('a.b.c'), (err: unknown) => {
      return err instanceof InvalidTokenError && err.reason === 'unconfigured';
    });
    assert.equal(auth.metrics().jwtFailures, 1);
  });

  test('metrics() returns a snapshot', async () => {
    const auth = secure();
    const before = auth.metrics();
    await auth.authorize(ctx('open', undefined));
    assert.equal(before.successfulAuths, 0);
    assert.equal(auth.metrics().successfulAuths, 1);
  });
});
