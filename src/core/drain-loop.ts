/**
 * The loop every log consumer runs (CEP rules, pipelines, windowed pipelines): rounds of work
 * while there is any, woken by appends; wakes during a drain are coalesced into it, never lost;
 * a failed drain is reported and retried after a delay that doubles with each failure in a row
 * (up to 32 times the first), and the loop says it is failing until a round succeeds again.
 *
 * A failed drain means trouble that is not a record's (the log, a store, the network): consumers
 * dead-letter the records they can never process (src/core/dead-letters.ts) and move on, so a
 * loop that keeps failing is one to show in readiness, never one to skip past.
 *
 * A wake between the drain's last look at `pending` and its end is the case a plain
 * "drain().finally(() => draining = undefined)" loses (the append arrives, sees a drain running
 * and leaves it the work, but the drain has already decided to stop); here the end of a drain
 * looks again and starts another.
 *
 * @example
 * const loop = new DrainLoop({ round: () => readAndProcess(), onError: (e) => count(e) });
 * log.onAppend(stream, () => loop.wake());
 * loop.wake();
 */
export interface DrainLoopOptions {
  /** One round of work; true when there may be more right away. */
  readonly round: () => Promise<boolean>;
  /**
   * Runs at the start of each drain before its rounds (e.g. recovery after a failure); undefined
   * when there is nothing to do, so the first round starts at once, as the wake's caller expects.
   */
  readonly prepare?: () => Promise<void> | undefined;
  /** Runs after each round (e.g. starting a background checkpoint). */
  readonly afterRound?: () => void;
  /** A drain failed: record why. The loop tries again after `retryDelayMs`. */
  readonly onError: (e: unknown) => void;
  /**
   * Default 1000: the first retry's delay, doubled for each further failure in a row up to 32
   * times it. A function is asked before each retry instead (its own back-off).
   */
  readonly retryDelayMs?: number | (() => number);
  /** Clock for `failing.since`; default Date.now. */
  readonly now?: () => number;
}

/** A loop whose drains keep failing: since when, how often in a row, and the last error. */
export interface DrainFailure {
  readonly since: number;
  readonly attempts: number;
  readonly error: unknown;
}

/** The back-off stops doubling here: 2^5 times the first delay. */
const MAX_BACKOFF_DOUBLINGS = 5;

export class DrainLoop {
  private pending = false;
  private draining: Promise<void> | undefined;
  /** Set before the drain's first (synchronous) round, so a wake from inside it is coalesced, not re-entered. */
  private active = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;
  private failure: DrainFailure | undefined;

  constructor(private readonly options: DrainLoopOptions) {}

  /** Lets wakes start drains (they are only remembered before). */
  start(): void {
    if (this.stopped) return;
    this.running = true;
    if (this.pending) this.wake();
  }

  /** There may be work: drain now, or once the drain in progress ends. */
  wake(): void {
    this.pending = true;
    if (this.active || !this.running || this.stopped) return;
    this.active = true;
    this.draining = this.drain().finally(() => {
      this.active = false;
      this.draining = undefined;
      if (this.pending) this.wake();
    });
  }

  /** Resolves once no drain runs (every wake so far has been drained). */
  async idle(): Promise<void> {
    while (this.draining !== undefined) await this.draining;
  }

  /** No more drains; resolves once the one in progress (its current round) ends. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    await this.draining;
  }

  /** A drain runs (rounds are in flight or due). */
  get busy(): boolean {
    return this.draining !== undefined;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Set from a failed drain until a round succeeds. */
  get failing(): DrainFailure | undefined {
    return this.failure;
  }

  private async drain(): Promise<void> {
    try {
      const preparing = this.options.prepare?.();
      if (preparing !== undefined) await preparing;
      while (this.pending && !this.stopped) {
        this.pending = false;
        if (await this.options.round()) this.pending = true;
        this.failure = undefined;
        this.options.afterRound?.();
      }
    } catch (e) {
      // Not pending: the retry wakes it, so a failing round is not run again at once.
      this.pending = false;
      const attempts = (this.failure?.attempts ?? 0) + 1;
      this.failure = { since: this.failure?.since ?? (this.options.now ?? Date.now)(), attempts, error: e };
      this.options.onError(e);
      if (!this.stopped) {
        const delay = this.options.retryDelayMs ?? 1000;
        const ms = typeof delay === "number" ? delay * 2 ** Math.min(attempts - 1, MAX_BACKOFF_DOUBLINGS) : delay();
        this.retryTimer = setTimeout(() => this.wake(), ms);
        this.retryTimer.unref();
      }
    }
  }
}
