/**
 * Scenario "deflate": the hub with permessage-deflate against ws
 * (perMessageDeflate, serverNoContextTakeover; the ws-naive peer, since a
 * preframed send would bypass compression) and uWebSockets.js
 * (SHARED_COMPRESSOR), all started with `--deflate`:
 *
 * - fan-out of 1 KiB JSON text to one room of 1,000 subscribers (+ the
 *   publisher) at a fixed rate → deliveries/s, server CPU per delivery and
 *   bytes on the wire per delivery, from deflate-fanout.ts;
 * - idle memory at 19,000 connections (1,000 in quick mode) with the offer
 *   in every handshake vs without, through the idle scenario's holdIdle.
 */
import { connect } from 'node:net';
import { holdIdle } from '../loadgen/index.ts';
import { DEFLATE_OFFER, runDeflateFanout } from '../loadgen/deflate-fanout.ts';
import { summarize, type Summary } from '../summary.ts';
import { repeat, sleep, targetOf, withPeer, type ScenarioContext } from './context.ts';

/** Targets of this scenario and the peer that stands for each. */
export const DEFLATE_PEERS: Record<string, string> = { wshub: 'wshub', ws: 'ws-naive', uws: 'uws' };

/** One fan-out row. */
export interface DeflateFanoutRow {
  target: string;
  members: number;
  payloadBytes: number;
  ratePerSec: number;
  negotiated: Summary;
  deliveriesPerSec: Summary;
  cpuUsPerDelivery: Summary;
  wireBytesPerDelivery: Summary;
  inflateChecked: boolean;
}

/** One idle-memory row: RSS and JS heap per connection with and without deflate agreed. */
export interface DeflateIdleRow {
  target: string;
  connections: number;
  deflate: boolean;
  connected: Summary;
  rssPerConnBytes: Summary;
  /** JS heap per connection after a full collection (peers that answer `stats`). */
  heapPerConnBytes?: Summary;
}

/** All figures of the scenario. */
export interface DeflateResults {
  fanout: DeflateFanoutRow[];
  idle: DeflateIdleRow[];
}

let roomCounter = 0;

/** Runs the deflate scenario for every deflate target. */
export async function runDeflateScenario(ctx: ScenarioContext): Promise<DeflateResults> {
  const subscribers = 1_000;
  const payloadBytes = 1024;
  const ratePerSec = ctx.quick ? 20 : 50;
  const timing = ctx.quick ? { warmupMs: 500, durationMs: 2000 } : { warmupMs: 1000, durationMs: 4000 };
  const out: DeflateResults = { fanout: [], idle: [] };
  for (const [label, name] of Object.entries(DEFLATE_PEERS)) {
    ctx.log(`deflate fan-out / ${label}`);
    const runs = await withPeer(ctx, 'deflate', { label, name, args: ['--deflate'] }, (peer) =>
      repeat(ctx.runs, async () => {
        const cpu0 = peer.cpuSeconds();
        const r = await runDeflateFanout({
          target: targetOf(peer),
          room: `deflate-${++roomCounter}`,
          subscribers,
          ratePerSec,
          payloadBytes,
          ...timing,
        });
        // The whole run's server CPU (connects and warm-up included) would blur it; the window's
        // share is taken as the run's CPU scaled to the window, an approximation noted in the docs.
        const cpuSec = peer.cpuSeconds() - cpu0;
        const totalSec = (timing.warmupMs + timing.durationMs) / 1000;
        const windowCpu = (cpuSec * r.windowSec) / totalSec;
        ctx.log(
          `    negotiated ${r.negotiated}, ${Math.round(r.deliveriesPerSec)} deliveries/s, ` +
            `${(r.wireBytes / Math.max(1, r.delivered)).toFixed(0)} wire B/delivery, inflate check ${r.inflateChecked}`,
        );
        return { r, windowCpu };
      }),
    );
    if (runs === undefined) continue;
    out.fanout.push({
      target: label,
      members: subscribers + 1,
      payloadBytes,
      ratePerSec,
      negotiated: summarize(runs.map((x) => x.r.negotiated)),
      deliveriesPerSec: summarize(runs.map((x) => x.r.deliveriesPerSec)),
      cpuUsPerDelivery: summarize(runs.map((x) => (x.windowCpu * 1e6) / Math.max(1, x.r.delivered))),
      wireBytesPerDelivery: summarize(runs.map((x) => x.r.wireBytes / Math.max(1, x.r.delivered))),
      inflateChecked: runs.every((x) => x.r.inflateChecked),
    });
  }

  const connections = ctx.quick ? 1_000 : 19_000;
  for (const [label, name] of Object.entries(DEFLATE_PEERS)) {
    for (const deflate of [false, true]) {
      ctx.log(`deflate idle / ${label}: ${connections} connections, deflate ${deflate ? 'offered' : 'off'}`);
      const runs = await repeat(ctx.runs, async () =>
        withPeer(ctx, 'deflate-idle', { label, name, args: ['--deflate'] }, async (peer) => {
          await sleep(300);
          // A probe first: the offer must really be agreed, or the row would measure nothing.
          if (deflate && !(await agreesDeflate(peer.port)))
            throw new Error(`${label} did not agree to ${DEFLATE_OFFER}`);
          // After a full collection each time: garbage of the handshakes is not idle memory.
          const before = await peer.stats({ gc: true });
          const rssBefore = peer.rssBytes();
          const headers = deflate ? { 'Sec-WebSocket-Extensions': DEFLATE_OFFER } : undefined;
          const hold = await holdIdle({
            target: targetOf(peer, headers),
            connections,
            ...(ctx.generatorCpuList ? { cpuList: ctx.generatorCpuList } : {}),
          });
          try {
            await sleep(1000);
            const settled = await peer.stats({ gc: true });
            const n = Math.max(1, hold.connected);
            const rssPerConn = (peer.rssBytes() - rssBefore) / n;
            const heapPerConn = (settled.heapUsed - before.heapUsed) / n;
            ctx.log(
              `    connected ${hold.connected}, RSS/conn ${Math.round(rssPerConn)} B, heap/conn ${Math.round(heapPerConn)} B`,
            );
            return { connected: hold.connected, rssPerConn, heapPerConn };
          } finally {
            await hold.release();
          }
        }),
      );
      const ok = runs.flatMap((r) => (r ? [r] : []));
      if (ok.length === 0) continue;
      out.idle.push({
        target: label,
        connections,
        deflate,
        connected: summarize(ok.map((r) => r.connected)),
        rssPerConnBytes: summarize(ok.map((r) => r.rssPerConn)),
        heapPerConnBytes: summarize(ok.map((r) => r.heapPerConn)),
      });
    }
  }
  return out;
}

