import { eventTimeProgress } from "./event-clock.js";

/**
 * Per-partition watermarks with bounded out-of-orderness, combined as Flink combines the
 * watermarks of parallel inputs (WatermarkOutputMultiplexer):
 * - a partition's watermark is `maxTimestamp - outOfOrderness - 1` (BoundedOutOfOrdernessWatermarks);
 * - time is the minimum over partitions that are not idle, and never goes back;
 * - a partition that has delivered nothing for `idleTimeoutMs` of processing time (the injected
 *   clock) is idle and stops holding time back until it delivers again;
 * - when every partition is idle, time moves to the largest partition watermark, as Flink's
 *   StatusWatermarkValve does when its last active channel goes idle: otherwise partitions that
 *   fall idle in the same round (one that never had data, one that went quiet) would never let
 *   the data already seen close its windows.
 *
 * One departure from Flink, because Runnel's partitions hold many users' events: a record moves
 * its partition's time no further than the log's clock when it took the record
 * (./event-clock.ts). An event stamped in the future (9999-12-31) would otherwise move the
 * partition's time to the end of time and make every later event of every user in it late;
 * instead it waits for its own time in its window. For ordinary events, stamped before they are
 * appended, nothing changes.
 */
export interface WatermarkOptions {
  readonly outOfOrdernessMs: number;
  /** 0 disables idleness: a silent partition holds time back forever, as in Flink without withIdleness. */
  readonly idleTimeoutMs: number;
}

export class WatermarkTracker {
  readonly maxTimestamp: number[];
  private readonly lastActive: number[];
  private readonly idle: boolean[];
  private current = Number.NEGATIVE_INFINITY;

  constructor(
    partitions: number,
    private readonly options: WatermarkOptions,
    now: number,
  ) {
    this.maxTimestamp = new Array<number>(partitions).fill(Number.NEGATIVE_INFINITY);
    this.lastActive = new Array<number>(partitions).fill(now);
    this.idle = new Array<boolean>(partitions).fill(false);
  }

  get watermark(): number {
    return this.current;
  }

  /** After a restore: the combined watermark and each partition's progress as checkpointed. */
  restore(watermark: number, maxTimestamp: readonly number[]): void {
    this.current = watermark;
    for (let p = 0; p < this.maxTimestamp.length; p++) {
      this.maxTimestamp[p] = maxTimestamp[p] ?? Number.NEGATIVE_INFINITY;
    }
  }

  /** Hot path: called once per event; `appendTime` is when the log took it (see above; absent: unbounded). */
  observe(partition: number, timestamp: number, appendTime = Number.POSITIVE_INFINITY): void {
    const t = eventTimeProgress(timestamp, appendTime);
    if (t > (this.maxTimestamp[partition] as number)) this.maxTimestamp[partition] = t;
  }

  /** A read of `partition` returned records (`delivered`) or nothing, at processing time `now`. */
  touch(partition: number, delivered: boolean, now: number): void {
    if (delivered) {
      this.lastActive[partition] = now;
      this.idle[partition] = false;
    } else if (
      this.options.idleTimeoutMs > 0 &&
      now - (this.lastActive[partition] as number) >= this.options.idleTimeoutMs
    ) {
      this.idle[partition] = true;
    }
  }

  isIdle(partition: number): boolean {
    return this.idle[partition] === true;
  }

  /** Recomputes the combined watermark; returns it (unchanged when it would go back). */
  update(): number {
    const next = combineWatermarks(this.maxTimestamp, this.idle, this.options.outOfOrdernessMs + 1);
    if (next > this.current) this.current = next;
    return this.current;
  }
}

/**
 * The combined watermark of inputs whose own watermarks are `progress[i] - lag`: the minimum over
 * those not idle, or the largest when every one is idle (see above).
 */
export function combineWatermarks(progress: readonly number[], idle: readonly boolean[], lag: number): number {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  let active = 0;
  for (let p = 0; p < progress.length; p++) {
    const w = (progress[p] as number) - lag;
    if (w > max) max = w;
    if (idle[p]) continue;
    active++;
    if (w < min) min = w;
  }
  return active > 0 ? min : max;
}
