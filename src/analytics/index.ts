export type { DuckDbAnalyticsStoreOptions } from "./duckdb/store.js";
export { createDuckDbAnalyticsStore, DuckDbAnalyticsStore } from "./duckdb/store.js";
export { createWorkerAnalyticsStore, WorkerAnalyticsStore } from "./duckdb/worker-store.js";
export type { AnalyticsLoaderOptions } from "./loader.js";
export { AnalyticsLoader } from "./loader.js";
export { toAnalyticsRow } from "./rows.js";
export type * from "./types.js";
