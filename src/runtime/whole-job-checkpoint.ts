import type { CheckpointStore } from "./checkpoint/store.js";
import type { LegacyCheckpoints } from "./driver.js";
import { decodeTaskCheckpoint, type TaskCheckpoint } from "./task-checkpoint.js";

/** The one task over every partition of its input that windowed and keyed jobs ran as before. */
function wholeInputTask(job: string): string {
  return `${job}/*`;
}

/**
 * A job's checkpoint from before its tasks were per partition: its one task over every input
 * partition (`<job>/*` in the store), or, older, what `older` reads (a windowed job's log-stream
 * checkpoint).
 * Each of the job's new tasks imports its part once (`forTask`); once every one of them has a
 * checkpoint of its own, the old ones are dropped, so a crash halfway through the import leaves
 * the old checkpoint for the tasks still to import it.
 */
export class WholeJobCheckpoint {
  private loaded: Promise<TaskCheckpoint | undefined> | undefined;
  private dropping: Promise<void> = Promise.resolve();
  private dropped = false;

  constructor(
    private readonly options: {
      readonly checkpoints: CheckpointStore;
      readonly job: string;
      readonly owner: string;
      /** Every task of the job in the new layout. */
      readonly tasks: readonly string[];
      readonly older?: { read(): Promise<TaskCheckpoint | undefined>; drop(): Promise<void> };
    },
  ) {}

  /** The whole checkpoint, read once. */
  read(): Promise<TaskCheckpoint | undefined> {
    this.loaded ??= this.load();
    return this.loaded;
  }

  /** One new task's legacy source: the whole checkpoint turned into that task's part by `part`. */
  forTask(part: (whole: TaskCheckpoint) => Promise<TaskCheckpoint> | TaskCheckpoint): LegacyCheckpoints {
    return {
      read: async () => {
        const whole = await this.read();
        return whole === undefined ? undefined : part(whole);
      },
      imported: () => this.importedOne(),
    };
  }

  private async load(): Promise<TaskCheckpoint | undefined> {
    const { checkpoints, job, older } = this.options;
    const stored = await checkpoints.read(wholeInputTask(job));
    if (stored !== undefined) return decodeTaskCheckpoint(wholeInputTask(job), stored.base, stored.deltas);
    return older?.read();
  }

  /** One at a time: tasks start together, and the old checkpoint is claimed and dropped once. */
  private importedOne(): Promise<void> {
    this.dropping = this.dropping.then(() => (this.dropped ? undefined : this.dropIfDone()));
    return this.dropping;
  }

  private async dropIfDone(): Promise<void> {
    const { checkpoints, job, owner, tasks, older } = this.options;
    for (const task of tasks) if ((await checkpoints.read(task)) === undefined) return;
    const whole = wholeInputTask(job);
    if ((await checkpoints.list(whole)).includes(whole)) {
      const { epoch } = await checkpoints.claim(whole, owner);
      await checkpoints.drop(whole, epoch);
    }
    await older?.drop();
    this.dropped = true;
  }
}
