/**
 * libuv's thread pool runs every file read, write and fsync of the process, and every DuckDB call.
 * Its default of 4 threads is held entirely by one group commit of the log (an fdatasync per
 * partition) or by the checkpoint store's fsyncs, for as long as the disk takes to flush, and
 * DuckDB's calls and file reads not served from the log's in-memory tail (a rule task reading the
 * records just acknowledged is: src/log/local/tail-buffer.ts) wait behind them. Threads blocked in
 * a flush cost no CPU, so the server runs more of them unless the environment sets
 * UV_THREADPOOL_SIZE itself. What it bought on a loaded 2-core machine is in docs/benchmarks.md
 * ("Alert latency"): not yet established.
 *
 * Imported first by bin/runnel.ts: the pool is sized when first used, and with plain `node` the
 * modules are loaded without it. Under `node --import tsx` the loader has used the pool before any
 * module runs, so there the environment must set it (test/helpers/server-process.ts does).
 */
export const THREAD_POOL_SIZE = 16;

process.env.UV_THREADPOOL_SIZE ??= String(THREAD_POOL_SIZE);
