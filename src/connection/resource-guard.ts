/**
 * Accounting shared by all connections of one server: the bytes held by
 * messages that are still arriving, and how often a connection was cut off
 * for abusing a resource. One object per server (not a module global), so
 * two servers in one process keep separate budgets and metrics.
 */
import type { InboundAccounting } from '../protocol/parser.ts';
import type { LatencyHistogram } from '../metrics/latency-histogram.ts';

export interface ResourceGuardMetrics {
  /** Bytes currently held by incomplete incoming messages. */
  partial_message_bytes: number;
  /** Connections closed (1013) because the partial-message budget was spent. */
  partial_message_budget_closes: number;
  /** Connections closed (1009) for a message split into too many frames. */
  fragment_limit_closes: number;
  /** Connections closed (1008) for sending pings too fast. */
  ping_flood_closes: number;
  /** Connections destroyed because their outbound bytes passed `maxOutboundBytes`. */
  outbound_overflow_closes: number;
  /** Connections closed (1008, channels 3013) for sending more than `maxMessagesPerSec`. */
  message_rate_closes: number;
  /** Connections closed (1008, channels 3013) for sending more than `maxBytesPerSec`. */
  byte_rate_closes: number;
}

export class ResourceGuard implements InboundAccounting {
  /** Bytes reserved by incomplete messages right now. */
  partialBytes = 0;
  partialBudgetCloses = 0;
  fragmentLimitCloses = 0;
  pingFloodCloses = 0;
  outboundOverflowCloses = 0;
  /** Records send-queue delays of this server's connections when set (by the metrics exposition). */
  queueDelay: LatencyHistogram | null = null;
  messageRateCloses = 0;
  byteRateCloses = 0;

  /** @param maxPartialBytes budget for incomplete messages over all connections (0 = none) */
  constructor(readonly maxPartialBytes: number) {}

  reserve(bytes: number): boolean {
    const next = this.partialBytes + bytes;
    if (this.maxPartialBytes > 0 && next > this.maxPartialBytes) {
      // A refusal always ends the connection that asked.
      this.partialBudgetCloses++;
      return false;
    }
    this.partialBytes = next;
    return true;
  }

  release(bytes: number): void {
    this.partialBytes -= bytes;
  }

  fragmentLimitHit(): void {
    this.fragmentLimitCloses++;
  }

  metrics(): ResourceGuardMetrics {
    return {
      partial_message_bytes: this.partialBytes,
      partial_message_budget_closes: this.partialBudgetCloses,
      fragment_limit_closes: this.fragmentLimitCloses,
      ping_flood_closes: this.pingFloodCloses,
      outbound_overflow_closes: this.outboundOverflowCloses,
      message_rate_closes: this.messageRateCloses,
      byte_rate_closes: this.byteRateCloses,
    };
  }
}
