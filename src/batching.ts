/**
 * Room broadcasts are batched per event-loop turn (see Hub). A direct send
 * or a close on a connection must not overtake a broadcast issued earlier
 * in the same turn, so those paths flush pending batches first through this
 * small registry (the connection layer cannot import the hub).
 */
const pending = new Set<() => void>();

/** Registers a flush to run before the next direct send or close. */
export function markBatchPending(flush: () => void): void {
  pending.add(flush);
}

/** Unregisters a flush (the owner ran it). */
export function clearBatchPending(flush: () => void): void {
  pending.delete(flush);
}

/** Runs every pending batch flush now. */
export function flushPendingBatches(): void {
  if (pending.size === 0) return;
  for (const flush of [...pending]) flush();
}
