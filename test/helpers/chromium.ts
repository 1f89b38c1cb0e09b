// Starts the system Chromium through playwright-core for browser tests (native
// WebSocket, demo pages, browser auth). playwright-core ships no browser, so
// the Debian `chromium` package is used.
import { chromium, type Browser } from 'playwright-core';
import { requireBinary, type SkipOption } from './binaries.ts';

/** Where the Debian/Ubuntu `chromium` package installs the browser. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/**
 * Flags for a quiet, deterministic headless run in containers: no sandbox (we
 * often run as root), no GPU, no network chatter of its own (updates, sync,
 * QUIC probes), and /tmp instead of a small /dev/shm.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--disable-dev-shm-usage',
];

/** node:test option that skips (or fails, when CI=true) tests needing Chromium if it is not installed. */
export function requireChromium(): SkipOption {
  return requireBinary(CHROMIUM_PATH, 'chromium');
}

/**
 * Launches headless Chromium and resolves with its Browser. Each launch gets a
 * fresh profile: playwright creates a temporary user-data directory (mkdtemp,
 * `playwright_chromiumdev_profile-*`) and deletes it, with the browser process,
 * on `browser.close()`. Use `browser.newContext()` for isolated users.
 * `extraArgs` are appended to {@link CHROMIUM_ARGS}.
 */
export async function launchChromium(extraArgs: readonly string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
    // A wedged browser must fail the test, not hang it until the runner's timeout.
    timeout: 30_000,
  });
}
