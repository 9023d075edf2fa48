/**
 * Admission control for ingest. Two bounds: bytes accepted but not yet durable (the log is
 * behind), and records durable but not yet processed (analytics and pipelines are behind). Past
 * either, a request is refused with 429 and a Retry-After instead of queueing without limit.
 */
import { RunnelError } from "../core/errors.js";

export interface BackpressureOptions {
  /** Bytes in flight to the log before new batches are refused. */
  readonly maxPendingBytes: number;
  /** Records behind in processing before new batches are refused; 0 turns the check off. */
  readonly maxLagRecords: number;
  /** Records appended but not yet processed (summed over streams). */
  readonly lag?: () => number;
  /** How often the lag probe is read; between reads the last value is used. */
  readonly lagRefreshMs?: number;
  readonly retryAfterSeconds?: number;
  readonly now?: () => number;
  /** Told the pending bytes after every change (a metrics gauge). */
  readonly onPending?: (bytes: number) => void;
}

export class Backpressure {
  private pending = 0;
  private lagValue = 0;
  private lagReadAt = Number.NEGATIVE_INFINITY;
  private readonly retryAfter: number;
  private readonly refreshMs: number;
  private readonly now: () => number;

  constructor(private readonly options: BackpressureOptions) {
    this.retryAfter = options.retryAfterSeconds ?? 1;
    this.refreshMs = options.lagRefreshMs ?? 100;
    this.now = options.now ?? Date.now;
  }

  /** Bytes accepted and not yet durable. */
  get pendingBytes(): number {
    return this.pending;
  }

  /** Reserves room for a batch or throws `overloaded`; the caller must `release` the same bytes. */
  admit(bytes: number): void {
    const { maxPendingBytes, maxLagRecords } = this.options;
    // One batch always gets through an idle log, however large, so a big batch cannot starve.
    if (this.pending > 0 && this.pending + bytes > maxPendingBytes) {
      throw new RunnelError(
        "overloaded",
        `the log is behind (${this.pending} bytes waiting to be durable); retry after ${this.retryAfter} s`,
        { retryAfter: this.retryAfter },
      );
    }
    if (maxLagRecords > 0 && this.options.lag !== undefined) {
      const lag = this.currentLag();
      if (lag > maxLagRecords) {
        throw new RunnelError(
          "overloaded",
          `processing is behind by ${lag} records (bound ${maxLagRecords}); retry after ${this.retryAfter} s`,
          { retryAfter: this.retryAfter },
        );
      }
    }
    this.pending += bytes;
    this.options.onPending?.(this.pending);
  }

  release(bytes: number): void {
    this.pending -= bytes;
    this.options.onPending?.(this.pending);
  }

  private currentLag(): number {
    const now = this.now();
    if (now - this.lagReadAt >= this.refreshMs) {
      this.lagValue = this.options.lag!();
      this.lagReadAt = now;
    }
    return this.lagValue;
  }
}
