export type { ArchiverOptions, ArchiveStats, ArchiveStep, TieredStore } from "./archiver.js";
export { Archiver } from "./archiver.js";
export { DEFAULT_HOT_MS, hotWindowOf } from "./hot-window.js";
export type { ArchiveLocation } from "./location.js";
export { archiveKey, LocalDirLocation } from "./location.js";
export { createArchiveLocation } from "./locations.js";
