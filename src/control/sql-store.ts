/**
 * ControlStore over any SqlDriver: the one implementation, so PGlite and PostgreSQL cannot drift.
 * The driver is connected lazily by open(), which also brings the schema up to date.
 */
import { randomUUID } from "node:crypto";
import { columnKey } from "../analytics/duckdb/column-types.js";
import { RunnelError } from "../core/errors.js";
import { translateDatabaseError } from "./db-errors.js";
import type { DriverPoolStats, SqlDriver, SqlExecutor } from "./driver.js";
import { migrate } from "./migrations.js";
import {
  type ActivityRow,
  type ApiKeyOwnerRow,
  type ApiKeyRow,
  type ArchiveFileRow,
  type ImportFileRow,
  type PipelineRow,
  type StreamRow,
  toActivity,
  toApiKey,
  toArchiveFile,
  toImportFile,
  toPipeline,
  toStream,
  toUser,
  type UserRow,
} from "./rows.js";
import type {
  ActivityEntry,
  AlertRecord,
  ApiKey,
  ApiKeyWithOwner,
  ArchiveFileRecord,
  BlockRecord,
  ColumnRetype,
  ControlStore,
  ImportChunk,
  ImportChunkFile,
  ImportFileRecord,
  NewAlert,
  NewApiKey,
  NewUser,
  PipelineDefinition,
  RaisedBlock,
  Revocation,
  RevocationReason,
  RevocationSink,
  Role,
  RollupSpec,
  RuleRecord,
  StreamColumn,
  StreamDefinition,
  User,
  UserWithSecret,
} from "./types.js";
import { foldUsername } from "./usernames.js";

export const ACTIVITY_DEFAULT_LIMIT = 50;
export const ACTIVITY_MAX_LIMIT = 500;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const USER_COLUMNS = "id, username, email, role, disabled, token_version, created_at";
const PIPELINE_COLUMNS = "name, sql, start_from, options, enabled, created_at";
const STREAM_COLUMNS =
  "name, partitions, schema, timestamp_field, retention_ms, derived_from, analytics, max_future_skew_ms, analytics_hot_ms, analytics_archive_ms, rollups, created_at";
const ARCHIVE_FILE_COLUMNS =
  "stream, stream_partition, offset_start, offset_end, min_time_ms, max_time_ms, min_user, max_user, row_count, bytes, schema_version, path, user_part";

const IMPORT_FILE_COLUMNS =
  "stream, import_id, first_row, chunk_rows, min_time_ms, max_time_ms, min_user, max_user, row_count, bytes, schema_version, path";

export interface SqlControlStoreOptions {
  /** Hears every revoking change once it has committed (src/api/auth/revocations.ts). */
  readonly revocations?: RevocationSink;
}

export class SqlControlStore implements ControlStore {
  #driver: SqlDriver | undefined;
  #opening: Promise<void> | undefined;

  constructor(
    private readonly connect: () => Promise<SqlDriver>,
    private readonly options: SqlControlStoreOptions = {},
  ) {}

