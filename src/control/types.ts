/**
 * The ControlStore seam: accounts, credentials, settings, activity, and the catalogue of
 * streams and pipelines, in PostgreSQL. Implementations: embedded PGlite and a real server by
 * URL (src/control/pglite.ts, src/control/postgres.ts), one schema and one set of migrations
 * (src/control/migrations.ts), one test suite (test/control/conformance.ts) run against both.
 */
import type { ColumnType } from "../analytics/duckdb/column-types.js";
import type { DriverPoolStats } from "./driver.js";

export type Role = "admin" | "analyst" | "user" | "service";
export const ROLES: readonly Role[] = ["admin", "analyst", "user", "service"];

export interface User {
  readonly id: string;
  readonly username: string;
  readonly email: string;
  readonly role: Role;
  readonly disabled: boolean;
  readonly createdAt: string;
  /** Bumped whenever credentials must be revoked (password change, disable); tokens carry it. */
  readonly tokenVersion: number;
}

export interface UserWithSecret extends User {
  /** Encoded password hash with its KDF parameters (see src/control/passwords.ts). */
  readonly passwordHash: string;
}

export interface ApiKey {
  readonly id: string;
  readonly userId: string;
  readonly name: string;
  readonly role: Role;
  /** The visible first characters of the key, for identification. */
  readonly prefix: string;
  readonly createdAt: string;
}

export interface ApiKeyWithOwner extends ApiKey {
  readonly owner: User;
}

export interface ActivityEntry {
  readonly id: string;
  readonly userId: string;
  readonly kind: string;
  readonly detail: Record<string, unknown>;
  readonly at: string;
}

export interface StreamDefinition {
  readonly name: string;
  readonly partitions: number;
  readonly schema?: Record<string, unknown>;
  readonly timestampField: string;
  readonly retentionMs?: number;
  /** The pipeline that writes this stream, when it is derived. */
  readonly derivedFrom?: string;
  /**
   * false: the stream lives in the log only (pipelines, rules and tail read it) and has no
   * analytics table, so ingest does not pay for indexing it. Absent: true.
   */
  readonly analytics?: boolean;
  /**
   * How long a row stays in the analytics hot tier, by event time, before the archiver moves it
   * to the Parquet archive (src/archive/); absent: DEFAULT_HOT_MS (src/archive/hot-window.ts).
   */
  readonly hotMs?: number;
  /** How long archived rows are kept, by event time (the archive tier's retention); absent: for ever. */
  readonly archiveRetentionMs?: number;
  /** How far ahead of ingest time an event's time may be; absent: the default (src/ingest/event-time.ts). */
  readonly maxFutureSkewMs?: number;
  /** Rollup tables kept from the stream's rows as they are loaded (docs/rollups.md); absent: none. */
  readonly rollups?: readonly RollupSpec[];
  readonly createdAt: string;
}

/** What a rollup metric computes over a group's rows; `field` is absent for `count` only. */
export type RollupFunction = "count" | "sum" | "min" | "max" | "approx_count_distinct";

export interface RollupMetric {
  /** The metric's column in the rollup table. */
  readonly name: string;
  readonly fn: RollupFunction;
  /** The event field (or `user_id`) it reads. */
  readonly field?: string;
}

/**
 * One rollup table of a stream, Druid's ingestion-time rollup: rows grouped by time bucket and
 * dimensions, each group kept as one row of metrics (src/catalog/rollup-spec.ts parses it).
 */
export interface RollupSpec {
  /** The table's name in queries, unique among streams and rollups. */
  readonly name: string;
  /** The bucket width as declared (`"1m"`). */
  readonly granularity: string;
  /** The bucket width in ms; buckets start at multiples of it from the Unix epoch. */
  readonly granularityMs: number;
  /** Event fields (or `user_id`) grouped by, kept as text. */
  readonly dimensions: readonly string[];
  readonly metrics: readonly RollupMetric[];
  /**
   * Absent: the rollup is kept and queried. `building`: added to a stream that has data, not yet
   * backfilled from it; `dropping`: removed, its table and files not yet deleted. The archiver
   * settles both (src/archive/archiver.ts), and nothing reads or keeps a rollup meanwhile.
   */
  readonly state?: RollupState;
}

