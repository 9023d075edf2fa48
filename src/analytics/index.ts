export type { DuckDbAnalyticsStoreOptions } from "./duckdb/store.js";
export { createDuckDbAnalyticsStore, DuckDbAnalyticsStore } from "./duckdb/store.js";
export { createWorkerAnalyticsStore, WorkerAnalyticsStore } from "./duckdb/worker-store.js";
export type { AnalyticsLoaderOptions } from "./loader.js";
export { AnalyticsLoader, toAnalyticsRow } from "./loader.js";
export type * from "./types.js";
