/**
 * Entry of the analytics worker thread (./worker-store.ts): one DuckDbAnalyticsStore answering
 * the main thread's calls, one message each.
 */
import { writeFileSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import type { RollupSpec, StreamDefinition } from "../../control/types.js";
import { RunnelError } from "../../core/errors.js";
import { PoisonRecordError } from "../../core/poison.js";
import type { AnalyticsRow, PartitionShare, QueryScope, RegisteredColumns } from "../types.js";
import { type ArchiveRange, DuckDbAnalyticsStore, type DuckDbAnalyticsStoreOptions } from "./store.js";
import type { ArchiveSet } from "./tiers.js";
import type { PackedPartition, WorkerError, WorkerRequest, WorkerResponse } from "./worker-store.js";

const port = parentPort;
if (port === null) throw new Error("store-worker.ts runs as a worker thread only");

// Names this thread (Linux), so per-thread CPU (top -H, bench/ingest.ts) tells the loader's work
// from the event loop's and the runtime's other threads.
try {
  writeFileSync("/proc/thread-self/comm", "analytics");
} catch {
  // Not Linux, or /proc not mounted: the name is only a diagnostic.
}

const store = new DuckDbAnalyticsStore(workerData as DuckDbAnalyticsStoreOptions);

async function dispatch({ method, args }: WorkerRequest): Promise<unknown> {
  switch (method) {
    case "open":
      return store.open();
    case "close":
      return store.close();
    case "ping":
      return store.ping();
    case "ensureTable":
      return store.ensureTable(args[0] as StreamDefinition);
    case "dropTable":
      return store.dropTable(args[0] as string);
    case "apply":
      return store.apply(args[0] as string, args[1] as number, args[2] as AnalyticsRow[]);
    case "applyPacked":
      return store.applyPacked(
        args[0] as string,
        args[1] as PackedPartition[],
        args[2] as RegisteredColumns | undefined,
      );
    case "appliedOffsets":
      return store.appliedOffsets(args[0] as string);
    case "query":
      return store.query(
        args[0] as string,
        args[1] as unknown[],
        args[2] as QueryScope,
        args[3] as PartitionShare | undefined,
      );
    case "rollupStats":
      return store.rollupStats(args[0] as string);
    case "planArchive":
      return store.planArchive(args[0] as string, args[1] as number, args[2] as number);
    case "exportRange":
      return store.exportRange(args[0] as string, args[1] as ArchiveRange, args[2] as string);
    case "mergeFiles":
      return store.mergeFiles(args[0] as string[], args[1] as string, args[2] as string[] | undefined);
    case "addRollup":
      return store.addRollup(args[0] as string, args[1] as RollupSpec, args[2] as Map<number, number>);
    case "dropRollup":
      return store.dropRollup(args[0] as string, args[1] as RollupSpec);
    case "writeRollupFile":
      return store.writeRollupFile(args[0] as string, args[1] as RollupSpec, args[2] as string, args[3] as string);
    case "splitByUser":
      return store.splitByUser(
        args[0] as string[],
        args[1] as string,
        args[2] as number,
        args[3] as string[] | undefined,
      );
    case "publishArchive":
      return store.publishArchive(args[0] as string, args[1] as ArchiveSet);
    case "deleteArchivedRows":
      return store.deleteArchivedRows(args[0] as string);
    case "ensureColumns":
      return store.ensureColumns(args[0] as string, args[1] as RegisteredColumns);
    case "clusterHot":
      return store.clusterHot(args[0] as string);
  }
}

function describe(e: unknown): WorkerError {
  if (e instanceof PoisonRecordError) return { poison: true, message: e.message };
  if (e instanceof RunnelError) {
    return e.details === undefined
      ? { code: e.code, message: e.message }
      : { code: e.code, message: e.message, details: e.details };
  }
  return { message: e instanceof Error ? e.message : String(e) };
}

/**
 * Calls still running. Close waits for them: DuckDB finishing native work for a call after its
 * instance closed, or after the thread was torn down, throws in C++ and aborts the whole process.
 */
const running = new Set<Promise<unknown>>();

function run(request: WorkerRequest): Promise<unknown> {
  if (request.method !== "close") return dispatch(request);
  return Promise.allSettled([...running]).then(() => dispatch(request));
}

port.on("message", (request: WorkerRequest) => {
  const call = run(request);
  running.add(call);
  call
    .then(
      (value) => port.postMessage({ id: request.id, value } satisfies WorkerResponse),
      (e: unknown) => port.postMessage({ id: request.id, error: describe(e) } satisfies WorkerResponse),
    )
    .finally(() => {
      running.delete(call);
      // Closed: let the thread end by itself once idle, rather than being terminated mid-work.
      if (request.method === "close") port.close();
    });
});
