// `wshub serve` run as a real process: flags and config file applied,
// /healthz, structured logs without secrets or bodies, graceful shutdown,
// --dev with the demo page, and the help text.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, afterEach, describe, test } from 'node:test';
import { signHS256 } from '../../src/auth/token.ts';
import { dial } from '../../src/client/dial.ts';
import { MessageQueue } from '../../src/client/messages.ts';
import type { Connection } from '../../src/connection/connection.ts';
import { cliCommand, runCli, startCli, type RunningCli } from '../helpers/cli.ts';
import { dialError, logLines, request, SECRET, tempDir, waitFor } from './support.ts';

const files = tempDir();
const running: RunningCli[] = [];
const clients: Connection[] = [];

/** Starts `wshub serve ARGS` and remembers it for cleanup. */
async function serve(args: string[], env: NodeJS.ProcessEnv): Promise<RunningCli> {
  const cli = await startCli(['serve', '--port', '0', ...args], { WS_BROADCAST_SECRET: '', ...env });
  running.push(cli);
  return cli;
}

/** Dials and remembers the connection for cleanup. */
async function connect(url: string, options: Parameters<typeof dial>[1] = {}): Promise<Connection> {
  const conn = await dial(url, options);
  clients.push(conn);
  return conn;
}

afterEach(async () => {
  for (const conn of clients.splice(0)) conn.terminate();
  await Promise.all(running.splice(0).map((cli) => cli.stop('SIGKILL')));
});
after(() => files.cleanup());

