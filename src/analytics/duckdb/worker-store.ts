/**
 * The DuckDB analytics store run in a worker thread, behind the same AnalyticsStore seam. On the
 * event loop that also serves ingest, the loader's work (decoding every record, building data
 * chunks, DuckDB's appends, which are synchronous native calls) took about a third of the
 * server's CPU and capped HTTP ingest; in a worker it runs on the other core. Each call is one
 * message; log records cross as one transferred buffer of values plus typed arrays, so the event
 * loop pays a copy per record, not a parse (./packed-records.ts). The contract is unchanged: rows and offsets still
 * commit in one DuckDB transaction, inside the worker.
 *
 * @example
 * const store = createWorkerAnalyticsStore({ path: "data/analytics/runnel.duckdb" });
 * await store.open();
 */
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { TieredStore } from "../../archive/archiver.js";
import type { RollupSpec, StreamDefinition } from "../../control/types.js";
import { type ErrorCode, RunnelError } from "../../core/errors.js";
import { PoisonRecordError } from "../../core/poison.js";
import {
  type AnalyticsRow,
  type AnalyticsStore,
  APPLIED,
  type ApplyOutcome,
  type PartitionRecords,
  type PartitionShare,
  type QueryResult,
  type QueryScope,
  type RegisteredColumns,
} from "../types.js";
import { type PackedRecords, packRecords } from "./packed-records.js";
import type { RollupStats } from "./rollups.js";
import type { ArchiveRange, DuckDbAnalyticsStoreOptions, ExportedFile, UserRangeFile } from "./store.js";
import type { ArchiveSet } from "./tiers.js";

/** How long a closed worker gets to end by itself before it is terminated. */
const WORKER_EXIT_MS = 5_000;

export interface PackedPartition {
  readonly partition: number;
  readonly packed: PackedRecords;
}

export type WorkerMethod =
  | "open"
  | "close"
  | "ping"
  | "ensureTable"
  | "dropTable"
  | "apply"
  | "applyPacked"
  | "appliedOffsets"
  | "query"
  | "rollupStats"
  | "planArchive"
  | "exportRange"
  | "publishArchive"
  | "ensureColumns"
  | "mergeFiles"
  | "addRollup"
  | "dropRollup"
  | "writeRollupFile"
  | "splitByUser"
  | "deleteArchivedRows"
  | "clusterHot";

export interface WorkerRequest {
  readonly id: number;
  readonly method: WorkerMethod;
  readonly args: readonly unknown[];
}

/** An error as it crosses the thread boundary: RunnelErrors keep their code and details, poison stays poison. */
export interface WorkerError {
  readonly code?: ErrorCode;
  readonly poison?: true;
  readonly message: string;
  readonly details?: unknown;
}

export type WorkerResponse =
  | { readonly id: number; readonly value: unknown }
  | { readonly id: number; readonly error: WorkerError };

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
}

function revive(error: WorkerError): Error {
  if (error.poison) return new PoisonRecordError(error.message);
  return error.code !== undefined
    ? new RunnelError(error.code, error.message, error.details === undefined ? {} : { details: error.details })
    : new RunnelError("internal", `analytics worker: ${error.message}`);
}