/** The scenario's figures as markdown tables (median, min–max). */
export function renderDeflateTables(results: DeflateResults): string {
  const mm = (s: Summary, digits = 0): string =>
    `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
  const lines = [
    '| target | members | payload | rate/s | negotiated | deliveries/s | server CPU µs/delivery | wire B/delivery | inflate check |',
    '| --- | --: | --: | --: | --: | --: | --: | --: | --- |',
    ...results.fanout.map(
      (r) =>
        `| ${r.target} | ${r.members} | ${r.payloadBytes} B | ${r.ratePerSec} | ${mm(r.negotiated)} | ${mm(r.deliveriesPerSec)} | ` +
        `${mm(r.cpuUsPerDelivery, 2)} | ${mm(r.wireBytesPerDelivery)} | ${r.inflateChecked ? 'ok' : 'FAILED'} |`,
    ),
    '',
    '| target | connections | deflate | connected | RSS/conn (B) | JS heap/conn (B) |',
    '| --- | --: | --- | --: | --: | --: |',
    ...results.idle.map(
      (r) =>
        `| ${r.target} | ${r.connections} | ${r.deflate ? 'agreed' : 'off'} | ${mm(r.connected)} | ${mm(r.rssPerConnBytes)} | ` +
        `${r.heapPerConnBytes ? mm(r.heapPerConnBytes) : '–'} |`,
    ),
  ];
  const off = results.idle.find((r) => r.target === 'wshub' && !r.deflate);
  const on = results.idle.find((r) => r.target === 'wshub' && r.deflate);
  if (off && on) {
    const rss = on.rssPerConnBytes.median / off.rssPerConnBytes.median;
    const verdict = rss <= 1.1 ? 'within' : 'NOT within';
    lines.push(
      '',
      `wshub idle memory with deflate agreed: ${(rss * 100).toFixed(0)}% of without (RSS medians) — ${verdict} the 10% target` +
        (on.heapPerConnBytes && off.heapPerConnBytes
          ? `; JS heap ${((on.heapPerConnBytes.median / off.heapPerConnBytes.median) * 100).toFixed(0)}%.`
          : '.'),
    );
  }
  return lines.join('\n');
}

/** Whether a peer answers the deflate offer with permessage-deflate in its 101 (one raw upgrade). */
function agreesDeflate(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let head = '';
    const done = (agreed: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(agreed);
    };
    const timer = setTimeout(() => done(false), 5000);
    socket.on('error', () => done(false));
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      done(
        /^HTTP\/1\.1 101/.test(head) &&
          /^sec-websocket-extensions:\s*permessage-deflate/im.test(head.slice(0, end)),
      );
    });
    socket.write(
      `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
        `Origin: http://127.0.0.1:${port}\r\nSec-WebSocket-Extensions: ${DEFLATE_OFFER}\r\n\r\n`,
    );
  });
}
