/** The composition root's choice of archive location, from configuration. */
import { join } from "node:path";
import type { ArchiveLocationConfig } from "../config/config.js";
import { type ArchiveLocation, LocalDirLocation } from "./location.js";
import { S3Location } from "./s3-location.js";

/** A bucket's local copies live in `<data-dir>/archive-cache`. */
export function createArchiveLocation(config: ArchiveLocationConfig, dataDir: string): ArchiveLocation {
  if (config.kind === "local") return new LocalDirLocation(config.dir);
  return new S3Location({ bucket: config.bucket, prefix: config.prefix, localDir: join(dataDir, "archive-cache") });
}
