/**
 * Manual fan-out run against a server that is already listening:
 *
 *   node --import tsx bench/loadgen/smoke.ts --port P [--subscribers N] [--rate R]
 *     [--payload B] [--seconds S] [--warmup S] [--publishers N] [--room NAME]
 *     [--protocol ws|socketio] [--slow FRACTION] [--workers N] [--cpu LIST]
 *
 * Prints the FanoutResult as JSON. Without --port it starts an in-process
 * wshub (sharing this process's CPU, so use a separate server for numbers).
 */
import { parseArgs } from 'node:util';
import type { AddressInfo } from 'node:net';
import { runFanout } from './index.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    subscribers: { type: 'string', default: '100' },
    publishers: { type: 'string', default: '1' },
    rate: { type: 'string', default: '100' },
    payload: { type: 'string', default: '64' },
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    room: { type: 'string', default: 'bench' },
    protocol: { type: 'string', default: 'ws' },
    slow: { type: 'string' },
    workers: { type: 'string' },
    cpu: { type: 'string' },
  },
});

let port = values.port === undefined ? 0 : Number(values.port);
let stopServer: (() => Promise<void>) | null = null;
if (port === 0) {
  const { createWshub } = await import('../../src/index.ts');
  const hub = createWshub({ allowUnauthenticated: true, messageValidation: false, sendBehavior: 'drop' });
  const server = hub.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  stopServer = async () => {
    await hub.shutdown({ timeout: 1000 });
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
}

const result = await runFanout({
  target: {
    host: values.host,
    port,
    protocol: values.protocol === 'socketio' ? 'socketio' : 'ws',
    path: '/ws',
  },
  rooms: [
    { name: values.room, subscribers: Number(values.subscribers), publishers: Number(values.publishers) },
  ],
  ratePerPublisher: Number(values.rate),
  payloadBytes: Number(values.payload),
  warmupMs: Number(values.warmup) * 1000,
  durationMs: Number(values.seconds) * 1000,
  ...(values.slow !== undefined ? { slowFraction: Number(values.slow) } : {}),
  ...(values.workers !== undefined ? { workers: Number(values.workers) } : {}),
  ...(values.cpu !== undefined ? { cpuList: values.cpu } : {}),
});
console.log(JSON.stringify(result, null, 2));
await stopServer?.();
