/**
 * How every DuckDB instance of the store is opened and locked down. Settings given at creation
 * cannot be undone by SQL: external access off (no files, no ATTACH of files, no COPY, no
 * INSTALL), no extension auto-loading. After the store's own setup `lock_configuration` freezes
 * every other setting, so no query can change them either.
 */
import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";

export interface EngineLimits {
  readonly threads?: number;
  /** DuckDB's memory_limit (its buffer manager: hash tables, sorts, materialised results). */
  readonly memoryLimit?: string;
  /** DuckDB's max_temp_directory_size: how much may spill to disk ("0B": nothing). */
  readonly maxTempSize?: string;
}

/**
 * `allowedDirectories`: the only directories the instance may read and write files in (the
 * store's archive). DuckDB takes them only from a running instance, with external access still
 * on, so they are set right after creation and access is switched off before anything else runs.
 * Everything inside them is writable too, so an instance that runs a `user`'s SQL never has any.
 */
export async function openEngine(
  path: string,
  limits: EngineLimits = {},
  allowedDirectories: readonly string[] = [],
): Promise<DuckDBInstance> {
  const options: Record<string, string> = {
    enable_external_access: allowedDirectories.length > 0 ? "true" : "false",
    autoload_known_extensions: "false",
    autoinstall_known_extensions: "false",
    allow_community_extensions: "false",
  };
  if (limits.threads !== undefined) options.threads = String(limits.threads);
  if (limits.memoryLimit !== undefined) options.memory_limit = limits.memoryLimit;
  if (limits.maxTempSize !== undefined) options.max_temp_directory_size = limits.maxTempSize;
  const instance = await DuckDBInstance.create(path, options);
  if (allowedDirectories.length === 0) return instance;
  const c = await instance.connect();
  try {
    const list = allowedDirectories.map((d) => `'${(d.endsWith("/") ? d : `${d}/`).replaceAll("'", "''")}'`);
    await c.run(`SET allowed_directories = [${list.join(", ")}]`);
    await c.run("SET enable_external_access = false");
  } catch (e) {
    c.closeSync();
    instance.closeSync();
    throw e;
  }
  c.closeSync();
  return instance;
}

/** Settings that need a running instance, then the lock. Run once, after setup. */
export async function lockEngine(connection: DuckDBConnection): Promise<void> {
  await connection.run("SET TimeZone = 'UTC'");
  await connection.run("SET lock_configuration = true");
}

/**
 * How far a streamed result may run ahead of its reader, set on a connection that will run
 * queries (DuckDB keeps it per connection and refuses it once the configuration is locked, so
 * it is set before the lock). DuckDB counts only a chunk's fixed-width part against it (16 bytes
 * per string), so at its default (976 KiB) it computed ~20 chunks of 2 048 rows before the first
 * fetch whatever the strings weighed: 1.4 GB outside memory_limit for rows of 30 KB, before the
 * result's byte bound could stop it. At 64 KB it is one or two chunks.
 */
export async function limitReadAhead(connection: DuckDBConnection): Promise<void> {
  await connection.run("SET streaming_buffer_size = '64KB'");
}
