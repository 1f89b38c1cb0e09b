// The shared judge of the conformance suite: runs one case on a fresh
// connection, reads what the server does, and compares it with what the case
// said it should do. Every verdict is derived from observed frames and the TCP
// state; nothing here knows which server is under test.
import { Opcode, RawClient, WaitTimeoutError, closePayload, type ServerFrame } from './raw-client.ts';
import { inflateServerMessage, readAnswer, type DeflateAnswer } from './deflate.ts';

/** OK = exactly the expected behaviour; NON-STRICT = acceptable per RFC 6455 but not the strictest. */
export type Verdict = 'OK' | 'NON-STRICT' | 'FAILED';

/** One message (reassembled from fragments) or pong the server must send. */
export interface ExpectedMessage {
  kind: 'text' | 'binary' | 'pong';
  payload: Buffer;
  /** When set: whether the server must have sent the message compressed (RSV1, permessage-deflate). */
  compressed?: boolean;
}

/** How the connection must end once the expected messages arrived. */
export interface EndExpectation {
  /** The evaluator starts the closing handshake with code 1000 after the messages. */
  clientCloses: boolean;
  /** Close codes the server may put in its close frame; null means an empty close payload. */
  codes: Array<number | null>;
  /** Codes RFC 6455 allows but that are weaker than what is expected (verdict NON-STRICT). */
  lenientCodes?: Array<number | null>;
  /** The server is expected to fail the connection; dropping TCP without a close frame is then NON-STRICT. */
  failure: boolean;
}

/** What a case's `run` returns after writing its bytes. */
export interface Expectation {
  receive: ExpectedMessage[];
  end: EndExpectation;
  /** Several pings may be answered by a single pong to the latest one (RFC 6455 section 5.5.3). */
  pongsMayCoalesce?: boolean;
  /** Set by a case when something it watched along the way was acceptable but not the strictest. */
  nonStrict?: string;
  /** Soft bound in ms for receiving every expected message (counted from the start of the case). */
  targetMs?: number;
  /** Set by a case that checked replies itself and found a wrong or missing one (verdict FAILED). */
  mismatch?: string;
  /** For a case that checked replies itself: what it expected and what it saw, for the report. */
  selfChecked?: { expected: string; observed: string };
}

/** One entry of the case table. */
export interface ConformanceCase {
  /** Autobahn|Testsuite case number where one corresponds, otherwise a number of ours. */
  id: string;
  section: number;
  description: string;
  /** True when the case has no Autobahn counterpart. */
  extra?: boolean;
  /** Hard time limit of the whole case in ms (default 4000). */
  timeoutMs?: number;
  /** When set, a NON-STRICT verdict is accepted for this reason. */
  acceptNonStrict?: string;
  /** Sec-WebSocket-Extensions offer sent in the opening handshake. */
  extensions?: string;
  /** Writes the case's bytes on a connected client and says what must happen next. */
  run(client: RawClient): Promise<Expectation>;
}

/** The outcome of one case, as stored in artifacts/conformance.json. */
export interface CaseResult {
  id: string;
  section: number;
  description: string;
  extra: boolean;
  expected: string;
  observed: string;
  verdict: Verdict;
  acceptNonStrict?: string;
  /** Verdict OK, or NON-STRICT where the case accepts it. */
  passed: boolean;
  durationMs: number;
}

/** Where the server under test listens. */
export interface Target {
  host: string;
  port: number;
}

const DEFAULT_TIMEOUT_MS = 4000;
/** Time left for the closing phase even when the case spent most of its budget. */
const MIN_CLOSE_WAIT_MS = 1000;

interface Received {
  kind: 'text' | 'binary' | 'pong';
  payload: Buffer;
  compressed?: boolean;
}

