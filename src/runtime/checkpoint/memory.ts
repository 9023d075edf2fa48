import {
  CheckpointFencedError,
  type CheckpointKind,
  CheckpointNoBaseError,
  type CheckpointStore,
  type StoredTaskCheckpoint,
  type TaskClaim,
} from "./store.js";

interface TaskEntry {
  epoch: number;
  written?: { epoch: number; base: Uint8Array; deltas: Uint8Array[] };
}

/** In memory: for unit tests and code-first jobs that need not survive the process. */
export class MemoryCheckpointStore implements CheckpointStore {
  private readonly tasks = new Map<string, TaskEntry>();

  async claim(task: string, _owner: string): Promise<TaskClaim> {
    const entry = this.tasks.get(task) ?? { epoch: 0 };
    entry.epoch += 1;
    this.tasks.set(task, entry);
    return { task, epoch: entry.epoch };
  }

  async read(task: string): Promise<StoredTaskCheckpoint | undefined> {
    const written = this.tasks.get(task)?.written;
    return written === undefined
      ? undefined
      : { epoch: written.epoch, base: written.base.slice(), deltas: written.deltas.map((d) => d.slice()) };
  }

  async write(task: string, epoch: number, kind: CheckpointKind, data: Uint8Array): Promise<void> {
    const entry = this.fenced(task, epoch);
    if (kind === "base") {
      entry.written = { epoch, base: data.slice(), deltas: [] };
      return;
    }
    if (entry.written === undefined) throw new CheckpointNoBaseError(task);
    entry.written.deltas.push(data.slice());
    entry.written.epoch = epoch;
  }

  async drop(task: string, epoch: number): Promise<void> {
    delete this.fenced(task, epoch).written;
  }

  async list(prefix: string): Promise<string[]> {
    return [...this.tasks.keys()].filter((t) => t.startsWith(prefix)).sort();
  }

  async close(): Promise<void> {}

  private fenced(task: string, epoch: number): TaskEntry {
    const entry = this.tasks.get(task) ?? { epoch: 0 };
    if (epoch !== entry.epoch) throw new CheckpointFencedError(task, epoch, entry.epoch);
    return entry;
  }
}
