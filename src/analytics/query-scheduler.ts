/**
 * Admission of SQL queries, fair across principals (users): at most `maxRunning` queries run at
 * once, at most `maxRunningPerPrincipal` of them for any one principal, and a free slot goes to
 * the waiting principals in turn (round robin), not to whoever queued most. A principal's queue is
 * bounded; past it the query is refused with 429 `overloaded` and Retry-After, so one user's load
 * costs only that user. With four runaway queries from one user, that user holds one slot (on the
 * defaults) and another user's query starts at once in the other.
 *
 * The principal is whoever the queries are charged to; the HTTP layer charges a user's tokens and
 * API keys to the user, so minting keys buys no extra share.
 *
 * @example
 * const scheduler = new QueryScheduler({ maxRunning: 2, maxRunningPerPrincipal: 1, maxQueuedPerPrincipal: 16 });
 * const result = await scheduler.run("alice", () => analytics.query(sql, [], scope));
 */
import { RunnelError } from "../core/errors.js";

export interface QuerySchedulerOptions {
  /** Queries running at once, over all principals. */
  readonly maxRunning: number;
  readonly maxRunningPerPrincipal: number;
  /** Queries of one principal waiting for a slot before more are refused. */
  readonly maxQueuedPerPrincipal: number;
  /** Sent as Retry-After with a refusal. Default 1 s. */
  readonly retryAfterSeconds?: number;
}

export interface SchedulerStats {
  readonly running: number;
  readonly queued: number;
}

interface Waiting {
  readonly start: () => void;
}

interface PrincipalState {
  running: number;
  readonly queue: Waiting[];
}

export class QueryScheduler {
  private readonly principals = new Map<string, PrincipalState>();
  /** Principals with queries waiting, in the order their turn comes. */
  private readonly turns: string[] = [];
  private running = 0;
  private queued = 0;

  constructor(private readonly options: QuerySchedulerOptions) {
    for (const key of ["maxRunning", "maxRunningPerPrincipal", "maxQueuedPerPrincipal"] as const) {
      const n = options[key];
      if (!Number.isSafeInteger(n) || n < (key === "maxQueuedPerPrincipal" ? 0 : 1)) {
        throw new RangeError(`query scheduler: ${key} must be a whole number of at least 1 (0 for the queue)`);
      }
    }
  }

  /**
   * Runs `task` once a slot is free for `principal`. Refuses with `overloaded` when that
   * principal's queue is full; a query still waiting when `signal` aborts (the client went away)
   * leaves the queue and rejects with the signal's reason.
   */
  // async, so refusals reject rather than throw; admission still happens synchronously on call.
  async run<T>(principal: string, task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    const state = this.stateOf(principal);
    if (this.canStart(state)) return this.start(principal, state, task);
    if (state.queue.length >= this.options.maxQueuedPerPrincipal) {
      this.forgetIfIdle(principal, state);
      const retryAfter = this.options.retryAfterSeconds ?? 1;
      throw new RunnelError(
        "overloaded",
        `too many queries of yours are running or waiting (at most ${this.options.maxRunningPerPrincipal} run and ` +
          `${this.options.maxQueuedPerPrincipal} wait at once); retry after ${retryAfter} s`,
        { retryAfter },
      );
    }
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        const at = state.queue.indexOf(waiting);
        if (at === -1) return;
        state.queue.splice(at, 1);
        this.queued--;
        if (state.queue.length === 0) this.leaveTurns(principal);
        this.forgetIfIdle(principal, state);
        reject(signal?.reason);
      };
      const waiting: Waiting = {
        start: () => {
          signal?.removeEventListener("abort", onAbort);
          this.start(principal, state, task).then(resolve, reject);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      if (state.queue.length === 0) this.turns.push(principal);
      state.queue.push(waiting);
      this.queued++;
    });
  }

  stats(): SchedulerStats {
    return { running: this.running, queued: this.queued };
  }

  private stateOf(principal: string): PrincipalState {
    let state = this.principals.get(principal);
    if (state === undefined) {
      state = { running: 0, queue: [] };
      this.principals.set(principal, state);
    }
    return state;
  }

  private canStart(state: PrincipalState): boolean {
    return this.running < this.options.maxRunning && state.running < this.options.maxRunningPerPrincipal;
  }

  private async start<T>(principal: string, state: PrincipalState, task: () => Promise<T>): Promise<T> {
    this.running++;
    state.running++;
    try {
      return await task();
    } finally {
      this.running--;
      state.running--;
      this.forgetIfIdle(principal, state);
      this.dispatch();
    }
  }

  /** Fills free slots from the waiting principals, each in turn; one that is at its own bound keeps its place. */
  private dispatch(): void {
    let looked = 0;
    while (this.running < this.options.maxRunning && looked < this.turns.length) {
      const principal = this.turns.shift()!;
      const state = this.principals.get(principal)!;
      if (state.running >= this.options.maxRunningPerPrincipal) {
        this.turns.push(principal);
        looked++;
        continue;
      }
      const next = state.queue.shift()!;
      this.queued--;
      if (state.queue.length > 0) this.turns.push(principal);
      looked = 0;
      next.start();
    }
  }

  private leaveTurns(principal: string): void {
    const at = this.turns.indexOf(principal);
    if (at !== -1) this.turns.splice(at, 1);
  }

  private forgetIfIdle(principal: string, state: PrincipalState): void {
    if (state.running === 0 && state.queue.length === 0) this.principals.delete(principal);
  }
}
