/**
 * Checkpoints in the control plane's PostgreSQL: the store every instance of an installation
 * reaches, so a task's state no longer depends on one machine's disk (docs/design.md, "Where state
 * lives"). The same SQL runs on PGlite, through the control store's SqlDriver seam.
 *
 * A task is a row of `checkpoint_tasks` (its newest claim) and its bases and deltas are parts of
 * `checkpoint_chunks`, each cut in chunks of at most 1 MiB (migration 12). A claim is one
 * `UPDATE … epoch + 1`; a write or drop runs in one transaction that first locks the task's row
 * (`FOR UPDATE`) and compares epochs, so a claim waits for a write in flight and a write after a
 * claim is refused: fencing by the database's row lock, with nothing to clean up when a process
 * dies. A writer killed mid-transaction leaves nothing behind: its transaction rolls back.
 */
import type { SqlDriver, SqlExecutor } from "../../control/driver.js";
import { migrate } from "../../control/migrations.js";
import { connectPostgres } from "../../control/postgres.js";
import {
  CheckpointFencedError,
  type CheckpointKind,
  CheckpointNoBaseError,
  type CheckpointStore,
  type StoredTaskCheckpoint,
  type TaskClaim,
} from "./store.js";

/** Rows of 1 MiB: large enough that a 100 MB state is a hundred statements, small enough to stream. */
export const CHUNK_BYTES = 1024 * 1024;
/** Chunks fetched per statement while reading, so a read holds a bounded response at a time. */
const READ_BATCH = 16;

type Int8 = string | number | bigint;

interface TaskRow {
  epoch: Int8;
  written_epoch: Int8 | null;
  base_seq: Int8 | null;
  next_seq: Int8;
}

interface ChunkRow {
  seq: Int8;
  chunk: number;
  data: Uint8Array;
}

/**
 * How long a write may sit inside its transaction between statements before the server ends it. A
 * write holds its task's row lock, and a claim waits for it: a process paused (SIGSTOP, a long GC
 * pause) in the middle of a write would hold the new owner's claim, and so the task's handover,
 * until it woke. A live writer sends its statements back to back, far within this.
 */
export const IDLE_IN_TRANSACTION_MS = 5_000;

export interface PostgresCheckpointStoreOptions {
  /** Close the driver with the store (true when the store opened it). */
  readonly ownsDriver?: boolean;
}

export class PostgresCheckpointStore implements CheckpointStore {
  /** @param driver a connection whose database has been migrated (migrate, src/control/migrations.ts) */
  constructor(
    private readonly driver: SqlDriver,
    private readonly options: PostgresCheckpointStoreOptions = {},
  ) {}

  /** Connects to the PostgreSQL at `url`, bringing its schema up to date. */
  static async connect(
    url: string,
    options: { idleInTransactionTimeoutMs?: number } = {},
  ): Promise<PostgresCheckpointStore> {
    // A task writes and reads one transaction at a time; a few connections serve every task.
    const driver = await connectPostgres(url, {
      max: 4,
      idleInTransactionTimeoutMs: options.idleInTransactionTimeoutMs ?? IDLE_IN_TRANSACTION_MS,
    });
    try {
      await migrate(driver);
    } catch (e) {
      await driver.close().catch(() => {});
      throw e;
    }
    return new PostgresCheckpointStore(driver, { ownsDriver: true });
  }

  async claim(task: string, owner: string): Promise<TaskClaim> {
    const { rows } = await this.driver.query<{ epoch: Int8 }>(
      `INSERT INTO checkpoint_tasks (task, epoch, owner) VALUES ($1, 1, $2)
       ON CONFLICT (task) DO UPDATE SET epoch = checkpoint_tasks.epoch + 1, owner = EXCLUDED.owner, claimed_at = now()
       RETURNING epoch`,
      [task, owner],
    );
    return { task, epoch: Number(rows[0]!.epoch) };
  }

