/**
 * One error shape: every error class wshub exports extends WshubError and
 * has a stable code; close codes and HTTP rejections come from one table
 * each, and no source file writes a close code or an error body by hand.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as wshub from '../../src/index.ts';
import { ReceiveTimeoutError } from '../../src/client/messages.ts';
import { TokenRequestError } from '../../src/demo/token-endpoint.ts';
import { CloseCode, isValidCloseCode, ProtocolError } from '../../src/protocol/close.ts';
import { HttpRejection, rejectionBody, refusal } from '../../src/http/rejections.ts';

const { WshubError } = wshub;

/** A sample instance of every error class, by class name; a new class must be added here. */
const SAMPLES: Record<string, () => InstanceType<typeof WshubError>> = {
  WshubError: () => new wshub.WshubError('SOME_CODE', 'x'),
  ConfigError: () => new wshub.ConfigError('secret', 'x'),
  QueueFullError: () => new wshub.QueueFullError(),
  SendTimeoutError: () => new wshub.SendTimeoutError(5),
  ConnectionClosedError: () => new wshub.ConnectionClosedError(),
  CloseError: () => new wshub.CloseError(CloseCode.POLICY_VIOLATION, 'x'),
  InvalidTokenError: () => new wshub.InvalidTokenError('x', 'malformed'),
  WeakSecretError: () => new wshub.WeakSecretError('x'),
  SecretReuseError: () => new wshub.SecretReuseError(),
  InvalidRoomPasswordError: () => new wshub.InvalidRoomPasswordError('x', 'empty'),
  RoomAuthBusyError: () => new wshub.RoomAuthBusyError(),
  TokenKeysUnavailableError: () => new wshub.TokenKeysUnavailableError(new Error('down')),
  DialError: () => new wshub.DialError('HANDSHAKE_FAILED', 'x', 403),
  BrokerUrlError: () => new wshub.BrokerUrlError('x'),
  BrokerClientMissingError: () => new wshub.BrokerClientMissingError('redis'),
  ProtocolError: () => new ProtocolError(CloseCode.PROTOCOL_ERROR, 'x'),
  ReceiveTimeoutError: () => new ReceiveTimeoutError(5),
  TokenRequestError: () => new TokenRequestError(HttpRejection.INVALID_JSON),
  ReplyErrorException: () => new wshub.ReplyErrorException(wshub.ReplyErrors.BAD_REQUEST),
  DisconnectException: () => new wshub.DisconnectException(wshub.Disconnects.BAD_REQUEST),
};

function isErrorClass(value: unknown): value is new (...args: never[]) => Error {
  return typeof value === 'function' && (value === Error || value.prototype instanceof Error);
}

describe('error classes', () => {
  test('every error class the package exports has a sample here', () => {
    const exported = Object.entries(wshub)
      .filter(([, value]) => isErrorClass(value))
      .map(([name]) => name);
    assert.ok(exported.length >= 12, exported.join());
    for (const name of exported) assert.ok(name in SAMPLES, `${name} has no sample in this test`);
  });

  for (const [name, make] of Object.entries(SAMPLES)) {
    test(`${name} extends WshubError, has a stable code and its own name`, () => {
      const error = make();
      assert.ok(error instanceof WshubError, `${name} is not a WshubError`);
      assert.ok(error instanceof Error);
      assert.match(error.code, /^[A-Z][A-Z0-9_]*$/, `${name}.code`);
      assert.equal(error.name, name);
      assert.equal(make().code, error.code, 'the code does not vary');
    });
  }

  test('codes of the auth errors did not change', () => {
    assert.equal(new wshub.InvalidTokenError('x', 'expired').code, 'WEBSOCKET_INVALID_TOKEN');
    assert.equal(new wshub.WeakSecretError('x').code, 'WEAK_SECRET');
    assert.equal(new wshub.SecretReuseError().code, 'SECRET_REUSED');
    assert.equal(new wshub.InvalidRoomPasswordError('x', 'empty').code, 'INVALID_ROOM_PASSWORD');
    assert.equal(new wshub.RoomAuthBusyError().code, 'ROOM_AUTH_BUSY');
    assert.equal(new wshub.TokenKeysUnavailableError().code, 'TOKEN_KEYS_UNAVAILABLE');
    assert.equal(new ProtocolError(CloseCode.PROTOCOL_ERROR, 'x').closeCode, 1002);
  });
});

describe('close code table', () => {
  test('every code wshub may send is valid on the wire; the two reserved ones are not', () => {
    for (const [name, code] of Object.entries(CloseCode)) {
      const reserved = name === 'NO_STATUS' || name === 'ABNORMAL';
      assert.equal(isValidCloseCode(code), !reserved, name);
    }
  });

  test('the named codes keep their values and the older exports point into the table', () => {
    assert.equal(CloseCode.TOKEN_EXPIRED, 4001);
    assert.equal(CloseCode.SLOW_CONSUMER, CloseCode.POLICY_VIOLATION);
    assert.equal(CloseCode.SHUTDOWN, CloseCode.GOING_AWAY);
    assert.equal(CloseCode.BUDGET_EXHAUSTED, CloseCode.TRY_AGAIN_LATER);
    assert.equal(wshub.TOKEN_EXPIRED_CLOSE_CODE, CloseCode.TOKEN_EXPIRED);
    assert.equal(wshub.SLOW_CONSUMER_CLOSE_CODE, CloseCode.SLOW_CONSUMER);
  });
});

describe('HTTP rejection table', () => {
  const CATEGORIES = ['forbidden', 'validation', 'auth', 'capacity', 'unavailable', 'not_found', 'method'];

  test('every row has an error status, a stable code, a known category and a message', () => {
    for (const [name, row] of Object.entries(HttpRejection)) {
      assert.ok(row.status >= 400 && row.status <= 599, name);
      assert.match(row.code, /^[A-Z][A-Z0-9_]*$/, name);
      assert.ok(CATEGORIES.includes(row.category), name);
      assert.ok(row.message.length > 0, name);
    }
  });

  test('the body builder carries code, message and category', () => {
    const r = refusal(HttpRejection.AUTH_UNAVAILABLE);
    assert.deepEqual(JSON.parse(rejectionBody(r)), {
      error: { code: 'WEBSOCKET_AUTH_UNAVAILABLE', message: r.message, category: 'unavailable' },
    });
    assert.equal(r.status, 503);
  });
});

/** Every .ts file under `dir`. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name));
}

describe('sources use the tables', () => {
  const SRC = new URL('../../src/', import.meta.url).pathname;
  const files = sources(SRC).map((path) => ({ path, text: readFileSync(path, 'utf8') }));

  test('no close code is written as a number outside the table', () => {
    const literal = /\b(?:close|closeWith|fail|CloseError)\(\s*\d{4}\b/;
    for (const { path, text } of files) assert.doesNotMatch(text, literal, path);
  });

  test('no HTTP error is built outside rejections.ts', () => {
    for (const { path, text } of files) {
      if (path.endsWith('/rejections.ts')) continue;
      assert.doesNotMatch(text, /\brejection\(\s*\d{3}/, path);
      assert.doesNotMatch(text, /JSON\.stringify\(\{\s*error\b/, path);
      assert.doesNotMatch(text, /writeHead\(\s*[45]\d\d\b/, path);
    }
  });
});
