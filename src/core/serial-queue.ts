/**
 * Async tasks run one at a time, in the order they were queued: the one serial queue (and its
 * keyed form) every component uses instead of a promise chain of its own.
 *
 * A task's result or error goes to its caller only; a failed task does not stop the tasks queued
 * after it.
 *
 * @example
 * const queue = new SerialQueue();
 * const a = queue.run(async () => 1);
 * const b = queue.run(async () => 2); // starts once `a` has settled
 */
export class SerialQueue {
  private tail: Promise<void> = Promise.resolve();
  private waitingCount = 0;
  private unsettled = 0;
  private readonly settle = (): void => {
    this.unsettled--;
  };

  /** Runs `task` after every task queued before it has settled; resolves or rejects as it does. */
  run<T>(task: () => Promise<T>): Promise<T> {
    this.waitingCount++;
    this.unsettled++;
    const result = this.tail.then(() => {
      this.waitingCount--;
      return task();
    });
    this.tail = result.then(this.settle, this.settle);
    return result;
  }

  /** Tasks queued and not started yet (a long task can yield to them). */
  get waiting(): number {
    return this.waitingCount;
  }

  /** Tasks queued or running. */
  get size(): number {
    return this.unsettled;
  }

  /** Resolves once every task queued so far has settled (never rejects). */
  idle(): Promise<void> {
    return this.tail;
  }
}

/**
 * One SerialQueue per key: tasks of one key run one at a time and in order, tasks of different
 * keys concurrently. A key's queue is dropped once it has nothing queued or running, so a key
 * used once holds no memory.
 */
export class KeyedSerialQueue<K> {
  private readonly queues = new Map<K, SerialQueue>();

  run<T>(key: K, task: () => Promise<T>): Promise<T> {
    let queue = this.queues.get(key);
    if (queue === undefined) {
      queue = new SerialQueue();
      this.queues.set(key, queue);
    }
    const result = queue.run(task);
    const q = queue;
    // Registered after the queue's own settle reaction, so `size` already counts this task out.
    const release = (): void => {
      if (q.size === 0 && this.queues.get(key) === q) this.queues.delete(key);
    };
    result.then(release, release);
    return result;
  }

  /** Resolves once every task of `key` queued so far has settled (never rejects). */
  idle(key: K): Promise<void> {
    return this.queues.get(key)?.idle() ?? Promise.resolve();
  }

  /** Resolves once every task of every key queued so far has settled (never rejects). */
  async idleAll(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.idle()));
  }

  /** Keys with a task queued or running. */
  get keys(): number {
    return this.queues.size;
  }
}
