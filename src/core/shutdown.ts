/**
 * Stopping the components of a running server, last started first. Each gets a bounded time:
 * nothing acknowledged depends on a clean stop (acknowledgements follow durability), so a component
 * stuck on an unreachable dependency (a Kafka broker that went away, say) must not keep the
 * process alive, and one that fails must not keep the others open.
 */

/** One component to stop, named for the log line that reports it. */
export interface Closer {
  readonly name: string;
  close(): Promise<void>;
  /**
   * Started at the latest this long after the shutdown began, even while steps before it still
   * run. For a step whose delay costs others (a cluster instance leaving its group: its slots
   * move one session timeout after it leaves), a bound on how long slow steps ahead can hold it.
   */
  readonly latestStartMs?: number;
}

/** The log levels shutdown reports at (a pino logger fits). */
export interface ShutdownLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export const STOP_COMPONENT_MS = 10_000;
/** A step slower than this is reported at info: a slow stop delays a rolling restart's handover. */
const SLOW_STEP_MS = 1_000;

/** Stops `closers` in reverse order, each within `timeoutMs`, and empties the list. */
export async function stopInReverse(
  closers: Closer[],
  logger: ShutdownLogger,
  timeoutMs: number = STOP_COMPONENT_MS,
): Promise<void> {
  const pending = closers.splice(0).reverse();
  const stopping = new Map<Closer, Promise<void>>();
  const stop = (closer: Closer): Promise<void> => {
    let stopped = stopping.get(closer);
    if (stopped === undefined) {
      stopped = stopOne(closer, logger, timeoutMs);
      stopping.set(closer, stopped);
    }
    return stopped;
  };
  const early = pending.flatMap((closer) => {
    const { latestStartMs } = closer;
    if (latestStartMs === undefined) return [];
    return [
      setTimeout(() => {
        if (stopping.has(closer)) return;
        logger.warn(
          { step: closer.name, ms: latestStartMs },
          "the steps before it are slow; stopping it now, beside them",
        );
        void stop(closer);
      }, latestStartMs),
    ];
  });
  try {
    for (const closer of pending) await stop(closer);
  } finally {
    for (const timer of early) clearTimeout(timer);
  }
}

async function stopOne(closer: Closer, logger: ShutdownLogger, timeoutMs: number): Promise<void> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const overdue = new Promise<"overdue">((resolve) => {
    timer = setTimeout(() => resolve("overdue"), timeoutMs);
  });
  try {
    const outcome = await Promise.race([closer.close().then(() => "stopped" as const), overdue]);
    const ms = Math.round(performance.now() - started);
    if (outcome === "overdue") logger.warn({ step: closer.name, ms }, "did not stop in time; shutting down without it");
    else if (ms >= SLOW_STEP_MS) logger.info({ step: closer.name, ms }, "stopped slowly");
    else logger.debug({ step: closer.name, ms }, "stopped");
  } catch (err) {
    logger.warn({ err, step: closer.name }, "failed to stop cleanly");
  } finally {
    clearTimeout(timer);
  }
}
