/**
 * Rows as the drivers return them, and their mapping to the ControlStore's types. Both drivers
 * give timestamps as Date and jsonb as parsed JSON; bigint may arrive as string or bigint.
 */
import type {
  ActivityEntry,
  ApiKey,
  ArchiveFileRecord,
  ImportFileRecord,
  PipelineDefinition,
  Role,
  RollupSpec,
  StreamDefinition,
  User,
} from "./types.js";

export interface UserRow {
  id: string;
  username: string;
  email: string;
  role: Role;
  disabled: boolean;
  token_version: number;
  created_at: Date | string;
  password_hash?: string;
}

export interface ApiKeyRow {
  id: string;
  user_id: string;
  name: string;
  role: Role;
  prefix: string;
  created_at: Date | string;
}

export interface ApiKeyOwnerRow extends ApiKeyRow {
  username: string;
  email: string;
  owner_role: Role;
  disabled: boolean;
  token_version: number;
  owner_created_at: Date | string;
}

export interface ActivityRow {
  id: string;
  user_id: string;
  kind: string;
  detail: Record<string, unknown>;
  at: Date | string;
}

export interface StreamRow {
  name: string;
  partitions: number;
  schema: Record<string, unknown> | null;
  timestamp_field: string;
  retention_ms: string | number | bigint | null;
  derived_from: string | null;
  max_future_skew_ms: string | number | bigint | null;
  analytics: boolean;
  analytics_hot_ms: string | number | bigint | null;
  analytics_archive_ms: string | number | bigint | null;
  rollups: RollupSpec[] | null;
  created_at: Date | string;
}

/** The columns an archived file's row has, whether the archiver or an import wrote it. */
interface ArchivedFileColumns {
  min_time_ms: string | number | bigint;
  max_time_ms: string | number | bigint;
  min_user: string;
  max_user: string;
  row_count: string | number | bigint;
  bytes: string | number | bigint;
  schema_version: number;
  path: string;
}

export interface ArchiveFileRow extends ArchivedFileColumns {
  stream: string;
  stream_partition: number;
  offset_start: string | number | bigint;
  offset_end: string | number | bigint;
  user_part: number;
}

export interface PipelineRow {
  name: string;
  sql: string;
  start_from: "earliest" | "now";
  options: Record<string, string> | string | null;
  enabled: boolean;
  created_at: Date | string;
}

export function iso(value: Date | string): string {
  return (value instanceof Date ? value : new Date(value)).toISOString();
}

export function toUser(r: UserRow): User {
  return {
    id: r.id,
    username: r.username,
    email: r.email,
    role: r.role,
    disabled: r.disabled,
    createdAt: iso(r.created_at),
    tokenVersion: r.token_version,
  };
}

export function toApiKey(r: ApiKeyRow): ApiKey {
  return { id: r.id, userId: r.user_id, name: r.name, role: r.role, prefix: r.prefix, createdAt: iso(r.created_at) };
}

export function toActivity(r: ActivityRow): ActivityEntry {
  return { id: r.id, userId: r.user_id, kind: r.kind, detail: r.detail, at: iso(r.at) };
}

export function toStream(r: StreamRow): StreamDefinition {
  return {
    name: r.name,
    partitions: r.partitions,
    ...(r.schema !== null && { schema: r.schema }),
    timestampField: r.timestamp_field,
    ...(r.retention_ms !== null && { retentionMs: Number(r.retention_ms) }),
    ...(r.derived_from !== null && { derivedFrom: r.derived_from }),
    ...(r.max_future_skew_ms !== null && { maxFutureSkewMs: Number(r.max_future_skew_ms) }),
    ...(!r.analytics && { analytics: false }),
    ...(r.analytics_hot_ms !== null && { hotMs: Number(r.analytics_hot_ms) }),
    ...(r.analytics_archive_ms !== null && { archiveRetentionMs: Number(r.analytics_archive_ms) }),
    ...(r.rollups !== null && { rollups: r.rollups }),
    createdAt: iso(r.created_at),
  };
}

export function toPipeline(r: PipelineRow): PipelineDefinition {
  // node-postgres parses jsonb; PGlite may hand back text.
  const options = typeof r.options === "string" ? (JSON.parse(r.options) as Record<string, string>) : r.options;
  return {
    name: r.name,
    sql: r.sql,
    startFrom: r.start_from,
    ...(options !== null && { options }),
    enabled: r.enabled,
    createdAt: iso(r.created_at),
  };
}

export interface ImportFileRow extends ArchivedFileColumns {
  stream: string;
  import_id: string | null;
  first_row: string | number | bigint | null;
  chunk_rows: string | number | bigint | null;
}

function archivedFileFields(r: ArchivedFileColumns) {
  return {
    minTime: Number(r.min_time_ms),
    maxTime: Number(r.max_time_ms),
    minUser: r.min_user,
    maxUser: r.max_user,
    rows: Number(r.row_count),
    bytes: Number(r.bytes),
    schemaVersion: r.schema_version,
    path: r.path,
  };
}

export function toImportFile(r: ImportFileRow): ImportFileRecord {
  return {
    stream: r.stream,
    ...(r.import_id !== null && { importId: r.import_id }),
    ...(r.first_row !== null && { firstRow: Number(r.first_row) }),
    ...(r.chunk_rows !== null && { chunkRows: Number(r.chunk_rows) }),
    ...archivedFileFields(r),
  };
}

export function toArchiveFile(r: ArchiveFileRow): ArchiveFileRecord {
  return {
    stream: r.stream,
    partition: r.stream_partition,
    offsetStart: Number(r.offset_start),
    offsetEnd: Number(r.offset_end),
    ...archivedFileFields(r),
    // Absent for a file alone on its range, as such records are written.
    ...(r.user_part > 0 ? { userPart: r.user_part } : {}),
  };
}