  /** Connects and migrates. Calling it again while open (or opening) is a no-op. */
  open(): Promise<void> {
    this.#opening ??= this.#open().catch((e: unknown) => {
      this.#opening = undefined;
      throw e;
    });
    return this.#opening;
  }

  async #open(): Promise<void> {
    const driver = await this.connect();
    try {
      await migrate(driver);
      await driver.migrated?.();
    } catch (e) {
      await driver.close().catch(() => {});
      throw e;
    }
    this.#driver = driver;
  }

  async close(): Promise<void> {
    // Let an open in flight finish first, or it would install a driver after we closed.
    const opening = this.#opening;
    this.#opening = undefined;
    await opening?.catch(() => {});
    const driver = this.#driver;
    this.#driver = undefined;
    await driver?.close();
  }

  /** The driver's connection use; undefined while closed. */
  poolStats(): DriverPoolStats | undefined {
    return this.#driver?.poolStats();
  }

  async ping(): Promise<boolean> {
    if (this.#driver === undefined) return false;
    try {
      const { rows } = await this.#driver.query<{ ok: number }>("SELECT 1 AS ok");
      return rows[0]?.ok === 1;
    } catch {
      return false;
    }
  }

  // Users.

  async createUser(user: NewUser): Promise<User> {
    // One statement, so a deletion cannot slip in between a check and the insert.
    const rows = await this.#query<UserRow>(
      `INSERT INTO users (id, username, username_key, email, password_hash, role)
       SELECT $1, $2, $6, $3, $4, $5
       WHERE NOT EXISTS (SELECT 1 FROM deleted_usernames WHERE username = $2 OR username_key = $6)
       RETURNING ${USER_COLUMNS}`,
      [randomUUID(), user.username, user.email, user.passwordHash, user.role, foldUsername(user.username)],
    );
    const row = rows[0];
    if (row === undefined)
      throw new RunnelError("conflict", "username belonged to a deleted account and stays reserved");
    return toUser(row);
  }

  async getUserByUsername(username: string): Promise<UserWithSecret | undefined> {
    // The exact name first: an account that predates folded uniqueness may share its folded name.
    const rows = await this.#query<UserRow>(
      `SELECT ${USER_COLUMNS}, password_hash FROM users WHERE username = $1 OR username_key = $2
       ORDER BY (username = $1) DESC LIMIT 1`,
      [username, foldUsername(username)],
    );
    const row = rows[0];
    return row === undefined ? undefined : { ...toUser(row), passwordHash: row.password_hash ?? "" };
  }

  async getUserById(id: string): Promise<User | undefined> {
    if (!UUID.test(id)) return undefined;
    const rows = await this.#query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [id]);
    return rows[0] === undefined ? undefined : toUser(rows[0]);
  }

  async listUsers(): Promise<User[]> {
    const rows = await this.#query<UserRow>(`SELECT ${USER_COLUMNS} FROM users ORDER BY username`);
    return rows.map(toUser);
  }

  /**
   * Changing the password, the disabled flag or the role bumps token_version, which revokes every
   * token issued before: a stolen token must not outlive a password reset, a disabled account must
   * stop at once, and a demoted account must not keep its old role's token. Disabling also deletes
   * the account's API keys, in the same transaction, so re-enabling it does not revive them
   * (docs/api.md). Setting a field to the value it already has changes nothing. Each revoking
   * change is published once it has committed.
   */
  async updateUser(
    id: string,
    patch: { email?: string; role?: Role; disabled?: boolean; passwordHash?: string },
  ): Promise<User> {
    if (!UUID.test(id)) throw new RunnelError("not_found", "user not found");
    const { user, reason } = await this.#transaction(async (tx) => {
      const before = (
        await tx.query<{ role: Role; disabled: boolean; password_hash: string }>(
          "SELECT role, disabled, password_hash FROM users WHERE id = $1 FOR UPDATE",
          [id],
        )
      ).rows[0];
      if (before === undefined) throw new RunnelError("not_found", "user not found");
      const { rows } = await tx.query<UserRow>(
        `UPDATE users SET
           email = COALESCE($2::text, email),
           role = COALESCE($3::text, role),
           disabled = COALESCE($4::boolean, disabled),
           password_hash = COALESCE($5::text, password_hash),
           token_version = token_version + CASE
             WHEN COALESCE($3::text, role) IS DISTINCT FROM role
               OR COALESCE($4::boolean, disabled) IS DISTINCT FROM disabled
               OR COALESCE($5::text, password_hash) IS DISTINCT FROM password_hash
             THEN 1 ELSE 0 END
         WHERE id = $1
         RETURNING ${USER_COLUMNS}, password_hash`,
        [id, patch.email ?? null, patch.role ?? null, patch.disabled ?? null, patch.passwordHash ?? null],
      );
      const row = rows[0];
      if (row === undefined) throw new RunnelError("not_found", "user not found");
      const reason = revocationReason(before, row);
      if (reason === "disabled") await tx.query("DELETE FROM api_keys WHERE user_id = $1", [id]);
      return { user: toUser(row), reason };
    });
    if (reason !== undefined) this.#revoked({ userId: id, reason });
    return user;
  }

  /** Deleting an unknown user is a no-op. API keys and settings go with the user; activity stays. */
  async deleteUser(id: string): Promise<void> {
    if (!UUID.test(id)) return;
    const deleted = await this.#transaction(async (tx) => {
      const { rows } = await tx.query<{ username: string }>("SELECT username FROM users WHERE id = $1 FOR UPDATE", [
        id,
      ]);
      const username = rows[0]?.username;
      if (username === undefined) return false;
      // Reserved before the row goes, so no moment exists in which the name is free.
      await tx.query(
        `INSERT INTO deleted_usernames (username, username_key) VALUES ($1, $2)
         ON CONFLICT (username) DO NOTHING`,
        [username, foldUsername(username)],
      );
      await tx.query("DELETE FROM users WHERE id = $1", [id]);
      return true;
    });
    if (deleted) this.#revoked({ userId: id, reason: "deleted" });
  }

  async rehashPassword(id: string, current: string, next: string): Promise<boolean> {
    if (!UUID.test(id)) return false;
    const rows = await this.#query<{ id: string }>(
      "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2 RETURNING id",
      [id, current, next],
    );
    return rows.length > 0;
  }

  /** Admins who can act: disabled admin accounts do not count towards keeping the system manageable. */
  async countAdmins(): Promise<number> {
    const rows = await this.#query<{ n: number }>(
      "SELECT count(*)::integer AS n FROM users WHERE role = 'admin' AND NOT disabled",
    );
    return rows[0]?.n ?? 0;
  }

  // API keys.

  async createApiKey(key: NewApiKey): Promise<ApiKey> {
    if (!UUID.test(key.userId)) throw new RunnelError("not_found", "user not found");
    const rows = await this.#query<ApiKeyRow>(
      `INSERT INTO api_keys (id, user_id, name, role, prefix, key_hash) VALUES ($1, $2, $3, $4, $5, $6)
       RETURNING id, user_id, name, role, prefix, created_at`,
      [randomUUID(), key.userId, key.name, key.role, key.prefix, key.keyHash],
    );
    return toApiKey(one(rows));
  }

  async findApiKeyByHash(keyHash: string): Promise<ApiKeyWithOwner | undefined> {
    const rows = await this.#query<ApiKeyOwnerRow>(
      `SELECT k.id, k.user_id, k.name, k.role, k.prefix, k.created_at,
              u.username, u.email, u.role AS owner_role, u.disabled, u.token_version,
              u.created_at AS owner_created_at
       FROM api_keys k JOIN users u ON u.id = k.user_id
       WHERE k.key_hash = $1`,
      [keyHash],
    );
    const row = rows[0];
    if (row === undefined) return undefined;
    return {
      ...toApiKey(row),
      owner: toUser({
        id: row.user_id,
        username: row.username,
        email: row.email,
        role: row.owner_role,
        disabled: row.disabled,
        token_version: row.token_version,
        created_at: row.owner_created_at,
      }),
    };
  }

  async listApiKeys(userId: string): Promise<ApiKey[]> {
    if (!UUID.test(userId)) return [];
    const rows = await this.#query<ApiKeyRow>(
      `SELECT id, user_id, name, role, prefix, created_at FROM api_keys WHERE user_id = $1
       ORDER BY created_at, id`,
      [userId],
    );
    return rows.map(toApiKey);
  }

  /** Scoped by owner, so one user can never delete another's key by guessing its id. */
  async deleteApiKey(userId: string, id: string): Promise<boolean> {
    if (!UUID.test(userId) || !UUID.test(id)) return false;
    const rows = await this.#query<{ id: string }>("DELETE FROM api_keys WHERE id = $1 AND user_id = $2 RETURNING id", [
      id,
      userId,
    ]);
    if (rows.length === 0) return false;
    this.#revoked({ userId, reason: "api_key_deleted", apiKeyId: id });
    return true;
  }

  // Settings.

  async getSettings(userId: string): Promise<Record<string, unknown>> {
    if (!UUID.test(userId)) return {};
    const rows = await this.#query<{ settings: Record<string, unknown> }>(
      "SELECT settings FROM settings WHERE user_id = $1",
      [userId],
    );
    return rows[0]?.settings ?? {};
  }

  /** Replaces the whole object (PUT semantics). */
  async putSettings(userId: string, settings: Record<string, unknown>): Promise<void> {
    if (!UUID.test(userId)) throw new RunnelError("not_found", "user not found");
    // The parameter goes in as text and is cast in SQL, so neither driver re-encodes a JSON string.
    await this.#query(
      `INSERT INTO settings (user_id, settings) VALUES ($1, $2::text::jsonb)
       ON CONFLICT (user_id) DO UPDATE SET settings = EXCLUDED.settings, updated_at = now()`,
      [userId, JSON.stringify(settings)],
    );
  }

  // Activity.

  async recordActivity(userId: string, kind: string, detail: Record<string, unknown> = {}): Promise<void> {
    if (!UUID.test(userId)) throw new RunnelError("invalid_input", "activity needs a user id");
    await this.#query("INSERT INTO activity (user_id, kind, detail) VALUES ($1, $2, $3::text::jsonb)", [
      userId,
      kind,
      JSON.stringify(detail),
    ]);
  }

  /**
   * Newest first. `before` is the id of the last entry of the previous page; `limit` defaults to
   * 50 and is capped at 500.
   */
  async listActivity(userId: string, options: { limit?: number; before?: string } = {}): Promise<ActivityEntry[]> {
    const limit = options.limit ?? ACTIVITY_DEFAULT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RunnelError("invalid_input", "limit must be a positive integer");
    }
    const before = options.before;
    if (before !== undefined && !/^[1-9][0-9]{0,18}$/.test(before)) {
      throw new RunnelError("invalid_input", "before must be an activity id");
    }
    if (!UUID.test(userId)) return [];
    const rows = await this.#query<ActivityRow>(
      `SELECT id::text AS id, user_id, kind, detail, at FROM activity
       WHERE user_id = $1 AND ($2::bigint IS NULL OR id < $2::bigint)
       ORDER BY activity.id DESC LIMIT $3`,
      [userId, before ?? null, Math.min(limit, ACTIVITY_MAX_LIMIT)],
    );
    return rows.map(toActivity);
  }

  // Catalogue.

  async createStream(stream: Omit<StreamDefinition, "createdAt">): Promise<StreamDefinition> {
    const rows = await this.#query<StreamRow>(
      `INSERT INTO streams (name, partitions, schema, timestamp_field, retention_ms, derived_from, analytics,
         max_future_skew_ms, analytics_hot_ms, analytics_archive_ms, rollups)
       VALUES ($1, $2, $3::text::jsonb, $4, $5, $6, $7, $8, $9, $10, $11::text::jsonb)
       RETURNING ${STREAM_COLUMNS}`,
      [
        stream.name,
        stream.partitions,
        stream.schema === undefined ? null : JSON.stringify(stream.schema),
        stream.timestampField,
        stream.retentionMs ?? null,
        stream.derivedFrom ?? null,
        stream.analytics !== false,
        stream.maxFutureSkewMs ?? null,
        stream.hotMs ?? null,
        stream.archiveRetentionMs ?? null,
        stream.rollups === undefined ? null : JSON.stringify(stream.rollups),
      ],
    );
    return toStream(one(rows));
  }

  async getStream(name: string): Promise<StreamDefinition | undefined> {
    const rows = await this.#query<StreamRow>(`SELECT ${STREAM_COLUMNS} FROM streams WHERE name = $1`, [name]);
    return rows[0] === undefined ? undefined : toStream(rows[0]);
  }

  async listStreams(): Promise<StreamDefinition[]> {
    const rows = await this.#query<StreamRow>(`SELECT ${STREAM_COLUMNS} FROM streams ORDER BY name`);
    return rows.map(toStream);
  }

  async deleteStream(name: string): Promise<boolean> {
    const rows = await this.#query<{ name: string }>("DELETE FROM streams WHERE name = $1 RETURNING name", [name]);
    return rows.length > 0;
  }

  async updateStreamRollups(
    stream: string,
    change: (current: readonly RollupSpec[]) => readonly RollupSpec[],
  ): Promise<StreamDefinition> {
    return this.#transaction(async (tx) => {
      const { rows } = await tx.query<StreamRow>(`SELECT ${STREAM_COLUMNS} FROM streams WHERE name = $1 FOR UPDATE`, [
        stream,
      ]);
      if (rows[0] === undefined) throw new RunnelError("stream_not_found", `stream "${stream}" does not exist`);
      const rollups = change(toStream(rows[0]).rollups ?? []);
      const updated = await tx.query<StreamRow>(
        `UPDATE streams SET rollups = $2 WHERE name = $1 RETURNING ${STREAM_COLUMNS}`,
        [stream, rollups.length === 0 ? null : JSON.stringify(rollups)],
      );
      return toStream(one(updated.rows));
    });
  }

  async listArchiveFiles(stream?: string): Promise<ArchiveFileRecord[]> {
    const rows = await this.#query<ArchiveFileRow>(
      `SELECT ${ARCHIVE_FILE_COLUMNS} FROM archive_files WHERE $1::text IS NULL OR stream = $1
       ORDER BY stream, stream_partition, offset_start, user_part`,
      [stream ?? null],
    );
    return rows.map(toArchiveFile);
  }

  async replaceArchiveFiles(
    stream: string,
    replaced: readonly string[],
    merged: ArchiveFileRecord | readonly ArchiveFileRecord[],
  ): Promise<void> {
    const parts: readonly ArchiveFileRecord[] = Array.isArray(merged) ? merged : [merged as ArchiveFileRecord];
    await this.#transaction(async (tx) => {
      await tx.query("SELECT 1 FROM streams WHERE name = $1 FOR UPDATE", [stream]);
      const { rows } = await tx.query<ArchiveFileRow>(
        `DELETE FROM archive_files WHERE stream = $1 AND path = ANY($2::text[]) RETURNING ${ARCHIVE_FILE_COLUMNS}`,
        [stream, [...replaced]],
      );
      const gone = rows.map(toArchiveFile).sort((a, b) => a.offsetStart - b.offsetStart);
      // Parts of one range share it: the distinct ranges must follow one another.
      const ranges = gone.filter((r, i) => i === 0 || r.offsetStart !== gone[i - 1]!.offsetStart);
      const consecutive = ranges.every((r, i) => i === 0 || r.offsetStart === ranges[i - 1]!.offsetEnd);
      const first = gone[0];
      const last = ranges.at(-1);
      const rowsOf = (files: readonly ArchiveFileRecord[]) => files.reduce((n, f) => n + f.rows, 0);
      const valid =
        first !== undefined &&
        last !== undefined &&
        gone.length === replaced.length &&
        consecutive &&
        parts.length > 0 &&
        gone.every((r) => r.partition === first.partition) &&
        parts.every(
          (m, i) =>
            m.stream === stream &&
            m.partition === first.partition &&
            (m.userPart ?? 0) === i &&
            m.offsetStart === first.offsetStart &&
            m.offsetEnd === last.offsetEnd,
        ) &&
        rowsOf(parts) === rowsOf(gone);
      if (valid) {
        // A part of a replaced range that was not replaced would hold its rows twice.
        const { rows: left } = await tx.query(
          `SELECT 1 FROM archive_files WHERE stream = $1 AND stream_partition = $2
           AND offset_start < $4 AND offset_end > $3 LIMIT 1`,
          [stream, first.partition, first.offsetStart, last.offsetEnd],
        );
        if (left.length === 0) {
          for (const m of parts) await insertArchiveFile(tx, m);
          return;
        }
      }
      throw new RunnelError(
        "conflict",
        `archive files of ${stream} changed or do not match ${parts.map((m) => m.path).join(", ")}; nothing replaced`,
      );
    });
  }

  async commitArchiveFile(f: ArchiveFileRecord): Promise<void> {
    await this.#transaction(async (tx) => {
      // Serialises commits of one stream, and makes sure it still exists.
      const stream = await tx.query("SELECT 1 FROM streams WHERE name = $1 FOR UPDATE", [f.stream]);
      if (stream.rows.length === 0) throw new RunnelError("stream_not_found", `stream "${f.stream}" does not exist`);
      const { rows } = await tx.query<{ next_offset: string | number | bigint }>(
        "SELECT next_offset FROM archive_boundaries WHERE stream = $1 AND stream_partition = $2",
        [f.stream, f.partition],
      );
      const boundary = rows[0] === undefined ? 0 : Number(rows[0].next_offset);
      if (f.offsetStart !== boundary) {
        throw new RunnelError(
          "conflict",
          `archive file ${f.path} starts at offset ${f.offsetStart}, but partition ${f.partition} of ${f.stream} is archived up to ${boundary}`,
        );
      }
      await insertArchiveFile(tx, f);
      await tx.query(
        `INSERT INTO archive_boundaries (stream, stream_partition, next_offset) VALUES ($1, $2, $3)
         ON CONFLICT (stream, stream_partition) DO UPDATE SET next_offset = EXCLUDED.next_offset`,
        [f.stream, f.partition, f.offsetEnd],
      );
    });
  }

  async deleteArchiveFiles(stream: string, paths: readonly string[]): Promise<ArchiveFileRecord[]> {
    if (paths.length === 0) return [];
    const rows = await this.#query<ArchiveFileRow>(
      `DELETE FROM archive_files WHERE stream = $1 AND path = ANY($2::text[]) RETURNING ${ARCHIVE_FILE_COLUMNS}`,
      [stream, [...paths]],
    );
    return rows.map(toArchiveFile);
  }

  async listImportFiles(stream?: string, importId?: string): Promise<ImportFileRecord[]> {
    const rows = await this.#query<ImportFileRow>(
      `SELECT ${IMPORT_FILE_COLUMNS} FROM archive_imports
       WHERE ($1::text IS NULL OR stream = $1) AND ($2::text IS NULL OR import_id = $2)
       ORDER BY stream, import_id, first_row, path`,
      [stream ?? null, importId ?? null],
    );
    return rows.map(toImportFile);
  }

  async listImportChunks(stream: string, importId: string): Promise<ImportChunk[]> {
    const rows = await this.#query<{ first_row: string | number | bigint; chunk_rows: string | number | bigint }>(
      `SELECT first_row, chunk_rows FROM archive_import_chunks WHERE stream = $1 AND import_id = $2 ORDER BY first_row`,
      [stream, importId],
    );
    return rows.map((r) => ({ stream, importId, firstRow: Number(r.first_row), chunkRows: Number(r.chunk_rows) }));
  }

  async replaceImportFiles(stream: string, replaced: readonly string[], merged: ImportFileRecord): Promise<void> {
    await this.#transaction(async (tx) => {
      await tx.query("SELECT 1 FROM streams WHERE name = $1 FOR UPDATE", [stream]);
      const { rows } = await tx.query<ImportFileRow>(
        `DELETE FROM archive_imports WHERE stream = $1 AND path = ANY($2::text[]) RETURNING ${IMPORT_FILE_COLUMNS}`,
        [stream, [...replaced]],
      );
      const held = rows.reduce((n, r) => n + Number(r.row_count), 0);
      if (
        rows.length !== new Set(replaced).size ||
        rows.length === 0 ||
        held !== merged.rows ||
        merged.stream !== stream
      ) {
        throw new RunnelError(
          "conflict",
          `imported files of ${stream} changed or do not add up to ${merged.path}; nothing replaced`,
        );
      }
      await insertImportFile(tx, merged);
    });
  }

  async commitImportChunk(files: readonly ImportChunkFile[]): Promise<void> {
    const first = files[0];
    if (first === undefined) throw new RunnelError("invalid_input", "an import chunk has at least one file");
    const { stream, importId, firstRow, chunkRows } = first;
    if (
      files.some(
        (f) => f.stream !== stream || f.importId !== importId || f.firstRow !== firstRow || f.chunkRows !== chunkRows,
      )
    ) {
      throw new RunnelError("invalid_input", "the files of an import chunk must name one stream, import and chunk");
    }
    if (files.reduce((n, f) => n + f.rows, 0) !== chunkRows) {
      throw new RunnelError(
        "invalid_input",
        `the files of import chunk ${importId}@${firstRow} do not hold its ${chunkRows} rows`,
      );
    }
    await this.#transaction(async (tx) => {
      // Serialises commits of one stream, and makes sure it still exists.
      const exists = await tx.query("SELECT 1 FROM streams WHERE name = $1 FOR UPDATE", [stream]);
      if (exists.rows.length === 0) throw new RunnelError("stream_not_found", `stream "${stream}" does not exist`);
      const { rows } = await tx.query<{ first_row: string | number | bigint }>(
        `SELECT first_row FROM archive_import_chunks
         WHERE stream = $1 AND import_id = $2 AND first_row < $3 AND first_row + chunk_rows > $4 LIMIT 1`,
        [stream, importId, firstRow + chunkRows, firstRow],
      );
      if (rows[0] !== undefined) {
        throw new RunnelError(
          "conflict",
          `rows ${firstRow}-${firstRow + chunkRows - 1} of import ${importId} into ${stream} overlap a chunk committed already (from row ${Number(rows[0].first_row)})`,
        );
      }
      await tx.query(
        "INSERT INTO archive_import_chunks (stream, import_id, first_row, chunk_rows) VALUES ($1, $2, $3, $4)",
        [stream, importId, firstRow, chunkRows],
      );
      for (const f of files) await insertImportFile(tx, f);
    });
  }

  async deleteImportFiles(stream: string, paths: readonly string[]): Promise<ImportFileRecord[]> {
    if (paths.length === 0) return [];
    const rows = await this.#query<ImportFileRow>(
      `DELETE FROM archive_imports WHERE stream = $1 AND path = ANY($2::text[]) RETURNING ${IMPORT_FILE_COLUMNS}`,
      [stream, [...paths]],
    );
    return rows.map(toImportFile);
  }

  async archiveBoundaries(stream: string): Promise<Map<number, number>> {
    const rows = await this.#query<{ stream_partition: number; next_offset: string | number | bigint }>(
      "SELECT stream_partition, next_offset FROM archive_boundaries WHERE stream = $1",
      [stream],
    );
    return new Map(rows.map((r) => [r.stream_partition, Number(r.next_offset)]));
  }

  async listStreamColumns(stream: string): Promise<StreamColumn[]> {
    return this.#streamColumns(undefined, stream);
  }

  async registerStreamColumns(
    stream: string,
    columns: readonly StreamColumn[],
    maxColumns: number,
  ): Promise<StreamColumn[]> {
    return this.#transaction(async (tx) => {
      // Serialises registrations per stream, so the bound holds under concurrent first values.
      const found = await tx.query("SELECT 1 FROM streams WHERE name = $1 FOR UPDATE", [stream]);
      if (found.rows.length === 0) throw new RunnelError("stream_not_found", `stream "${stream}" does not exist`);
      const stored = new Map((await this.#streamColumns(tx, stream)).map((c) => [columnKey(c.name), c]));
      const added = new Map<string, StreamColumn>();
      const widened: string[] = [];
      for (const c of columns) {
        const key = columnKey(c.name);
        const have = stored.get(key);
        if (have === undefined) {
          if (!added.has(key)) added.set(key, c);
        } else if (have.type === "BIGINT" && c.type === "DOUBLE") widened.push(key);
      }
      if (stored.size + added.size > maxColumns) {
        throw new RunnelError(
          "too_many_columns",
          `stream "${stream}" has ${stored.size} columns; ${added.size} more would pass the limit of ${maxColumns}`,
          { details: { stream, columns: stored.size, adding: added.size, limit: maxColumns } },
        );
      }
      if (added.size > 0) {
        await tx.query(
          `INSERT INTO stream_columns (stream, key, name, type)
           SELECT $1, c->>'key', c->>'name', c->>'type'
           FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS batch(c, n) ORDER BY n`,
          [stream, JSON.stringify([...added].map(([key, c]) => ({ key, name: c.name, type: c.type })))],
        );
      }
      if (widened.length > 0) {
        await tx.query(
          `UPDATE stream_columns SET type = 'DOUBLE'
           WHERE stream = $1 AND type = 'BIGINT' AND key IN (SELECT jsonb_array_elements_text($2::jsonb))`,
          [stream, JSON.stringify(widened)],
        );
      }
      return added.size > 0 || widened.length > 0 ? this.#streamColumns(tx, stream) : [...stored.values()];
    });
  }

  async retypeStreamColumns(stream: string, changes: readonly ColumnRetype[]): Promise<StreamColumn[]> {
    return this.#transaction(async (tx) => {
      for (const change of changes) {
        const updated = await tx.query(
          "UPDATE stream_columns SET type = $4 WHERE stream = $1 AND key = $2 AND type = $3 RETURNING key",
          [stream, columnKey(change.name), change.from, change.to],
        );
        if (updated.rows.length === 0) {
          throw new RunnelError(
            "conflict",
            `column "${change.name}" of stream "${stream}" is no longer of type ${change.from}; read it again`,
          );
        }
      }
      return this.#streamColumns(tx, stream);
    });
  }

  async #streamColumns(tx: SqlExecutor | undefined, stream: string): Promise<StreamColumn[]> {
    const sql = "SELECT name, type FROM stream_columns WHERE stream = $1 ORDER BY seq";
    const rows =
      tx === undefined
        ? await this.#query<StreamColumn>(sql, [stream])
        : (await tx.query<StreamColumn>(sql, [stream])).rows;
    return rows.map((r) => ({ name: r.name, type: r.type }));
  }

  async createPipeline(
    pipeline: Omit<PipelineDefinition, "createdAt" | "enabled"> & { readonly enabled?: boolean },
  ): Promise<PipelineDefinition> {
    const rows = await this.#query<PipelineRow>(
      `INSERT INTO pipelines (name, sql, start_from, options, enabled) VALUES ($1, $2, $3, $4, $5)
       RETURNING ${PIPELINE_COLUMNS}`,
      [
        pipeline.name,
        pipeline.sql,
        pipeline.startFrom,
        pipeline.options === undefined ? null : JSON.stringify(pipeline.options),
        pipeline.enabled ?? true,
      ],
    );
    return toPipeline(one(rows));
  }

  async getPipeline(name: string): Promise<PipelineDefinition | undefined> {
    const rows = await this.#query<PipelineRow>(`SELECT ${PIPELINE_COLUMNS} FROM pipelines WHERE name = $1`, [name]);
    return rows[0] === undefined ? undefined : toPipeline(rows[0]);
  }

  async listPipelines(): Promise<PipelineDefinition[]> {
    const rows = await this.#query<PipelineRow>(`SELECT ${PIPELINE_COLUMNS} FROM pipelines ORDER BY name`);
    return rows.map(toPipeline);
  }

  async setPipelineEnabled(name: string, enabled: boolean): Promise<PipelineDefinition | undefined> {
    const rows = await this.#query<PipelineRow>(
      `UPDATE pipelines SET enabled = $2 WHERE name = $1 RETURNING ${PIPELINE_COLUMNS}`,
      [name, enabled],
    );
    return rows[0] === undefined ? undefined : toPipeline(rows[0]);
  }

  async deletePipeline(name: string): Promise<boolean> {
    const rows = await this.#query<{ name: string }>("DELETE FROM pipelines WHERE name = $1 RETURNING name", [name]);
    return rows.length > 0;
  }

  async createRule(rule: {
    id: string;
    name: string;
    stream: string;
    spec: Record<string, unknown>;
    enabled: boolean;
  }): Promise<RuleRecord> {
    const rows = await this.#query<RuleRow>(
      `INSERT INTO cep_rules (id, name, stream, spec, enabled) VALUES ($1, $2, $3, $4, $5) RETURNING ${RULE_COLUMNS}`,
      [rule.id, rule.name, rule.stream, JSON.stringify(rule.spec), rule.enabled],
    );
    return toRule(one(rows));
  }

  async getRule(id: string): Promise<RuleRecord | undefined> {
    if (!UUID.test(id)) return undefined;
    const rows = await this.#query<RuleRow>(`SELECT ${RULE_COLUMNS} FROM cep_rules WHERE id = $1`, [id]);
    return rows[0] === undefined ? undefined : toRule(rows[0]);
  }

  async listRules(): Promise<RuleRecord[]> {
    const rows = await this.#query<RuleRow>(`SELECT ${RULE_COLUMNS} FROM cep_rules ORDER BY created_at, id`);
    return rows.map(toRule);
  }

  async updateRule(
    id: string,
    patch: { enabled?: boolean; name?: string; stream?: string; spec?: Record<string, unknown> },
  ): Promise<RuleRecord | undefined> {
    if (!UUID.test(id)) return undefined;
    const rows = await this.#query<RuleRow>(
      `UPDATE cep_rules SET enabled = COALESCE($2, enabled), name = COALESCE($3, name), stream = COALESCE($4, stream),
         spec = COALESCE($5::jsonb, spec), updated_at = now()
       WHERE id = $1 RETURNING ${RULE_COLUMNS}`,
      [
        id,
        patch.enabled ?? null,
        patch.name ?? null,
        patch.stream ?? null,
        patch.spec === undefined ? null : JSON.stringify(patch.spec),
      ],
    );
    return rows[0] === undefined ? undefined : toRule(rows[0]);
  }

  async deleteRule(id: string): Promise<boolean> {
    if (!UUID.test(id)) return false;
    const rows = await this.#query<{ id: string }>("DELETE FROM cep_rules WHERE id = $1 RETURNING id", [id]);
    return rows.length > 0;
  }

  async recordAlert(alert: NewAlert): Promise<boolean> {
    const [fresh] = await this.recordAlerts([alert]);
    return fresh === true;
  }

  async recordAlerts(alerts: readonly NewAlert[]): Promise<boolean[]> {
    if (alerts.length === 0) return [];
    // One statement over a JSON array, so a chunk's alerts cost one round trip (one parse and plan
    // on PGlite); ORDER BY keeps their seq, and so listAlerts' order, the order of the batch.
    const rows = await this.#query<{ id: string }>(
      `INSERT INTO cep_alerts (id, rule_id, match_id, rule_name, key, user_id, user_ids, severity, timed_out, events,
         first_event_time, last_event_time, detected_at)
       SELECT a->>'id', (a->>'ruleId')::uuid, a->>'matchId', a->>'ruleName', a->>'key', a->>'userId',
         ARRAY(SELECT u FROM jsonb_array_elements_text(a->'userIds') WITH ORDINALITY AS users(u, i) ORDER BY i),
         a->>'severity', (a->>'timedOut')::boolean, a->'events', (a->>'firstEventTime')::timestamptz,
         (a->>'lastEventTime')::timestamptz, COALESCE((a->>'detectedAt')::timestamptz, now())
       FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS batch(a, n)
       ORDER BY n
       ON CONFLICT DO NOTHING RETURNING id`,
      [JSON.stringify(alerts.map(alertParam))],
    );
    const inserted = new Set(rows.map((r) => r.id));
    // delete(): an id repeated in the batch was inserted once, so only its first position is new.
    return alerts.map((a) => inserted.delete(a.id));
  }

  async listAlerts(
    query: { ruleId?: string; userId?: string; since?: string; ids?: readonly string[]; limit?: number } = {},
  ): Promise<AlertRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.ruleId !== undefined) {
      if (!UUID.test(query.ruleId)) return [];
      params.push(query.ruleId);
      where.push(`rule_id = $${params.length}`);
    }
    if (query.userId !== undefined) {
      params.push(query.userId);
      where.push(`user_ids @> ARRAY[$${params.length}::text]`);
    }
    if (query.since !== undefined) {
      params.push(query.since);
      where.push(`detected_at >= $${params.length}::timestamptz`);
    }
    if (query.ids !== undefined) {
      params.push([...query.ids]);
      where.push(`id = ANY($${params.length}::text[])`);
    }
    params.push(Math.min(Math.max(query.limit ?? 100, 1), 1000));
    const rows = await this.#query<AlertRow>(
      `SELECT ${ALERT_COLUMNS} FROM cep_alerts ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
       ORDER BY seq DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map(toAlert);
  }

  async putBlock(block: Omit<BlockRecord, "since">): Promise<boolean> {
    const rows = await this.#query<{ user_id: string }>(
      `INSERT INTO cep_blocks (user_id, stream, rule_id, alert_id) VALUES ($1, $2, $3, $4)
       ON CONFLICT DO NOTHING RETURNING user_id`,
      [block.userId, block.stream, block.ruleId, block.alertId],
    );
    return rows.length > 0;
  }

  async raiseBlocks(blocks: readonly RaisedBlock[]): Promise<RaisedBlock[]> {
    if (blocks.length === 0) return [];
    return this.#transaction(async (tx) => {
      // The row lock orders two instances replaying the same match: the second finds it raised.
      const { rows: due } = await tx.query<{ id: string }>(
        `UPDATE cep_alerts SET blocks_raised_at = now()
         WHERE id = ANY($1::text[]) AND blocks_raised_at IS NULL RETURNING id`,
        [[...new Set(blocks.map((b) => b.alertId))]],
      );
      const raising = new Set(due.map((r) => r.id));
      const todo = blocks.filter((b) => raising.has(b.alertId));
      if (todo.length === 0) return [];
      const { rows } = await tx.query<{ user_id: string; stream: string; rule_id: string; alert_id: string }>(
        `INSERT INTO cep_blocks (user_id, stream, rule_id, alert_id)
         SELECT b->>'userId', b->>'stream', (b->>'ruleId')::uuid, b->>'alertId' FROM jsonb_array_elements($1::jsonb) AS todo(b)
         ON CONFLICT DO NOTHING RETURNING user_id, stream, rule_id, alert_id`,
        [JSON.stringify(todo)],
      );
      return rows.map((r) => ({ userId: r.user_id, stream: r.stream, ruleId: r.rule_id, alertId: r.alert_id }));
    });
  }

  async listBlocks(): Promise<BlockRecord[]> {
    const rows = await this.#query<BlockRow>(`SELECT ${BLOCK_COLUMNS} FROM cep_blocks ORDER BY since, user_id, stream`);
    return rows.map(toBlock);
  }

  async getBlock(userId: string, stream: string): Promise<BlockRecord | undefined> {
    const rows = await this.#query<BlockRow>(
      `SELECT ${BLOCK_COLUMNS} FROM cep_blocks WHERE user_id = $1 AND stream = $2`,
      [userId, stream],
    );
    return rows[0] === undefined ? undefined : toBlock(rows[0]);
  }

  async deleteBlocks(userId: string, stream?: string): Promise<BlockRecord[]> {
    const rows =
      stream === undefined
        ? await this.#query<BlockRow>(`DELETE FROM cep_blocks WHERE user_id = $1 RETURNING ${BLOCK_COLUMNS}`, [userId])
        : await this.#query<BlockRow>(
            `DELETE FROM cep_blocks WHERE user_id = $1 AND stream = $2 RETURNING ${BLOCK_COLUMNS}`,
            [userId, stream],
          );
    return rows.map(toBlock);
  }

  #revoked(revocation: Revocation): void {
    this.options.revocations?.publish(revocation);
  }

  async #transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const driver = this.#driver;
    if (driver === undefined) throw new RunnelError("not_ready", "control store is not open");
    try {
      return await driver.transaction(fn);
    } catch (e) {
      throw translateDatabaseError(e);
    }
  }

  async #query<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    const driver = this.#driver;
    if (driver === undefined) throw new RunnelError("not_ready", "control store is not open");
    try {
      return (await driver.query<T>(sql, params)).rows;
    } catch (e) {
      throw translateDatabaseError(e);
    }
  }
}

async function insertImportFile(tx: SqlExecutor, f: ImportFileRecord): Promise<void> {
  await tx.query(
    `INSERT INTO archive_imports (${IMPORT_FILE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    [
      f.stream,
      f.importId ?? null,
      f.firstRow ?? null,
      f.chunkRows ?? null,
      f.minTime,
      f.maxTime,
      f.minUser,
      f.maxUser,
      f.rows,
      f.bytes,
      f.schemaVersion,
      f.path,
    ],
  );
}