/** Short human-readable form of a list of messages, e.g. "text 125 B, pong 0 B" or "1000 × text". */
export function describeMessages(items: ReadonlyArray<{ kind: string; payload: Buffer }>): string {
  if (items.length === 0) return 'nothing';
  if (items.length > 4) {
    const counts = new Map<string, number>();
    for (const item of items) counts.set(item.kind, (counts.get(item.kind) ?? 0) + 1);
    return [...counts].map(([kind, n]) => `${n} × ${kind}`).join(', ');
  }
  return items.map((item) => `${item.kind} ${formatSize(item.payload.length)}`).join(', ');
}

function formatSize(bytes: number): string {
  if (bytes >= 1 << 20 && bytes % (1 << 20) === 0) return `${bytes / (1 << 20)} MiB`;
  if (bytes >= 1 << 10 && bytes % (1 << 10) === 0) return `${bytes / (1 << 10)} KiB`;
  return `${bytes} B`;
}

function formatCodes(codes: Array<number | null>): string {
  return codes.map((c) => (c === null ? 'empty' : String(c))).join(' or ');
}

/** Renders an expectation as the "expected" column of the report. */
export function describeExpectation(exp: Expectation): string {
  const parts: string[] = [];
  if (exp.receive.length > 0) parts.push(`echo ${describeMessages(exp.receive)}`);
  if (exp.end.failure) parts.push(`fail: close ${formatCodes(exp.end.codes)}, TCP closed`);
  else if (exp.end.clientCloses) parts.push(`close ${formatCodes(exp.end.codes)} answered, TCP closed`);
  else parts.push(`close reply ${formatCodes(exp.end.codes)}, TCP closed`);
  if (exp.selfChecked) parts.unshift(exp.selfChecked.expected);
  else if (exp.receive.length === 0 && !exp.end.failure) parts.unshift('no data');
  return parts.join('; ');
}

function sameMessage(a: Received, b: ExpectedMessage): boolean {
  if (b.compressed !== undefined && (a.compressed ?? false) !== b.compressed) return false;
  return a.kind === b.kind && a.payload.equals(b.payload);
}

/** True when `got` equals `want` with some pongs (never the last expected item) left out. */
function matchesWithCoalescedPongs(got: Received[], want: ExpectedMessage[]): boolean {
  let g = 0;
  for (let w = 0; w < want.length; w++) {
    const item = want[w]!;
    if (g < got.length && sameMessage(got[g]!, item)) {
      g++;
    } else if (item.kind !== 'pong' || w === want.length - 1) {
      return false;
    }
  }
  return g === got.length;
}

function isValidUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

function frameName(frame: ServerFrame): string {
  const names: Record<number, string> = {
    0: 'continuation',
    1: 'text',
    2: 'binary',
    8: 'close',
    9: 'ping',
    10: 'pong',
  };
  return `${names[frame.opcode] ?? `opcode ${frame.opcode}`} ${formatSize(frame.payload.length)}`;
}

function worse(a: Verdict, b: Verdict): Verdict {
  const rank: Record<Verdict, number> = { OK: 0, 'NON-STRICT': 1, FAILED: 2 };
  return rank[a] >= rank[b] ? a : b;
}

