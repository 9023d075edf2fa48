/**
 * The checkpoint store's public surface and its composition root: `openCheckpointStore` picks the
 * implementation from configuration (RUNNEL_CHECKPOINT_STORE).
 *
 * ```ts
 * const store = await openCheckpointStore(config);
 * const { epoch } = await store.claim(taskName("orders-by-user", 0), instanceId);
 * const restored = await store.read(taskName("orders-by-user", 0));
 * await store.write(taskName("orders-by-user", 0), epoch, "base", snapshot);
 * ```
 */
import { join } from "node:path";
import { type Config, ConfigError, ENV_NAMES } from "../../config/config.js";
import { LocalFileCheckpointStore } from "./local.js";
import { PostgresCheckpointStore } from "./postgres.js";
import type { CheckpointStore } from "./store.js";

export { LocalFileCheckpointStore } from "./local.js";
export { MemoryCheckpointStore } from "./memory.js";
export { PostgresCheckpointStore } from "./postgres.js";
export * from "./store.js";

/**
 * `local`: files under `<dataDir>/checkpoints` (one machine); `database`: the control plane's
 * PostgreSQL at `databaseUrl` (every instance of the installation), its schema brought up to date.
 */
export async function openCheckpointStore(
  config: Pick<Config, "checkpointStore" | "dataDir" | "databaseUrl">,
): Promise<CheckpointStore> {
  if (config.checkpointStore === "local") return new LocalFileCheckpointStore(join(config.dataDir, "checkpoints"));
  // loadConfig refuses database without a URL; a hand-built config gets the same answer here.
  if (config.databaseUrl === undefined) {
    throw new ConfigError(ENV_NAMES.checkpointStore, `database needs ${ENV_NAMES.databaseUrl}`);
  }
  return PostgresCheckpointStore.connect(config.databaseUrl);
}