async function insertArchiveFile(tx: SqlExecutor, f: ArchiveFileRecord): Promise<void> {
  await tx.query(
    `INSERT INTO archive_files (${ARCHIVE_FILE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
    [
      f.stream,
      f.partition,
      f.offsetStart,
      f.offsetEnd,
      f.minTime,
      f.maxTime,
      f.minUser,
      f.maxUser,
      f.rows,
      f.bytes,
      f.schemaVersion,
      f.path,
      f.userPart ?? 0,
    ],
  );
}

function one<T>(rows: T[]): T {
  const row = rows[0];
  if (row === undefined) throw new RunnelError("internal", "statement returned no row");
  return row;
}

// CEP rows are mapped here rather than in rows.ts to keep the CEP change to this store additive.
const RULE_COLUMNS = "id, name, stream, spec, enabled, created_at, updated_at";
const ALERT_COLUMNS =
  "id, rule_id, match_id, rule_name, key, user_id, user_ids, severity, timed_out, events, first_event_time, last_event_time, detected_at";
const BLOCK_COLUMNS = "user_id, stream, rule_id, alert_id, since";

interface RuleRow {
  id: string;
  name: string;
  stream: string;
  spec: Record<string, unknown> | string;
  enabled: boolean;
  created_at: Date | string;
  updated_at: Date | string;
}
interface AlertRow {
  id: string;
  rule_id: string;
  match_id: string;
  rule_name: string;
  key: string;
  user_id: string | null;
  user_ids: string[];
  severity: string;
  timed_out: boolean;
  events: unknown[] | string;
  first_event_time: Date | string;
  last_event_time: Date | string;
  detected_at: Date | string;
}
interface BlockRow {
  user_id: string;
  stream: string;
  rule_id: string | null;
  alert_id: string | null;
  since: Date | string;
}

/** The strongest reason a user row's change revokes credentials, if it does. */
function revocationReason(
  before: { role: Role; disabled: boolean; password_hash: string },
  after: UserRow,
): RevocationReason | undefined {
  if (after.disabled && !before.disabled) return "disabled";
  if (after.role !== before.role) return "role_changed";
  if (after.password_hash !== before.password_hash) return "password_changed";
  return undefined;
}

function iso(t: Date | string): string {
  return (t instanceof Date ? t : new Date(t)).toISOString();
}
function json<T>(x: T | string): T {
  return typeof x === "string" ? (JSON.parse(x) as T) : x;
}
function toRule(r: RuleRow): RuleRecord {
  return {
    id: r.id,
    name: r.name,
    stream: r.stream,
    spec: json(r.spec),
    enabled: r.enabled,
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
  };
}
function toAlert(r: AlertRow): AlertRecord {
  return {
    id: r.id,
    ruleId: r.rule_id,
    ruleName: r.rule_name,
    matchId: r.match_id,
    key: r.key,
    userId: r.user_id,
    userIds: r.user_ids,
    severity: r.severity,
    timedOut: r.timed_out,
    events: json(r.events),
    firstEventTime: iso(r.first_event_time),
    lastEventTime: iso(r.last_event_time),
    detectedAt: iso(r.detected_at),
  };
}
/** The fields recordAlerts reads, by name, with `detectedAt` explicit (null: the store's clock). */
function alertParam(a: NewAlert): Record<string, unknown> {
  return {
    id: a.id,
    ruleId: a.ruleId,
    matchId: a.matchId,
    ruleName: a.ruleName,
    key: a.key,
    userId: a.userId,
    userIds: a.userIds,
    severity: a.severity,
    timedOut: a.timedOut,
    events: a.events,
    firstEventTime: a.firstEventTime,
    lastEventTime: a.lastEventTime,
    detectedAt: a.detectedAt ?? null,
  };
}
function toBlock(r: BlockRow): BlockRecord {
  return { userId: r.user_id, stream: r.stream, ruleId: r.rule_id, alertId: r.alert_id, since: iso(r.since) };
}
