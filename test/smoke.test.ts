import { x } from '../src/index.ts';
import test from 'node:test';
import assert from 'node:assert/strict';
test('x', () => assert.equal(x, 1));
