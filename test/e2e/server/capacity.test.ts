// Two upgrades racing for the last slot: the join happens before the 101,
// so exactly one wins and the other gets an HTTP refusal (the pipeline's join step).
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { DialError } from '../../../src/client/dial.ts';
import type { WshubConfig } from '../../../src/config.ts';
import { authHeaders, cleanupHubs, connectClient, parseErrorBody, startHub, waitFor } from './harness.ts';

afterEach(cleanupHubs);

const ROUNDS = 6;

/**
 * Fires two upgrades at once, ROUNDS times, and checks that each round has
 * exactly one 101 and one refusal with `status`. The room authorizer yields
 * to the event loop so both requests are in flight past the pre-check.
 */
async function race(config: Partial<WshubConfig>, status: number, rooms: [string, string]): Promise<void> {
  let authorizerCalls = 0;
  const hub = await startHub({
    ...config,
    roomAuthorizer: {
      authorize: async () => {
        authorizerCalls++;
        await new Promise((resolve) => setTimeout(resolve, 5));
        return true;
      },
    },
  });
  const headers = await authHeaders();
  for (let round = 0; round < ROUNDS; round++) {
    const outcomes = await Promise.allSettled(
      rooms.map((room) => connectClient(hub.url(`/ws?room=${room}`), { headers })),
    );
    const winners = outcomes.filter((o) => o.status === 'fulfilled');
    const losers = outcomes.filter((o) => o.status === 'rejected');
    assert.equal(winners.length, 1, `round ${round}: exactly one 101`);
    assert.equal(losers.length, 1, `round ${round}: exactly one refusal`);
    const error = (losers[0] as PromiseRejectedResult).reason as unknown;
    assert.ok(error instanceof DialError, String(error));
    assert.equal(error.status, status, `round ${round}: ${error.body ?? error.message}`);
    assert.equal(parseErrorBody(error.body).error.code, 'WEBSOCKET_JOIN_DENIED');
    assert.equal(hub.ws.hub.getRoomRegistrationCount(), 1, 'only the winner is registered');
    const { conn } = (winners[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof connectClient>>>).value;
    conn.close();
    await conn.closed();
    await waitFor(() => hub.ws.hub.getRoomRegistrationCount() === 0, 2_000, 'the slot to free');
  }
  assert.equal(authorizerCalls, 2 * ROUNDS, 'both requests of every round passed the pre-check stage');
}

describe('capacity race', () => {
  test('maxRoomConnections: 1 → one 101, one 429', async () => {
    await race({ maxRoomConnections: 1 }, 429, ['last', 'last']);
  });

  test('maxRoomRegistrations: 1 → one 101, one 503', async () => {
    await race({ maxRoomRegistrations: 1 }, 503, ['one', 'two']);
  });

  test('a burst of 10 for 3 slots admits exactly 3', async () => {
    const hub = await startHub({ maxRoomConnections: 3 });
    const headers = await authHeaders();
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, () => connectClient(hub.url('/ws?room=r'), { headers })),
    );
    const winners = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    assert.equal(winners.length, 3);
    assert.equal(hub.ws.hub.getRoomCount('r'), 3);
    for (const o of outcomes) {
      if (o.status === 'rejected') assert.equal((o.reason as DialError).status, 429);
    }
    const m = hub.ws.metrics();
    assert.equal(m.accepted_total, 3);
    for (const w of winners) w.conn.close();
    await Promise.all(winners.map((w) => w.conn.closed()));
  });
});
