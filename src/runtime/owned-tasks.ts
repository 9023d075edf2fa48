import { ownedPartitions, type PartitionOwnership } from "../cluster/ownership.js";

/**
 * One running task as every runner reports it (pipelines, windowed and keyed jobs with their
 * exchanges, CEP rules, the analytics loader), for the cluster view and readiness (issue 19).
 */
export interface TaskInfo {
  /** `<job>/<partition>` (src/runtime/checkpoint/store.ts, taskName). */
  readonly task: string;
  /** The partition it runs: of its input, or of the job's internal stream. */
  readonly partition: number;
  /** Records of that partition not yet processed, as of the task's last round. */
  readonly lag: number;
  /** Claimed and restored from its checkpoint, so it is processing. */
  readonly restored: boolean;
}

/** Wait before starting again the tasks of owned partitions that failed to start. */
const RETRY_MS = 1000;

/** What OwnedTasks starts and stops (a TaskDriver, or a runner's own per-partition task). */
export interface OwnedTask {
  /** Claims the task and restores it; resolves once it is processing. */
  start(): Promise<void>;
  /** After the round in flight, with a final checkpoint (shutdown). */
  stop(): Promise<void>;
  /** At once, writing nothing more: the partition is, or is about to be, another instance's. */
  revoke(): Promise<void>;
  info(): TaskInfo;
}

export interface OwnedTasksOptions<T extends OwnedTask> {
  readonly ownership: PartitionOwnership;
  /** Of the stream the tasks read: task p reads its partition p. */
  readonly partitions: number;
  /** A new task for partition p, at each gain (a stopped task is never started again). */
  readonly create: (partition: number) => T | Promise<T>;
}

/**
 * The per-partition tasks of one job stage on this instance: those of the partitions the
 * ownership (src/cluster/ownership.ts) gives it, following its changes. A change revokes the tasks
 * of lost partitions first, then starts those of gained ones, and resolves once they have
 * restored (the ownership awaits it: readiness follows). Changes are applied one at a time, each
 * bringing the running set to what the ownership says then.
 *
 * @example
 * const tasks = new OwnedTasks({ ownership, partitions: 4, create: (p) => new TaskDriver({ ...options, partitions: [p] }) });
 * await tasks.start(); // the owned partitions' tasks have restored
 * tasks.info();        // [{ task: "job/1", partition: 1, lag: 0, restored: true }, …]
 * await tasks.stop();  // final checkpoints
 */
export class OwnedTasks<T extends OwnedTask> {
  private readonly running = new Map<number, T>();
  private unsubscribe: (() => void) | undefined;
  /** The change being applied; the next waits for it. */
  private changes: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly options: OwnedTasksOptions<T>) {}

  /** Starts the owned partitions' tasks (all or none: a failure stops those started), then follows changes. */
  async start(): Promise<void> {
    this.unsubscribe ??= this.options.ownership.subscribe(() => this.follow());
    try {
      await this.follow();
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  /** Stops following, then stops every task with a final checkpoint. */
  async stop(): Promise<void> {
    const tasks = await this.detach();
    await Promise.all(tasks.map((t) => t.stop()));
  }

  /**
   * Stops following the ownership; returns the running tasks, for a caller that stops them in its
   * own order. They stay listed (their statistics remain readable).
   */
  async detach(): Promise<T[]> {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    await this.changes;
    return this.list();
  }

  /** The running tasks, by partition. */
  list(): T[] {
    return [...this.running.entries()].sort(([a], [b]) => a - b).map(([, t]) => t);
  }

  /** The partitions whose tasks run here, ascending. */
  partitions(): number[] {
    return [...this.running.keys()].sort((a, b) => a - b);
  }

  /** The task of partition p, when it runs here. */
  get(partition: number): T | undefined {
    return this.running.get(partition);
  }

  info(): TaskInfo[] {
    return this.list().map((t) => t.info());
  }

  private follow(): Promise<void> {
    const next = this.changes.then(() => this.reconcile());
    this.changes = next.catch(() => {
      // A task that failed to start (its store or the log away) is tried again, change or not.
      if (this.stopped) return;
      const retry = setTimeout(() => void this.follow().catch(() => undefined), RETRY_MS);
      retry.unref();
    });
    return next;
  }

  private async reconcile(): Promise<void> {
    if (this.stopped) return;
    const { ownership, partitions, create } = this.options;
    const wanted = new Set(ownedPartitions(ownership, partitions));
    const lost: T[] = [];
    for (const [p, t] of this.running) {
      if (wanted.has(p)) continue;
      this.running.delete(p);
      lost.push(t);
    }
    await Promise.all(lost.map((t) => t.revoke()));
    const gained = [...wanted].filter((p) => !this.running.has(p));
    const started = await Promise.allSettled(
      gained.map(async (p) => {
        const task = await create(p);
        this.running.set(p, task);
        await task.start();
      }),
    );
    let failure: PromiseRejectedResult | undefined;
    for (let i = 0; i < gained.length; i++) {
      const result = started[i] as PromiseSettledResult<void>;
      if (result.status === "fulfilled") continue;
      failure ??= result;
      // Dropped, so the next change (or start) creates it afresh: a driver does not start twice.
      const p = gained[i] as number;
      const task = this.running.get(p);
      this.running.delete(p);
      await task?.revoke();
    }
    if (failure !== undefined) throw failure.reason;
  }
}
