/** The composition root's choice of archive location, from configuration. */
import type { ArchiveLocationConfig } from "../config/config.js";
import { RunnelError } from "../core/errors.js";
import { type ArchiveLocation, LocalDirLocation } from "./location.js";

export function createArchiveLocation(config: ArchiveLocationConfig): ArchiveLocation {
  if (config.kind === "local") return new LocalDirLocation(config.dir);
  throw new RunnelError("invalid_input", "RUNNEL_ARCHIVE_URL: s3:// locations are not supported by this version");
}
