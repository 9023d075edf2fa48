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
  return createLockedDown(path, engineOptions(limits), allowedDirectories, undefined);
}

/** The name the store's database is attached under, so every connection names it the same. */
export const STORE_DATABASE = "runnel";

/** The store's engine: its database attached under STORE_DATABASE, the default of every connection. */
export interface StoreEngine {
  readonly instance: DuckDBInstance;
  /** A new connection whose unqualified names resolve in the store's database. */
  connect(): Promise<DuckDBConnection>;
}

/**
 * Opens the store's database (a file, or memory when `path` is ":memory:") with row groups of
 * `rowGroupSize` rows. DuckDB takes that size only from ATTACH, not when it opens a database, and
 * does not keep it in the file (a database opened without it merges small row groups back at its
 * next checkpoint), so the database is attached to an in-memory instance, before external access
 * is switched off: the instance's own default database stays empty. `USE` is per connection, so
 * every connection is made through `connect`. A file's spill directory stays where DuckDB puts it
 * for a file opened directly (`<path>.tmp`), not the working directory of an in-memory instance.
 */
export async function openStoreEngine(
  path: string,
  limits: EngineLimits,
  allowedDirectories: readonly string[],
  rowGroupSize: number,
): Promise<StoreEngine> {
  const options = engineOptions(limits);
  if (path !== ":memory:") options.temp_directory = `${path}.tmp`;
  const instance = await createLockedDown(":memory:", options, allowedDirectories, async (c) => {
    await c.run(`ATTACH ${quoteString(path)} AS ${STORE_DATABASE} (ROW_GROUP_SIZE ${rowGroupSize})`);
  });
  return {
    instance,
    async connect() {
      const c = await instance.connect();
      try {
        await c.run(`USE ${STORE_DATABASE}`);
      } catch (e) {
        c.closeSync();
        throw e;
      }
      return c;
    },
  };
}

function engineOptions(limits: EngineLimits): Record<string, string> {
  const options: Record<string, string> = {
    autoload_known_extensions: "false",
    autoinstall_known_extensions: "false",
    allow_community_extensions: "false",
  };
  if (limits.threads !== undefined) options.threads = String(limits.threads);
  if (limits.memoryLimit !== undefined) options.memory_limit = limits.memoryLimit;
  if (limits.maxTempSize !== undefined) options.max_temp_directory_size = limits.maxTempSize;
  return options;
}

/**
 * Creates the instance with external access on only when `setup` needs files or directories are
 * allowed, runs `setup`, sets the allowed directories, and switches access off for good.
 */
async function createLockedDown(
  path: string,
  options: Record<string, string>,
  allowedDirectories: readonly string[],
  setup: ((c: DuckDBConnection) => Promise<void>) | undefined,
): Promise<DuckDBInstance> {
  const access = setup !== undefined || allowedDirectories.length > 0;
  const instance = await DuckDBInstance.create(path, { ...options, enable_external_access: String(access) });
  if (!access) return instance;
  const c = await instance.connect();
  try {
    await setup?.(c);
    if (allowedDirectories.length > 0) {
      const list = allowedDirectories.map((d) => quoteString(d.endsWith("/") ? d : `${d}/`));
      await c.run(`SET allowed_directories = [${list.join(", ")}]`);
    }
    await c.run("SET enable_external_access = false");
  } catch (e) {
    c.closeSync();
    instance.closeSync();
    throw e;
  }
  c.closeSync();
  return instance;
}

function quoteString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
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
