// Shared pieces of the CLI tests: a strong test secret, temp files, and
// helpers to inspect rejected dials and the JSON-lines log.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DialError } from '../../src/client/dial.ts';

/** A 48-byte secret, unique per test run so it can be searched for in output. */
export const SECRET = `cli-test-secret-${process.pid}-${Date.now()}-0123456789abcdef`.padEnd(48, 'x');

/** A temp directory removed by `cleanup()`; `file(name, text)` writes into it and returns the path. */
export function tempDir(): { dir: string; file(name: string, text: string): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'wshub-cli-'));
  return {
    dir,
    file(name, text) {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Awaits a dial that must fail and returns its DialError. */
export async function dialError(attempt: Promise<unknown>): Promise<DialError> {
  try {
    const conn = await attempt;
    (conn as { terminate?: () => void }).terminate?.();
  } catch (error) {
    assert.ok(error instanceof DialError, `expected DialError, got ${String(error)}`);
    return error;
  }
  assert.fail('dial succeeded but was expected to be rejected');
}

/** One parsed log line. */
export type LogLine = Record<string, unknown> & { time: string; level: string; event: string };

/** Parses stderr as JSON lines, asserting that every line is a log object. */
export function logLines(stderr: string): LogLine[] {
  return stderr
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        assert.fail(`stderr line is not JSON: ${line}`);
      }
      const entry = parsed as LogLine;
      assert.equal(typeof entry.time, 'string', line);
      assert.ok(!Number.isNaN(Date.parse(entry.time)), line);
      assert.ok(['debug', 'info', 'warn', 'error'].includes(entry.level), line);
      assert.equal(typeof entry.event, 'string', line);
      return entry;
    });
}

/** Polls `check` every 25 ms until it returns true, failing after `timeoutMs`. */
export async function waitFor(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A finished HTTP exchange. */
export interface HttpReply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * One HTTP(S) request on a fresh connection (no keep-alive, so nothing stays
 * open in the test process). Self-signed certificates are accepted.
 */
export async function request(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<HttpReply> {
  const target = new URL(url);
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      target,
      {
        method: options.method ?? 'GET',
        headers: { Connection: 'close', ...options.headers },
        agent: false,
        rejectUnauthorized: false,
        timeout: 5_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on('error', reject);
    req.end(options.body);
  });
}