export type RollupState = "building" | "dropping";

/**
 * One Parquet file of the analytics archive, committed by its manifest row (docs/storage.md).
 * The files of a stream's partition cover consecutive offset ranges from 0: the archive holds
 * the partition's rows below the last file's offsetEnd, the hot tier the rows from there on.
 */
export interface ArchiveFileRecord {
  readonly stream: string;
  readonly partition: number;
  /** First offset the file covers. */
  readonly offsetStart: number;
  /** Offset after the last one it covers (the range is [offsetStart, offsetEnd)). */
  readonly offsetEnd: number;
  /** Event time (`_time`) of its earliest and latest row, epoch ms. */
  readonly minTime: number;
  readonly maxTime: number;
  /** Lowest and highest user_id in it, so a user's query skips files that cannot hold their rows. */
  readonly minUser: string;
  readonly maxUser: string;
  readonly rows: number;
  readonly bytes: number;
  /** Columns the file was written with (a table only gains columns, so this orders schemas). */
  readonly schemaVersion: number;
  /** Its key in the archive location, `<stream>/<day>/p<partition>/<offsetStart>-<offsetEnd>.parquet`. */
  readonly path: string;
  /**
   * Which of the files laid out by user range over the same offset range this is (each holds the
   * rows of its users, src/archive/relayout.ts); absent: 0, a file alone on its range.
   */
  readonly userPart?: number;
}

/**
 * One Parquet file written by an import (src/archive/import/): rows loaded into the archive
 * directly, never in the log, so no offset range names them. An import's input is cut into
 * chunks of consecutive rows; a chunk is written as one file per UTC day it spans and committed
 * with all of them at once, at most once per import.
 */
export interface ImportFileRecord {
  readonly stream: string;
  /**
   * The import's id, chosen by whoever runs it; a re-run with the same id skips committed chunks.
   * Absent, with firstRow and chunkRows, on a file compaction merged from several chunks' files.
   */
  readonly importId?: string;
  /** The chunk: input rows [firstRow, firstRow + chunkRows), counted from 0. */
  readonly firstRow?: number;
  readonly chunkRows?: number;
  readonly minTime: number;
  readonly maxTime: number;
  readonly minUser: string;
  readonly maxUser: string;
  /** Rows in this file (the chunk's rows of one day). */
  readonly rows: number;
  readonly bytes: number;
  readonly schemaVersion: number;
  /**
   * Its key, `<stream>/<day>/import/<importId>-<firstRow>-<random>.parquet`, or
   * `<stream>/<day>/import/compacted-<random>.parquet` for a merged one.
   */
  readonly path: string;
}

/** A file of one import chunk, as the importer commits it. */
export type ImportChunkFile = ImportFileRecord &
  Required<Pick<ImportFileRecord, "importId" | "firstRow" | "chunkRows">>;

/** One committed chunk of an import: its input rows [firstRow, firstRow + chunkRows). */
export interface ImportChunk {
  readonly stream: string;
  readonly importId: string;
  readonly firstRow: number;
  readonly chunkRows: number;
}

/** The analytics column of one event field of a stream: its name as first seen and its type. */
export interface StreamColumn {
  readonly name: string;
  readonly type: ColumnType;
}

/** An admin's widening of one column: applied only while the column is still of type `from`. */
export interface ColumnRetype {
  readonly name: string;
  readonly from: ColumnType;
  readonly to: ColumnType;
}

export interface PipelineDefinition {
  readonly name: string;
  readonly sql: string;
  /** Where a new pipeline starts reading its input. */
  readonly startFrom: "earliest" | "now";
  /** Event-time settings as given, in human units (`{"outOfOrderness": "5s"}`). */
  readonly options?: Readonly<Record<string, string>>;
  /** False while an admin has it disabled: its runner is stopped, its position kept. */
  readonly enabled: boolean;
  readonly createdAt: string;
}

