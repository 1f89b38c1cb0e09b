import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { userInfoFromClaims } from '../../../src/auth/index.ts';

describe('userInfoFromClaims', () => {
  test('maps sub, name, email and roles, keeping every claim', () => {
    const claims = { sub: 'u-1', name: 'Ada', email: 'a@example.com', roles: ['r1', 'r2'], tier: 3 };
    const user = userInfoFromClaims(claims);
    assert.deepEqual(user, {
      id: 'u-1',
      name: 'Ada',
      email: 'a@example.com',
      roles: ['r1', 'r2'],
      claims,
    });
  });

  test('non-string roles are filtered out', () => {
    const user = userInfoFromClaims({ roles: ['ok', 1, null, { x: 1 }, ['nested'], true, 'also'] });
    assert.deepEqual(user.roles, ['ok', 'also']);
  });

  test('roles that are not an array give no roles', () => {
    assert.deepEqual(userInfoFromClaims({ roles: 'admin' }).roles, []);
    assert.deepEqual(userInfoFromClaims({}).roles, []);
  });

  test('missing or non-string sub gives an empty id; non-string name/email are left out', () => {
    assert.equal(userInfoFromClaims({}).id, '');
    const user = userInfoFromClaims({ sub: 42, name: ['x'], email: 7 });
    assert.equal(user.id, '');
    assert.equal('name' in user, false);
    assert.equal('email' in user, false);
    assert.equal(user.claims.sub, 42);
  });

  test('claims are copied, including nested values', () => {
    const claims: Record<string, unknown> = { sub: 'u', meta: { plan: 'pro' }, roles: ['a'] };
    const user = userInfoFromClaims(claims);
    claims.sub = 'changed';
    (claims.meta as { plan: string }).plan = 'free';
    (claims.roles as string[]).push('b');
    assert.equal(user.claims.sub, 'u');
    assert.deepEqual(user.claims.meta, { plan: 'pro' });
    assert.deepEqual(user.roles, ['a']);
  });

  test('claims that cannot be cloned are still copied shallowly', () => {
    const fn = (): number => 1;
    const claims: Record<string, unknown> = { sub: 'u', fn };
    const user = userInfoFromClaims(claims);
    assert.equal(user.claims.fn, fn);
    claims.sub = 'x';
    assert.equal(user.claims.sub, 'u');
  });
});
