import { setImmediate as nextTurn } from "node:timers/promises";

/** Longest run of background checkpoint serialisation before the event loop gets a turn, ms. */
export const CAPTURE_SLICE_MS = 1;

interface Waiting {
  readonly step: (deadline: number) => boolean;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

/**
 * Background checkpoint captures (TaskOperator.beginSnapshot) of every task in the process share
 * one slice of CAPTURE_SLICE_MS per turn of the event loop, stepped in the order they began: four
 * partitions capturing at once delay other work by one slice per turn, not four (the CEP's runner
 * stepped its partitions' captures the same way).
 */
export class CaptureSlices {
  private readonly waiting: Waiting[] = [];
  private running = false;

  /** Steps `step` with a deadline in the shared slices until it returns true (or throws). */
  run(step: (deadline: number) => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ step, resolve, reject });
      if (!this.running) void this.loop();
    });
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      for (;;) {
        const deadline = performance.now() + CAPTURE_SLICE_MS;
        while (this.waiting.length > 0 && performance.now() < deadline) {
          const first = this.waiting[0] as Waiting;
          let done: boolean;
          try {
            done = first.step(deadline);
          } catch (e) {
            this.waiting.shift();
            first.reject(e);
            continue;
          }
          if (!done) break;
          this.waiting.shift();
          first.resolve();
        }
        if (this.waiting.length === 0) return;
        await nextTurn();
      }
    } finally {
      this.running = false;
    }
  }
}

/** The process's one set of slices. */
export const captureSlices = new CaptureSlices();