describe('wshub serve', () => {
  test('--port 0, /healthz, token auth, JSON logs without secrets or bodies, SIGTERM → 1001 and exit 0', async () => {
    const cli = await serve(['--log-level', 'debug'], { WS_SECRET: SECRET });
    assert.match(cli.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(cli.port > 0 && cli.port !== 8080, `a real free port, got ${cli.port}`);

    const health = await request(`${cli.url}/healthz`);
    assert.equal(health.status, 200);
    assert.match(health.headers['content-type'] ?? '', /^application\/json/);
    assert.deepEqual(JSON.parse(health.body), {
      status: 'healthy',
      stopped: false,
      active_connections: 0,
      rooms: 0,
    });

    const endpoint = `${cli.wsUrl}/ws?room=lobby`;
    const missing = await dialError(dial(endpoint));
    assert.equal(missing.status, 401);
    const token = (await runCli(['token', '--sub', 'alice'], { WS_SECRET: SECRET })).stdout.trim();
    // The query token is off unless --allow-query-token.
    const queryToken = await dialError(dial(`${endpoint}&token=${token}`));
    assert.equal(queryToken.status, 401);

    const queue = new MessageQueue();
    const conn = await connect(endpoint, {
      headers: { Authorization: `Bearer ${token}` },
      handlers: queue.handlers,
    });
    const body = `private body ${process.pid} ${Math.random()}`;
    await conn.sendText(body);
    assert.equal((await queue.next(2000)).text, body, 'built-in room fan-out reaches the sender');
    const busy = JSON.parse((await request(`${cli.url}/healthz`)).body) as { active_connections: number };
    assert.equal(busy.active_connections, 1);

    await waitFor(
      () =>
        logLines(cli.stderr()).some(
          (l) => l.event === 'upgrade_rejected' && l.code === 'WEBSOCKET_TOKEN_REQUIRED',
        ),
      'the rejected upgrade in the log',
    );
    const closed = conn.closed();
    const started = Date.now();
    const exitCode = await cli.stop('SIGTERM');
    assert.equal((await closed).code, 1001, 'the client sees "going away"');
    assert.equal(exitCode, 0);
    assert.ok(Date.now() - started < 10_000, 'shutdown within its bound');

    const stderr = cli.stderr();
    const lines = logLines(stderr);
    const rejected = lines.find((l) => l.event === 'upgrade_rejected');
    assert.equal(rejected?.status, 401);
    assert.equal(rejected?.code, 'WEBSOCKET_TOKEN_REQUIRED');
    const events = lines.map((l) => l.event);
    for (const event of ['start', 'connected', 'stop', 'stopped']) assert.ok(events.includes(event), event);
    assert.ok(!stderr.includes(SECRET), 'the secret never appears in the log');
    assert.ok(!stderr.includes(body), 'message bodies never appear in the log');
    assert.ok(!stderr.includes(token), 'tokens never appear in the log');
  });

  test('--allow-query-token, --allow-origin, --max-room-connections, --read-limit, --message-validation off', async () => {
    const cli = await serve(
      [
        '--allow-query-token',
        '--allow-origin',
        'https://app.example',
        '--max-room-connections',
        '1',
        '--read-limit',
        '1000',
        '--message-validation',
        'off',
      ],
      { WS_SECRET: SECRET },
    );
    const token = await signHS256({ sub: 'q' }, SECRET, { expiresInSeconds: 60 });
    const room = (name: string) => `${cli.wsUrl}/ws?room=${name}&token=${token}`;
    const queue = new MessageQueue();
    const first = await connect(room('a'), { handlers: queue.handlers });
    const full = await dialError(dial(room('a')));
    assert.equal(full.status, 429, 'the second join of room a exceeds --max-room-connections 1');
    const other = await connect(room('b'), { headers: { Origin: 'https://app.example' } });
    assert.equal(other.readyState, 'open', '--allow-origin admits that origin');
    const foreign = await dialError(dial(room('c'), { headers: { Origin: 'https://evil.example' } }));
    assert.equal(foreign.status, 403, 'and no other');

    // Empty text is refused by the default validation; "off" lets it through.
    await first.sendText('');
    assert.equal((await queue.next(2000)).text, '');
    await first.sendText('x'.repeat(2000));
    assert.equal((await first.closed()).code, 1009, 'over --read-limit');
  });

  test('--deflate, --deflate-threshold, --deflate-level; --read-limit bounds the inflated size; --no-deflate', async () => {
    const cli = await serve(
      [
        '--allow-unauthenticated',
        '--deflate',
        '--deflate-threshold',
        '64',
        '--deflate-level',
        '9',
        '--read-limit',
        '4096',
      ],
      {},
    );
    const queue = new MessageQueue();
    const conn = await connect(`${cli.wsUrl}/ws?room=z`, {
      perMessageDeflate: { threshold: 0 },
      handlers: queue.handlers,
    });
    assert.ok(conn.deflate !== null, '--deflate: agreed on /ws');
    assert.equal(conn.deflate.compressor.threshold, 0);
    await conn.sendText('y'.repeat(3000));
    assert.equal((await queue.next(2000)).text, 'y'.repeat(3000));
    // 100 KiB compresses to a few hundred bytes: the limit applies to what it inflates to.
    await conn.sendText('z'.repeat(100 * 1024));
    assert.equal((await conn.closed()).code, 1009);
    const bad = await runCli([
      'serve',
      '--deflate',
      '--no-deflate',
      '--allow-unauthenticated',
      '--port',
      '0',
    ]);
    assert.equal(bad.code, 2);
    assert.equal((await runCli(['serve', '--deflate-level', '10', '--allow-unauthenticated'])).code, 2);

    const off = await serve(['--allow-unauthenticated', '--no-deflate'], {});
    const plain = await connect(`${off.wsUrl}/connection/websocket`, { perMessageDeflate: true });
    assert.equal(plain.deflate, null, '--no-deflate: not even on the channel endpoint');
  });

  test('--config values apply and flags override them; room passwords from both files', async () => {
    const config = files.file(
      'config.json',
      JSON.stringify({
        wsRoutePath: '/live',
        maxRoomConnections: 1,
        allowUnauthenticated: true,
        roomPasswords: { vip: 'Vip-Pass-123' },
      }),
    );
    const rooms = files.file('rooms.json', JSON.stringify({ staff: 'Staff-Pass-456' }));
    const cli = await serve(['--config', config, '--room-passwords', rooms, '--max-room-connections', '2'], {
      WS_SECRET: '',
    });
    assert.equal((await dialError(dial(`${cli.wsUrl}/ws?room=a`))).status, 404, 'wsRoutePath from the file');
    await connect(`${cli.wsUrl}/live?room=a`);
    await connect(`${cli.wsUrl}/live?room=a`);
    assert.equal(
      (await dialError(dial(`${cli.wsUrl}/live?room=a`))).status,
      429,
      'the flag raised the limit to 2',
    );

    const password = (value: string) => ({ headers: { 'X-WebSocket-Room-Password': value } });
    assert.equal((await dialError(dial(`${cli.wsUrl}/live?room=vip`))).status, 403);
    assert.equal((await dialError(dial(`${cli.wsUrl}/live?room=vip`, password('wrong')))).status, 403);
    await connect(`${cli.wsUrl}/live?room=vip`, password('Vip-Pass-123'));
    assert.equal(
      (await dialError(dial(`${cli.wsUrl}/live?room=staff`, password('Vip-Pass-123')))).status,
      403,
    );
    await connect(`${cli.wsUrl}/live?room=staff`, password('Staff-Pass-456'));
    assert.ok(!cli.stderr().includes('Pass-'), 'room passwords never appear in the log');
  });

  /**
   * Floods a room while one member does not read, then lets it read again.
   * Returns how many flood messages the slow member got and how it ended.
   */
  async function floodSlowReader(cli: RunningCli) {
    const slowQueue = new MessageQueue();
    const slow = await connect(`${cli.wsUrl}/ws?room=flood`, { handlers: slowQueue.handlers });
    slow.socket.pause();
    const fastQueue = new MessageQueue();
    const fast = await connect(`${cli.wsUrl}/ws?room=flood`, { handlers: fastQueue.handlers });
    const chunk = Buffer.alloc(64 * 1024, 1);
    const total = 300;
    for (let i = 0; i < total; i++) {
      await fast.sendBinary(chunk);
      await fastQueue.next(5000); // paced by the echo, so only the slow member falls behind
    }
    slow.socket.resume();
    await fast.sendText('end');
    let received = 0;
    for (;;) {
      const next = await slowQueue.next(5000).catch(() => null);
      if (next === null || !next.binary) break;
      received++;
    }
    return { total, received, slow, slowQueue };
  }

  test('--send-behavior close disconnects a slow reader with 1008 once its --send-queue is full', async () => {
    const cli = await serve(['--allow-unauthenticated', '--send-behavior', 'close', '--send-queue', '2'], {
      WS_SECRET: '',
    });
    const { total, received, slowQueue } = await floodSlowReader(cli);
    assert.ok(received < total, `some messages were not delivered (${received}/${total})`);
    await waitFor(() => slowQueue.closed !== null, 'the slow reader to be closed');
    assert.equal(slowQueue.closed?.code, 1008);
  });

  test('--send-behavior drop skips messages for a slow reader but keeps it connected', async () => {
    const cli = await serve(['--allow-unauthenticated', '--send-behavior', 'drop', '--send-queue', '2'], {
      WS_SECRET: '',
    });
    const { total, received, slow, slowQueue } = await floodSlowReader(cli);
    assert.ok(received < total, `some messages were dropped (${received}/${total})`);
    assert.equal(slowQueue.closed, null, 'still connected');
    assert.equal(slow.readyState, 'open');
  });

  test('a second signal during shutdown exits at once', async () => {
    const cli = await serve(['--allow-unauthenticated'], { WS_SECRET: '' });
    // A client that never answers the close frame keeps the graceful shutdown waiting.
    const stuck = await connect(`${cli.wsUrl}/ws?room=a`);
    stuck.socket.pause();
    cli.child.kill('SIGTERM');
    await waitFor(() => logLines(cli.stderr()).some((l) => l.event === 'stop'), 'the stop event');
    const started = Date.now();
    const code = await cli.stop('SIGINT');
    assert.equal(code, 130);
    assert.ok(Date.now() - started < 2_000, 'did not wait for the graceful shutdown');
  });

  test('--dev serves the demo page with a per-run secret and prints a ready-to-open URL', async () => {
    const child = spawn(process.execPath, [...cliCommand(), 'serve', '--dev', '--port', '0'], {
      env: { ...process.env, WS_SECRET: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = once(child, 'exit');
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.resume();
    try {
      await waitFor(() => /^demo: open \S+$/m.test(stdout), 'the demo line', 20_000);
      assert.match(stdout, /development mode.*not for production/);
      assert.match(stdout, /random per-run secret/);
      const base = /^listening on (http:\/\/\S+)$/m.exec(stdout)?.[1];
      assert.ok(base !== undefined, stdout);
      assert.ok(stdout.includes(`demo: open ${base}/\n`), stdout);

      const page = await request(`${base}/`);
      assert.equal(page.status, 200);
      assert.match(page.headers['content-type'] ?? '', /^text\/html/);
      assert.equal((await request(`${base}/healthz`)).status, 200);

      // The page's path: a token from the demo endpoint, offered as a subprotocol from the page's origin.
      const issued = await request(`${base}/demo/token`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Origin: base },
        body: JSON.stringify({ name: 'tester', room: 'lobby' }),
      });
      assert.equal(issued.status, 200, issued.body);
      const { token } = JSON.parse(issued.body) as { token: string };
      const protocols = ['wshub', `wshub.bearer.${token}`];
      const conn = await connect(`${base.replace('http', 'ws')}/ws?room=lobby`, {
        protocols,
        headers: { Origin: base },
      });
      assert.equal(conn.protocol, 'wshub');
      const foreign = await dialError(
        dial(`${base.replace('http', 'ws')}/ws?room=lobby`, {
          protocols,
          headers: { Origin: 'http://evil.example' },
        }),
      );
      assert.equal(foreign.status, 403, 'other origins stay forbidden');
    } finally {
      child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      assert.equal(code, 0);
    }
  });

  test('help lists the subcommands and every serve flag', async () => {
    const top = await runCli(['help']);
    assert.equal(top.code, 0);
    for (const command of ['serve', 'token', 'echo', 'help'])
      assert.match(top.stdout, new RegExp(`^  ${command} `, 'm'));
    const help = await runCli(['serve', '--help']);
    assert.equal(help.code, 0);
    const flags = [
      '--host',
      '--port',
      '--path',
      '--config',
      '--secret-file',
      '--broadcast-secret-file',
      '--room-passwords',
      '--allow-unauthenticated',
      '--allow-query-token',
      '--allow-origin',
      '--allow-all-origins',
      '--broadcast',
      '--max-room-connections',
      '--max-room-registrations',
      '--max-connection-rate',
      '--send-behavior',
      '--send-queue',
      '--send-timeout',
      '--read-limit',
      '--deflate',
      '--no-deflate',
      '--deflate-threshold',
      '--deflate-level',
      '--message-validation',
      '--tls-cert',
      '--tls-key',
      '--log-level',
      '--dev',
      'WS_SECRET',
      'WS_BROADCAST_SECRET',
      '/healthz',
    ];
    for (const flag of flags) assert.ok(help.stdout.includes(flag), `serve --help mentions ${flag}`);
    assert.equal((await runCli(['help', 'serve'])).stdout, help.stdout);
  });
});
