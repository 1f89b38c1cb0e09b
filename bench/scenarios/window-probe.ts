/**
 * Server-side measurement of a load generator run's measurement window.
 *
 * runFanout connects everything, then starts publishing ~100 ms later,
 * warms up for warmupMs and measures for durationMs; it does not tell its
 * caller when that happens. The probe finds the moment from the outside: it
 * counts the server's open file descriptors (/proc/<pid>/fd, which costs the
 * server nothing) every 25 ms, and once they have grown by the number of
 * sockets the run opens, schedules /proc CPU readings at the window's start
 * and end. Connection setup is therefore not billed to the window, and a
 * detection late by one poll shifts the window by at most ~25 ms.
 * The probe also samples RSS every `rssEveryMs` from detection on.
 */
import { countFds as openFds, type PeerProcess } from '../peer-process.ts';

const POLL_MS = 25;
const SETTLE_MAX_MS = 5_000;
/** Run start offset used by the load generator between "connected" and the first send. */
const START_DELAY_MS = 100;

/** What the probe saw. */
export interface WindowMeasurement {
  /** Server CPU-seconds inside the measurement window (whole run when the window was not found). */
  cpuSec: number;
  /** Whether the connected moment was detected. */
  windowFound: boolean;
  /** [ms since window start (negative during warm-up), RSS bytes]. */
  rssSamples: Array<[number, number]>;
}

/**
 * Runs `run()` (which must open `sockets` connections to `peer` and then
 * warm up for `warmupMs` and measure for `durationMs`) while measuring the
 * server's CPU in the window and its RSS over time.
 */
export async function probeWindow<T>(
  peer: PeerProcess,
  sockets: number,
  warmupMs: number,
  durationMs: number,
  run: () => Promise<T>,
  rssEveryMs = 500,
): Promise<{ result: T; window: WindowMeasurement }> {
  // Sockets of a previous run may still be closing: wait (bounded) until the
  // server is back to its idle descriptor count, so the threshold means "this run connected".
  let fdBase = openFds(peer.pid);
  for (let waited = 0; fdBase > peer.idleFds + 16 && waited < SETTLE_MAX_MS; waited += POLL_MS * 4) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS * 4));
    fdBase = openFds(peer.pid);
  }
  // A few connections may fail; 98% of them is a clear signal that setup is over.
  const threshold = fdBase + Math.max(1, Math.floor(sockets * 0.98));
  const cpuAtStart = peer.cpuSeconds();
  const timers: NodeJS.Timeout[] = [];
  const rssSamples: Array<[number, number]> = [];
  let windowStart = NaN;
  let cpuWindowStart = NaN;
  let cpuWindowEnd = NaN;

  const poll = setInterval(() => {
    if (!Number.isNaN(windowStart)) return;
    if (openFds(peer.pid) < threshold) return;
    clearInterval(poll);
    const detected = performance.now();
    windowStart = detected + START_DELAY_MS + warmupMs;
    timers.push(
      setTimeout(() => (cpuWindowStart = peer.cpuSeconds()), START_DELAY_MS + warmupMs),
      setTimeout(() => (cpuWindowEnd = peer.cpuSeconds()), START_DELAY_MS + warmupMs + durationMs),
    );
    const sampleRss = (): void => {
      rssSamples.push([Math.round(performance.now() - windowStart), peer.rssBytes()]);
    };
    sampleRss();
    const rssTimer = setInterval(sampleRss, rssEveryMs);
    timers.push(rssTimer);
    // Stop sampling RSS at the window's end (plus one sample for the last moment).
    timers.push(
      setTimeout(
        () => {
          sampleRss();
          clearInterval(rssTimer);
        },
        START_DELAY_MS + warmupMs + durationMs,
      ),
    );
  }, POLL_MS);

  try {
    const result = await run();
    const found = Number.isFinite(cpuWindowStart) && Number.isFinite(cpuWindowEnd);
    const cpuSec = found ? cpuWindowEnd - cpuWindowStart : peer.cpuSeconds() - cpuAtStart;
    return { result, window: { cpuSec, windowFound: found, rssSamples } };
  } finally {
    clearInterval(poll);
    for (const t of timers) {
      clearTimeout(t);
      clearInterval(t);
    }
  }
}