/** Reads the server's messages until the expected ones arrived, a close frame came, TCP closed or time ran out. */
async function collect(
  client: RawClient,
  exp: Expectation,
  deadline: number,
  problems: string[],
): Promise<{ got: Received[]; doneAt: number | undefined }> {
  const got: Received[] = [];
  const deflate: DeflateAnswer | null = readAnswer(client.headers['sec-websocket-extensions']);
  let partial: { kind: 'text' | 'binary'; parts: Buffer[]; compressed: boolean } | undefined;
  const last = exp.receive[exp.receive.length - 1];
  const complete = (): boolean =>
    got.length >= exp.receive.length ||
    (exp.pongsMayCoalesce === true && last !== undefined && got.some((g) => sameMessage(g, last)));
  while (!complete()) {
    let frame: ServerFrame | null;
    try {
      frame = await client.nextFrame(Math.max(1, deadline - performance.now()));
    } catch (err) {
      if (err instanceof WaitTimeoutError) {
        problems.push(`timed out after receiving ${describeMessages(got)}`);
        return { got, doneAt: undefined };
      }
      throw err;
    }
    if (frame === null) break;
    if (frame.masked) problems.push('server sent a masked frame');
    const rsv1Allowed = deflate !== null && (frame.opcode === Opcode.Text || frame.opcode === Opcode.Binary);
    if (frame.rsv !== 0 && !(frame.rsv === 4 && rsv1Allowed)) problems.push('server set reserved bits');
    if (frame.opcode === Opcode.Close) break;
    if (frame.opcode === Opcode.Ping) continue;
    if (frame.opcode === Opcode.Pong) {
      got.push({ kind: 'pong', payload: frame.payload });
    } else if (frame.opcode === Opcode.Text || frame.opcode === Opcode.Binary) {
      if (partial) problems.push('server started a new message inside a fragmented one');
      partial = {
        kind: frame.opcode === Opcode.Text ? 'text' : 'binary',
        parts: [frame.payload],
        compressed: frame.rsv === 4,
      };
    } else if (frame.opcode === Opcode.Continuation && partial) {
      partial.parts.push(frame.payload);
    } else {
      problems.push(`server sent unexpected ${frameName(frame)}`);
    }
    if (partial && frame.fin && frame.opcode !== Opcode.Pong) {
      let payload: Buffer = Buffer.concat(partial.parts);
      if (partial.compressed) {
        try {
          payload = inflateServerMessage(payload, deflate!);
        } catch (err) {
          problems.push(`server sent a compressed message that does not inflate: ${String(err)}`);
        }
      }
      got.push({ kind: partial.kind, payload, compressed: partial.compressed });
      partial = undefined;
    }
  }
  if (partial) problems.push('server left a fragmented message unfinished');
  return { got, doneAt: complete() ? performance.now() : undefined };
}