/** A CEP rule as stored: the posted spec (API.md) plus identity and state. */
export interface RuleRecord {
  readonly id: string;
  readonly name: string;
  readonly stream: string;
  readonly spec: Record<string, unknown>;
  readonly enabled: boolean;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface AlertRecord {
  readonly id: string;
  readonly ruleId: string;
  readonly ruleName: string;
  /** Identifies the match within its rule; (ruleId, matchId) is unique. */
  readonly matchId: string;
  readonly key: string;
  /** The user the alert is about: the key of a `user_id`-keyed rule, else the first matched event's. */
  readonly userId: string | null;
  /** Every user whose events the match holds, in order of first appearance. */
  readonly userIds: readonly string[];
  readonly severity: string;
  readonly timedOut: boolean;
  readonly events: unknown[];
  readonly firstEventTime: string;
  readonly lastEventTime: string;
  readonly detectedAt: string;
}

/** An alert to store; `detectedAt` defaults to the store's clock. */
export type NewAlert = Omit<AlertRecord, "detectedAt"> & { readonly detectedAt?: string };

export interface BlockRecord {
  readonly userId: string;
  readonly stream: string;
  readonly ruleId: string | null;
  readonly alertId: string | null;
  readonly since: string;
}

/** A block a stored alert calls for (ControlStore.raiseBlocks). */
export interface RaisedBlock {
  readonly userId: string;
  readonly stream: string;
  readonly ruleId: string;
  readonly alertId: string;
}

/** Why credentials were taken away; every revoking change in the store publishes one of these. */
export type RevocationReason = "password_changed" | "disabled" | "deleted" | "role_changed" | "api_key_deleted";

/**
 * Published after a revoking change has committed. `apiKeyId` is set when one key went; every
 * other reason concerns the user's credentials (tokens, and keys where the reason revokes them).
 */
export interface Revocation {
  readonly userId: string;
  readonly reason: RevocationReason;
  readonly apiKeyId?: string;
}

/** Where a ControlStore publishes revocations (src/api/auth/revocations.ts). */
export interface RevocationSink {
  publish(revocation: Revocation): void;
}

export interface NewUser {
  readonly username: string;
  readonly email: string;
  readonly passwordHash: string;
  readonly role: Role;
}

export interface NewApiKey {
  readonly userId: string;
  readonly name: string;
  readonly role: Role;
  readonly prefix: string;
  /** SHA-256 of the whole key, hex; the key itself is never stored. */
  readonly keyHash: string;
}

export interface ControlStore {
  /** Connects and runs pending migrations. */
  open(): Promise<void>;
  close(): Promise<void>;
  /** True when the database answers a trivial query. */
  ping(): Promise<boolean>;
  /** Connection pool use for monitoring (undefined while closed); optional for test doubles. */
  poolStats?(): DriverPoolStats | undefined;

  /**
   * Users. Unique email (case-insensitive) and username: two usernames that are equal after
   * NFKC normalisation and case folding (`Admin`, `ADMIN`, `ａｄｍｉｎ`) are one name, and a
   * duplicate throws RunnelError("conflict").
   */
  createUser(user: NewUser): Promise<User>;
  /** The account with exactly this username, else the one whose folded username matches. */
  getUserByUsername(username: string): Promise<UserWithSecret | undefined>;
  getUserById(id: string): Promise<User | undefined>;
  listUsers(): Promise<User[]>;
  /**
   * Changing the password, the role or disabling publishes a revocation; disabling also deletes
   * the user's API keys (re-enabling does not bring them back).
   */
  updateUser(
    id: string,
    patch: { email?: string; role?: Role; disabled?: boolean; passwordHash?: string },
  ): Promise<User>;
  /**
   * Removes the account, its keys and settings; activity stays. The username is reserved for ever
   * (createUser refuses it with a conflict): events name their user by username, so a newcomer
   * under the same name would otherwise inherit the deleted user's events.
   */
  deleteUser(id: string): Promise<void>;
  /**
   * Replaces the password hash only if it is still `current` (a concurrent password change wins),
   * without revoking tokens: the password is the same, only its hash is stronger. True if replaced.
   */
  rehashPassword(id: string, current: string, next: string): Promise<boolean>;
  countAdmins(): Promise<number>;