export class WorkerAnalyticsStore implements AnalyticsStore, TieredStore {
  private worker: Worker | undefined;
  private failure: Error | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly options: DuckDbAnalyticsStoreOptions = {}) {}

  async open(): Promise<void> {
    if (this.worker) return;
    // The entry beside this module: store-worker.js in the compiled package, store-worker.ts when
    // running from source, where the worker inherits the process's `--import tsx`.
    const entry = new URL(`./store-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);
    const worker = new Worker(entry, { workerData: this.options });
    // Referenced only while calls are outstanding, so a store never keeps the process alive.
    worker.unref();
    worker.on("message", (message: WorkerResponse) => this.settle(message));
    worker.on("error", (error) => this.fail(error));
    worker.on("exit", (code) => this.fail(new Error(`exited with code ${code}`)));
    this.worker = worker;
    this.failure = undefined;
    try {
      await this.call("open", []);
    } catch (e) {
      await this.terminate();
      throw e;
    }
  }

  async close(): Promise<void> {
    if (!this.worker) return;
    let closed = false;
    try {
      await this.call("close", []);
      closed = true;
    } finally {
      await this.terminate(closed);
    }
  }

  async ping(): Promise<boolean> {
    if (!this.worker || this.failure) return false;
    return (await this.call("ping", [])) as boolean;
  }

  async ensureTable(stream: StreamDefinition): Promise<void> {
    await this.call("ensureTable", [stream]);
  }

  async dropTable(stream: string): Promise<void> {
    await this.call("dropTable", [stream]);
  }

  async apply(stream: string, partition: number, rows: readonly AnalyticsRow[]): Promise<void> {
    await this.call("apply", [stream, partition, rows]);
  }

  async applyRecords(
    stream: string,
    batches: readonly PartitionRecords[],
    registered?: RegisteredColumns,
  ): Promise<ApplyOutcome> {
    const packed: PackedPartition[] = [];
    const transfer: ArrayBuffer[] = [];
    for (const { partition, records } of batches) {
      if (records.length === 0) continue;
      const p = packRecords(records);
      packed.push({ partition, packed: p });
      transfer.push(p.values.buffer as ArrayBuffer, p.ends.buffer as ArrayBuffer, p.numbers.buffer as ArrayBuffer);
    }
    if (packed.length === 0) return APPLIED;
    return (await this.call("applyPacked", [stream, packed, registered], transfer)) as ApplyOutcome;
  }

  async appliedOffsets(stream: string): Promise<Map<number, number>> {
    return (await this.call("appliedOffsets", [stream])) as Map<number, number>;
  }

  async query(
    sql: string,
    params: readonly unknown[],
    scope: QueryScope,
    share?: PartitionShare,
  ): Promise<QueryResult> {
    return (await this.call("query", [sql, params, scope, share])) as QueryResult;
  }

  async rollupStats(stream: string): Promise<RollupStats[]> {
    return (await this.call("rollupStats", [stream])) as RollupStats[];
  }

  async planArchive(stream: string, cutoffMs: number, maxRows: number): Promise<ArchiveRange[]> {
    return (await this.call("planArchive", [stream, cutoffMs, maxRows])) as ArchiveRange[];
  }

  async exportRange(stream: string, range: ArchiveRange, path: string): Promise<ExportedFile> {
    return (await this.call("exportRange", [stream, range, path])) as ExportedFile;
  }

  async mergeFiles(files: readonly string[], path: string, rollups: readonly string[] = []): Promise<ExportedFile> {
    return (await this.call("mergeFiles", [files, path, rollups])) as ExportedFile;
  }

  async addRollup(stream: string, rollup: RollupSpec, boundaries: ReadonlyMap<number, number>): Promise<void> {
    await this.call("addRollup", [stream, rollup, boundaries]);
  }

  async dropRollup(stream: string, rollup: RollupSpec): Promise<void> {
    await this.call("dropRollup", [stream, rollup]);
  }

  async writeRollupFile(stream: string, rollup: RollupSpec, source: string, path: string): Promise<void> {
    await this.call("writeRollupFile", [stream, rollup, source, path]);
  }

  async splitByUser(
    files: readonly string[],
    path: string,
    maxRows: number,
    rollups: readonly string[] = [],
  ): Promise<UserRangeFile[]> {
    return (await this.call("splitByUser", [files, path, maxRows, rollups])) as UserRangeFile[];
  }

  async publishArchive(stream: string, archive: ArchiveSet): Promise<void> {
    await this.call("publishArchive", [stream, archive]);
  }

  async ensureColumns(stream: string, registered: RegisteredColumns): Promise<void> {
    await this.call("ensureColumns", [stream, registered]);
  }

  async deleteArchivedRows(stream: string): Promise<number> {
    return (await this.call("deleteArchivedRows", [stream])) as number;
  }

  async clusterHot(stream: string): Promise<number> {
    return (await this.call("clusterHot", [stream])) as number;
  }

  private call(method: WorkerMethod, args: readonly unknown[], transfer: ArrayBuffer[] = []): Promise<unknown> {
    const worker = this.worker;
    if (!worker) return Promise.reject(new RunnelError("not_ready", "analytics store is not open"));
    if (this.failure) {
      return Promise.reject(new RunnelError("not_ready", `analytics worker stopped: ${this.failure.message}`));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) worker.ref();
      this.pending.set(id, { resolve, reject });
      const request: WorkerRequest = { id, method, args };
      worker.postMessage(request, transfer);
    });
  }

  private settle(message: WorkerResponse): void {
    const pending = this.pending.get(message.id);
    if (!pending) return;
    this.pending.delete(message.id);
    if (this.pending.size === 0) this.worker?.unref();
    if ("error" in message) pending.reject(revive(message.error));
    else pending.resolve(message.value);
  }

  private fail(error: Error): void {
    this.failure ??= error;
    const reason = new RunnelError("not_ready", `analytics worker stopped: ${error.message}`, { cause: error });
    for (const p of this.pending.values()) p.reject(reason);
    this.pending.clear();
  }

  /**
   * Ends the thread: after a close it exits by itself once DuckDB is done (terminating it in the
   * middle of native work can abort the process), and is terminated only if it does not.
   */
  private async terminate(closed = false): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (!worker) return;
    worker.removeAllListeners("exit");
    if (!closed) {
      await worker.terminate();
      this.fail(new Error("closed"));
      return;
    }
    const exited = new Promise<boolean>((resolve) => worker.once("exit", () => resolve(true)));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), WORKER_EXIT_MS);
    });
    worker.ref();
    if (!(await Promise.race([exited, late]))) await worker.terminate();
    clearTimeout(timer);
    this.fail(new Error("closed"));
  }
}

export function createWorkerAnalyticsStore(options: DuckDbAnalyticsStoreOptions = {}): WorkerAnalyticsStore {
  return new WorkerAnalyticsStore(options);
}
