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
 * The probe also samples RSS every `rssEveryMs` from detection on, and can
 * read the CPU of other processes (the other nodes and the broker of a
 * cluster) at the same two moments.
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
  /** The same for each of the `others` CPU readers, in their order. */
  othersCpuSec: number[];
  /** Whether the connected moment was detected. */
  windowFound: boolean;
  /** [ms since window start (negative during warm-up), RSS bytes]. */
  rssSamples: Array<[number, number]>;
}

/**
 * Runs `run()` (which must open `sockets` connections to `peer` and then
 * warm up for `warmupMs` and measure for `durationMs`) while measuring the
 * server's CPU in the window and its RSS over time. Each of `others` returns
 * the CPU-seconds another process has used so far (e.g. procCpuSeconds of its pid).
 */
export async function probeWindow<T>(
  peer: PeerProcess,
  sockets: number,
  warmupMs: number,
  durationMs: number,
  run: () => Promise<T>,
  rssEveryMs = 500,
  others: Array<() => number> = [],
): Promise<{ result: T; window: WindowMeasurement }> {
  const readAll = (): number[] => [peer.cpuSeconds(), ...others.map((read) => read())];
  // Sockets of a previous run may still be closing: wait (bounded) until the
  // server is back to its idle descriptor count, so the threshold means "this run connected".
  let fdBase = openFds(peer.pid);
  for (let waited = 0; fdBase > peer.idleFds + 16 && waited < SETTLE_MAX_MS; waited += POLL_MS * 4) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS * 4));
    fdBase = openFds(peer.pid);
  }
  // A few connections may fail; 98% of them is a clear signal that setup is over.
  const threshold = fdBase + Math.max(1, Math.floor(sockets * 0.98));
  const cpuAtStart = readAll();
  const timers: NodeJS.Timeout[] = [];
  const rssSamples: Array<[number, number]> = [];
  let windowStart = NaN;
  let cpuWindowStart: number[] | undefined;
  let cpuWindowEnd: number[] | undefined;

  const poll = setInterval(() => {
    if (!Number.isNaN(windowStart)) return;
    if (openFds(peer.pid) < threshold) return;
    clearInterval(poll);
    const detected = performance.now();
    windowStart = detected + START_DELAY_MS + warmupMs;
    timers.push(
      setTimeout(() => (cpuWindowStart = readAll()), START_DELAY_MS + warmupMs),
      setTimeout(() => (cpuWindowEnd = readAll()), START_DELAY_MS + warmupMs + durationMs),
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
    const found = cpuWindowStart !== undefined && cpuWindowEnd !== undefined;
    const [from, to] = found ? [cpuWindowStart!, cpuWindowEnd!] : [cpuAtStart, readAll()];
    const used = to.map((end, i) => end - from[i]!);
    return {
      result,
      window: { cpuSec: used[0]!, othersCpuSec: used.slice(1), windowFound: found, rssSamples },
    };
  } finally {
    clearInterval(poll);
    for (const t of timers) {
      clearTimeout(t);
      clearInterval(t);
    }
  }
}