  // API keys.
  createApiKey(key: NewApiKey): Promise<ApiKey>;
  findApiKeyByHash(keyHash: string): Promise<ApiKeyWithOwner | undefined>;
  listApiKeys(userId: string): Promise<ApiKey[]>;
  deleteApiKey(userId: string, id: string): Promise<boolean>;

  // Settings: any JSON object per user.
  getSettings(userId: string): Promise<Record<string, unknown>>;
  putSettings(userId: string, settings: Record<string, unknown>): Promise<void>;

  // Activity log: append-only, newest first.
  recordActivity(userId: string, kind: string, detail?: Record<string, unknown>): Promise<void>;
  listActivity(userId: string, options?: { limit?: number; before?: string }): Promise<ActivityEntry[]>;

  // Catalogue.
  createStream(stream: Omit<StreamDefinition, "createdAt">): Promise<StreamDefinition>;
  getStream(name: string): Promise<StreamDefinition | undefined>;
  listStreams(): Promise<StreamDefinition[]>;
  deleteStream(name: string): Promise<boolean>;
  /**
   * Changes a stream's rollups in one transaction: `change` gets the declarations stored now and
   * returns the new ones (or throws, changing nothing). stream_not_found when there is no such
   * stream. Returns the updated definition.
   */
  updateStreamRollups(
    stream: string,
    change: (current: readonly RollupSpec[]) => readonly RollupSpec[],
  ): Promise<StreamDefinition>;

  // Column types of a stream's event fields (src/catalog/columns.ts), in the order they came in;
  // names compare case-insensitively. Deleting the stream deletes them.
  listStreamColumns(stream: string): Promise<StreamColumn[]>;
  /**
   * Records fields' types: a column not stored yet is added with the given type; a stored BIGINT
   * given as DOUBLE becomes DOUBLE (the one widening a writer may cause); any other stored type
   * stays, so of two writers racing to type a new field the first wins. Refuses with
   * too_many_columns, adding nothing, when the stream would hold more than `maxColumns`, and with
   * stream_not_found when there is no such stream. Returns every column of the stream.
   */
  registerStreamColumns(stream: string, columns: readonly StreamColumn[], maxColumns: number): Promise<StreamColumn[]>;
  /**
   * Changes column types, all or none: refuses with conflict when a column is no longer of type
   * `from` (or does not exist). Returns every column of the stream.
   */
  retypeStreamColumns(stream: string, changes: readonly ColumnRetype[]): Promise<StreamColumn[]>;

  // The analytics archive's manifest (src/archive/). Deleting the stream deletes its rows.
  /** Committed files of one stream (or of every stream), by stream, partition and offset. */
  listArchiveFiles(stream?: string): Promise<ArchiveFileRecord[]>;
  /**
   * Commits one file: its manifest row and its partition's new archive boundary (offsetEnd), in
   * one transaction. Refuses with conflict, committing nothing, unless offsetStart is the
   * partition's boundary (0 for its first file): a file committed twice, or two overlapping
   * files, cannot both be committed. stream_not_found when there is no such stream.
   */
  commitArchiveFile(file: ArchiveFileRecord): Promise<void>;
  /**
   * Compaction's commit: replaces consecutive files of one partition by `merged` (one file, or
   * the parts 0..n-1 of a layout by user range), each covering exactly their offset ranges and
   * together holding as many rows, in one transaction. A replaced range's parts go together: a
   * part left out is a conflict. Refuses with conflict, changing nothing, when any of them is no
   * longer committed or the ranges, parts or row counts do not match.
   */
  replaceArchiveFiles(
    stream: string,
    replaced: readonly string[],
    merged: ArchiveFileRecord | readonly ArchiveFileRecord[],
  ): Promise<void>;
  /**
   * Removes files from the manifest (archive retention); the partitions' boundaries stay, so
   * their rows never count as hot again. Returns the records removed.
   */
  deleteArchiveFiles(stream: string, paths: readonly string[]): Promise<ArchiveFileRecord[]>;
  /** Each partition's archive boundary: the offset below which its rows are in the archive. */
  archiveBoundaries(stream: string): Promise<Map<number, number>>;
  /**
   * Files written by imports, of one stream (or every stream) and optionally one import (then
   * without the files compaction merged, which belong to no one import).
   */
  listImportFiles(stream?: string, importId?: string): Promise<ImportFileRecord[]>;
  /**
   * The chunks an import committed, by first row: they stay committed when their files are
   * merged or expire, so a re-run of the import never commits their rows again.
   */
  listImportChunks(stream: string, importId: string): Promise<ImportChunk[]>;
  /**
   * Commits one chunk of an import: the chunk and all its files in one transaction. Refuses with
   * conflict, committing nothing, when the chunk's rows overlap a chunk of the same import
   * committed already, so each input row is committed at most once however often the import runs.
   */
  commitImportChunk(files: readonly ImportChunkFile[]): Promise<void>;
  /**
   * Compaction's commit for imported files: replaces them by `merged` (which holds their rows:
   * its row count must be theirs) in one transaction. Refuses with conflict, changing nothing,
   * when any of them is no longer committed or the rows do not add up.
   */
  replaceImportFiles(stream: string, replaced: readonly string[], merged: ImportFileRecord): Promise<void>;
  /** Removes imported files from the manifest (archive retention). Returns the records removed. */
  deleteImportFiles(stream: string, paths: readonly string[]): Promise<ImportFileRecord[]>;

