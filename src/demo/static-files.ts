/**
 * Serves the demo chat page from the `web/` folder, and the official
 * `centrifuge` SDK's browser bundle from its installed package (no CDN).
 * Only a fixed list of files is served, so no request path ever reaches
 * the file system.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { HttpRejection, refusal, sendRejection } from '../http/rejections.ts';

/** The `web/` folder, found relative to this module: `src/demo/` under tsx, `dist/demo/` once built. */
export const WEB_ROOT = new URL('../../web/', import.meta.url);

/**
 * The page's policy: scripts, styles and sockets from this origin only (ws:/wss:
 * listed because older browsers do not count them as 'self'), nothing framed,
 * no plugins, no inline code.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "connect-src 'self' ws: wss:",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Where the page loads the SDK from. */
export const SDK_PATH = '/centrifuge.js';

/**
 * The SDK's browser bundle (it defines `globalThis.Centrifuge`). The
 * package's `exports` do not list `dist/`, so the bundle is found next to
 * the entry that `require` resolves (`build/index.js`). Throws when the
 * package is not installed.
 */
export function sdkBundleUrl(): URL {
  const entry = createRequire(import.meta.url).resolve('centrifuge');
  return new URL('../dist/centrifuge.js', pathToFileURL(entry));
}

/** Request path → file (in web/, or the SDK's bundle) and its Content-Type. */
const FILES: ReadonlyMap<string, { file: string | (() => URL); type: string }> = new Map([
  ['/', { file: 'index.html', type: 'text/html; charset=utf-8' }],
  ['/index.html', { file: 'index.html', type: 'text/html; charset=utf-8' }],
  ['/app.js', { file: 'app.js', type: 'text/javascript; charset=utf-8' }],
  ['/style.css', { file: 'style.css', type: 'text/css; charset=utf-8' }],
  [SDK_PATH, { file: sdkBundleUrl, type: 'text/javascript; charset=utf-8' }],
]);

/** Headers every demo response carries. */
export function securityHeaders(): Record<string, string> {
  return {
    'X-Content-Type-Options': 'nosniff',
    'Content-Security-Policy': CONTENT_SECURITY_POLICY,
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
  };
}

/** Whether `path` names one of the page's files. */
export function isStaticPath(path: string): boolean {
  return FILES.has(path);
}

/**
 * Answers a GET or HEAD for one of the page's files (see isStaticPath); 405
 * for other methods. The file is read on every request so edits to web/
 * show up without a restart.
 */
export async function serveStatic(
  path: string,
  request: IncomingMessage,
  response: ServerResponse,
  root: URL = WEB_ROOT,
): Promise<void> {
  const entry = FILES.get(path);
  if (entry === undefined) throw new Error(`not a demo file: ${path}`);
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    const r = refusal(HttpRejection.METHOD_NOT_ALLOWED, 'use GET', { Allow: 'GET, HEAD' });
    sendRejection(response, r, securityHeaders());
    return;
  }
  let body: Buffer;
  try {
    body = await readFile(typeof entry.file === 'string' ? new URL(entry.file, root) : entry.file());
  } catch {
    const r = refusal(HttpRejection.INTERNAL_ERROR, 'demo page files are missing');
    sendRejection(response, r, securityHeaders());
    return;
  }
  response.writeHead(200, {
    ...securityHeaders(),
    'Content-Type': entry.type,
    'Content-Length': body.length,
    'Cache-Control': 'no-cache',
  });
  response.end(request.method === 'HEAD' ? undefined : body);
}