  read(task: string): Promise<StoredTaskCheckpoint | undefined> {
    return this.driver.transaction(async (tx) => {
      // One snapshot for the task row and every chunk, without blocking the owner's writes.
      await tx.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
      const { rows } = await tx.query<TaskRow>(
        "SELECT epoch, written_epoch, base_seq, next_seq FROM checkpoint_tasks WHERE task = $1",
        [task],
      );
      const row = rows[0];
      if (row?.base_seq == null) return undefined;
      const parts = await readParts(tx, task, Number(row.base_seq));
      const [base, ...deltas] = parts;
      return { epoch: Number(row.written_epoch), base: base!, deltas };
    });
  }

  write(task: string, epoch: number, kind: CheckpointKind, data: Uint8Array): Promise<void> {
    return this.driver.transaction(async (tx) => {
      const row = await this.lockOwned(tx, task, epoch);
      if (kind === "delta" && row.base_seq === null) throw new CheckpointNoBaseError(task);
      const seq = Number(row.next_seq);
      const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      // An empty part still gets its one chunk, so every part is found by reading its chunks.
      for (let chunk = 0, at = 0; chunk === 0 || at < bytes.byteLength; chunk++, at += CHUNK_BYTES) {
        await tx.query("INSERT INTO checkpoint_chunks (task, seq, chunk, data) VALUES ($1, $2, $3, $4)", [
          task,
          seq,
          chunk,
          bytes.subarray(at, at + CHUNK_BYTES),
        ]);
      }
      if (kind === "base") {
        await tx.query("DELETE FROM checkpoint_chunks WHERE task = $1 AND seq < $2", [task, seq]);
      }
      await tx.query(
        `UPDATE checkpoint_tasks SET written_epoch = $2, next_seq = $3 + 1,
           base_seq = CASE WHEN $4 THEN $3 ELSE base_seq END
         WHERE task = $1`,
        [task, epoch, seq, kind === "base"],
      );
    });
  }

  drop(task: string, epoch: number): Promise<void> {
    return this.driver.transaction(async (tx) => {
      await this.lockOwned(tx, task, epoch);
      await tx.query("DELETE FROM checkpoint_chunks WHERE task = $1", [task]);
      await tx.query("UPDATE checkpoint_tasks SET written_epoch = NULL, base_seq = NULL WHERE task = $1", [task]);
    });
  }

  async list(prefix: string): Promise<string[]> {
    const { rows } = await this.driver.query<{ task: string }>(
      "SELECT task FROM checkpoint_tasks WHERE left(task, length($1)) = $1",
      [prefix],
    );
    return rows.map((r) => r.task).sort();
  }

  async close(): Promise<void> {
    if (this.options.ownsDriver === true) await this.driver.close();
  }

  /** Locks the task's row for this transaction; refused unless `epoch` is its newest claim. */
  private async lockOwned(tx: SqlExecutor, task: string, epoch: number): Promise<TaskRow> {
    const { rows } = await tx.query<TaskRow>(
      "SELECT epoch, written_epoch, base_seq, next_seq FROM checkpoint_tasks WHERE task = $1 FOR UPDATE",
      [task],
    );
    const current = rows[0] === undefined ? 0 : Number(rows[0].epoch);
    if (current !== epoch) throw new CheckpointFencedError(task, epoch, current);
    return rows[0]!;
  }
}

/** The parts from `baseSeq` on (the base, then its deltas), each put back together from its chunks. */
async function readParts(tx: SqlExecutor, task: string, baseSeq: number): Promise<Uint8Array[]> {
  const parts: Uint8Array[][] = [];
  let seq = baseSeq;
  let chunk = -1;
  for (;;) {
    const { rows } = await tx.query<ChunkRow>(
      `SELECT seq, chunk, data FROM checkpoint_chunks
       WHERE task = $1 AND (seq, chunk) > ($2, $3) AND seq >= $2
       ORDER BY seq, chunk LIMIT ${READ_BATCH}`,
      [task, seq, chunk],
    );
    for (const row of rows) {
      if (row.chunk === 0) parts.push([]);
      parts.at(-1)!.push(row.data);
      seq = Number(row.seq);
      chunk = row.chunk;
    }
    if (rows.length < READ_BATCH) return parts.map(concat);
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