  /** `enabled` defaults to true. */
  createPipeline(
    pipeline: Omit<PipelineDefinition, "createdAt" | "enabled"> & { readonly enabled?: boolean },
  ): Promise<PipelineDefinition>;
  getPipeline(name: string): Promise<PipelineDefinition | undefined>;
  listPipelines(): Promise<PipelineDefinition[]>;
  /** The updated definition, or undefined when no pipeline has that name. */
  setPipelineEnabled(name: string, enabled: boolean): Promise<PipelineDefinition | undefined>;
  deletePipeline(name: string): Promise<boolean>;

  // CEP rules, alerts and blocks (src/cep).
  createRule(rule: {
    id: string;
    name: string;
    stream: string;
    spec: Record<string, unknown>;
    enabled: boolean;
  }): Promise<RuleRecord>;
  getRule(id: string): Promise<RuleRecord | undefined>;
  listRules(): Promise<RuleRecord[]>;
  /** Changes the given fields (the spec is replaced whole); undefined when no such rule. */
  updateRule(
    id: string,
    patch: { enabled?: boolean; name?: string; stream?: string; spec?: Record<string, unknown> },
  ): Promise<RuleRecord | undefined>;
  deleteRule(id: string): Promise<boolean>;
  /** Stores an alert unless its id or its (ruleId, matchId) is already stored; true when it was new. */
  recordAlert(alert: NewAlert): Promise<boolean>;
  /**
   * recordAlert for many alerts in one statement (a rule runner's whole chunk of matches, so they
   * are stored in one round trip rather than one after another): element i is true when alerts[i]
   * was new. An alert repeated within the batch is new only at its first position.
   */
  recordAlerts(alerts: readonly NewAlert[]): Promise<boolean[]>;
  /**
   * Newest first; `userId` finds the alerts holding that user's events (AlertRecord.userIds); `ids`
   * only those alerts (another instance's, announced by the change feed).
   */
  listAlerts(query?: {
    ruleId?: string;
    userId?: string;
    since?: string;
    ids?: readonly string[];
    limit?: number;
  }): Promise<AlertRecord[]>;
  /** True when the block is new. */
  putBlock(block: Omit<BlockRecord, "since">): Promise<boolean>;
  /**
   * Stores the blocks stored alerts call for, once per alert and in one transaction: the blocks of
   * an alert that raised its blocks before (lifted since or not) are not stored again, so a match
   * replayed after its task moved cannot undo a lift. Returns the blocks newly stored.
   */
  raiseBlocks(blocks: readonly RaisedBlock[]): Promise<RaisedBlock[]>;
  listBlocks(): Promise<BlockRecord[]>;
  getBlock(userId: string, stream: string): Promise<BlockRecord | undefined>;
  /** Lifts the user's blocks (on one stream, or all); returns what was lifted. */
  deleteBlocks(userId: string, stream?: string): Promise<BlockRecord[]>;
}