async function evaluate(
  c: ConformanceCase,
  client: RawClient,
  started: number,
): Promise<Omit<CaseResult, 'durationMs'>> {
  const timeoutMs = c.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const deadline = started + timeoutMs;
  const exp = await c.run(client);
  const expected = describeExpectation(exp);
  const problems: string[] = [];
  const notes: string[] = [];
  let verdict: Verdict = 'OK';

  const { got, doneAt } = await collect(client, exp, deadline, problems);
  const exact = got.length === exp.receive.length && got.every((g, i) => sameMessage(g, exp.receive[i]!));
  if (!exact) {
    if (exp.pongsMayCoalesce && matchesWithCoalescedPongs(got, exp.receive)) {
      verdict = worse(verdict, 'NON-STRICT');
      notes.push(`${exp.receive.length - got.length} ping(s) answered only by a later pong`);
    } else {
      verdict = 'FAILED';
      problems.push(`received ${describeMessages(got)} instead of ${describeMessages(exp.receive)}`);
    }
  }
  if (exp.targetMs !== undefined && doneAt !== undefined && doneAt - started > exp.targetMs) {
    verdict = worse(verdict, 'NON-STRICT');
    notes.push(`echo took ${Math.round(doneAt - started)} ms (target ${exp.targetMs} ms)`);
  }
  if (exp.mismatch) {
    verdict = 'FAILED';
    problems.push(exp.mismatch);
  }
  if (exp.nonStrict) {
    verdict = worse(verdict, 'NON-STRICT');
    notes.push(exp.nonStrict);
  }

  if (exp.end.clientCloses && !client.closeFrame && !client.closed) {
    await client.sendFrame({ opcode: Opcode.Close, payload: closePayload(1000) });
  }
  const closing = await client.waitClosed(Math.max(MIN_CLOSE_WAIT_MS, deadline - performance.now()));
  const extra = closing.frames.filter((f) => f.opcode !== Opcode.Ping);
  if (extra.length > 0) {
    verdict = 'FAILED';
    problems.push(
      `unexpected ${extra.slice(0, 3).map(frameName).join(', ')}${extra.length > 3 ? ', …' : ''}`,
    );
  }

  const observedParts: string[] = [];
  if (exp.selfChecked) observedParts.push(exp.selfChecked.observed);
  else if (exact) observedParts.push(got.length > 0 ? `echo ${describeMessages(got)} ok` : 'no data');
  const frame = closing.closeFrame;
  if (!frame) {
    observedParts.push('no close frame');
    if (closing.tcpClosed && exp.end.failure) {
      verdict = worse(verdict, 'NON-STRICT');
      notes.push('TCP dropped without a close frame');
    } else {
      verdict = 'FAILED';
    }
  } else {
    const code = frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : null;
    observedParts.push(`close ${code ?? 'empty'}`);
    if (frame.payload.length === 1) {
      verdict = 'FAILED';
      problems.push('server close payload is 1 byte long');
    } else if (closing.reason && !isValidUtf8(closing.reason)) {
      verdict = 'FAILED';
      problems.push('server close reason is not valid UTF-8');
    }
    if (exp.end.codes.includes(code)) {
      // exact code
    } else if (exp.end.lenientCodes?.includes(code)) {
      verdict = worse(verdict, 'NON-STRICT');
      notes.push(`close code ${code ?? 'empty'} instead of ${formatCodes(exp.end.codes)}`);
    } else {
      verdict = 'FAILED';
    }
  }
  observedParts.push(closing.tcpClosed ? 'TCP closed' : 'TCP still open');
  if (!closing.tcpClosed) verdict = 'FAILED';
  const observed = [...observedParts, ...problems, ...notes].join('; ');
  return {
    id: c.id,
    section: c.section,
    description: c.description,
    extra: c.extra ?? false,
    expected,
    observed,
    verdict,
    ...(c.acceptNonStrict ? { acceptNonStrict: c.acceptNonStrict } : {}),
    passed: verdict === 'OK' || (verdict === 'NON-STRICT' && c.acceptNonStrict !== undefined),
  };
}

/**
 * Runs one case on a new connection to `target` and returns its verdict. Never
 * rejects: a handshake failure, an exception in the case or a blown time
 * limit all become verdict FAILED with the reason in `observed`.
 */
export async function runCase(c: ConformanceCase, target: Target): Promise<CaseResult> {
  const started = performance.now();
  const timeoutMs = c.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let client: RawClient | undefined;
  let guard: NodeJS.Timeout | undefined;
  const failed = (observed: string): CaseResult => ({
    id: c.id,
    section: c.section,
    description: c.description,
    extra: c.extra ?? false,
    expected: '—',
    observed,
    verdict: 'FAILED',
    ...(c.acceptNonStrict ? { acceptNonStrict: c.acceptNonStrict } : {}),
    passed: false,
    durationMs: Math.round(performance.now() - started),
  });
  try {
    client = await RawClient.connect(target.host, target.port, {
      timeoutMs,
      ...(c.extensions !== undefined ? { extensions: c.extensions } : {}),
    });
    const connected = client;
    // The evaluator bounds its own waits; this guard only catches a case whose
    // writes never complete.
    const overrun = new Promise<never>((_, reject) => {
      guard = setTimeout(
        () => reject(new Error(`case exceeded ${timeoutMs + MIN_CLOSE_WAIT_MS * 2} ms`)),
        timeoutMs + MIN_CLOSE_WAIT_MS * 2,
      );
    });
    const result = await Promise.race([evaluate(c, connected, started), overrun]);
    return { ...result, durationMs: Math.round(performance.now() - started) };
  } catch (err) {
    return failed(err instanceof Error ? err.message : String(err));
  } finally {
    clearTimeout(guard);
    client?.destroy();
  }
}
