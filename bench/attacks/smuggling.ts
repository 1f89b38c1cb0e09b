/**
 * Request-head shapes that HTTP servers must refuse because front proxies
 * may read them differently (request smuggling), each sent once with a
 * valid token on a fresh connection to the WebSocket path: both
 * Transfer-Encoding and Content-Length, two Content-Length headers, a
 * control byte in the request target, and a control byte after the
 * version number. A well-formed request goes first as a control, and must
 * get 101.
 */
import { randomBytes } from 'node:crypto';
import {
  HOST,
  answerLabel,
  connectFrom,
  exchange,
  mintToken,
  nextSourceAddress,
  type Attack,
  type AttackContext,
  type AttackOutcome,
} from './common.ts';

interface Shape {
  name: string;
  target?: string;
  version?: string;
  extra?: string[];
}

const SHAPES: Shape[] = [
  { name: 'well-formed (control)' },
  { name: 'TE+CL', extra: ['Transfer-Encoding: chunked', 'Content-Length: 5'] },
  { name: 'two CL', extra: ['Content-Length: 0', 'Content-Length: 5'] },
  { name: 'ctl byte in target', target: '/ws?room=a&x=\x01' },
  { name: 'version 13\\x0b', version: '13\x0b' },
];

function request(shape: Shape, port: number, token: string): Buffer {
  const lines = [
    `GET ${shape.target ?? '/ws?room=a'} HTTP/1.1`,
    `Host: ${HOST}:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    `Sec-WebSocket-Version: ${shape.version ?? '13'}`,
    `Authorization: Bearer ${token}`,
    ...(shape.extra ?? []),
  ];
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

async function run(ctx: AttackContext): Promise<AttackOutcome> {
  const token = mintToken(ctx.secret, 'smuggler');
  const answers: Record<string, string> = {};
  for (const shape of SHAPES) {
    try {
      const socket = await connectFrom(ctx.server.port, nextSourceAddress());
      const answer = await exchange(socket, request(shape, ctx.server.port, token), 3000);
      answer.socket.destroy();
      answers[shape.name] = answerLabel(answer);
    } catch (error) {
      answers[shape.name] = `connect ${(error as NodeJS.ErrnoException).code ?? String(error)}`;
    }
  }
  const bad = SHAPES.slice(1).map((s) => s.name);
  const accepted = bad.filter((name) => answers[name] === '101').length;
  return {
    summary:
      `${accepted}/${bad.length} accepted (101): ` +
      Object.entries(answers)
        .map(([name, label]) => `${name} → ${label}`)
        .join('; '),
    details: { answers },
  };
}

export const smuggling: Attack = {
  name: 'smuggling',
  description: `one request per shape on the fast path: ${SHAPES.map((s) => s.name).join(', ')}`,
  launch: {},
  budgetMs: SHAPES.length * 4000,
  run,
};
