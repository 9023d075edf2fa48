/**
 * Runnel's configuration: one schema, defaults beside it in human units, validated at the edge
 * (flags and environment) with the offending field named, then frozen.
 */
import { availableParallelism, hostname } from "node:os";
import { join, resolve } from "node:path";
import type { JsonLimits } from "../ingest/json-limits.js";
import { parseDuration, parseSize } from "./units.js";

export interface Config {
  readonly dataDir: string;
  readonly host: string;
  readonly port: number;
  readonly adminPassword?: string;
  /** PostgreSQL URL for the control plane; embedded PGlite when absent. */
  readonly databaseUrl?: string;
  /** Apache Kafka bootstrap servers for the log; the local log when absent. */
  readonly kafkaBrokers?: readonly string[];
  /** Prefix of the Kafka topic that holds each stream. */
  readonly kafkaTopicPrefix: string;
  /**
   * Where tasks keep their checkpoints (src/runtime/checkpoint): files under the data dir, or the
   * control plane's PostgreSQL, which every instance of an installation reaches.
   */
  readonly checkpointStore: CheckpointStoreKind;
  /**
   * Cluster mode (docs/cluster.md): several instances with the same Kafka, PostgreSQL and
   * installation share the work. Read only when the log is Kafka and the control plane PostgreSQL.
   */
  readonly cluster: {
    /** The installation's name: instances with the same one share the work. */
    readonly installation: string;
    /** This instance's stable name in the group (static membership); the hostname by default. */
    readonly instanceId: string;
    /** Where the other instances and operators reach this one; http://<host>:<port> when absent. */
    readonly advertisedUrl?: string;
    /** Units of ownership handed out by the group: partition p belongs to slot p % slots. */
    readonly slots: number;
    /** The group's consumer.session.timeout.ms; the brokers' default when absent. */
    readonly sessionTimeoutMs?: number;
  };
  /** Origins allowed to call the API from a browser (CORS); none by default. */
  readonly corsOrigins: readonly string[];
  readonly limits: {
    readonly maxBodyBytes: number;
    readonly maxEventBytes: number;
    /** Event-field columns a stream may have (docs/security.md, "Column types and the column bound"). */
    readonly maxColumnsPerStream: number;
    /** Shape limits of every JSON body and event (src/ingest/json-limits.ts). */
    readonly json: JsonLimits;
  };
  readonly auth: {
    readonly tokenTtlMs: number;
    /** Secret for signing tokens; generated and kept under the data dir when absent. */
    readonly tokenSecret?: string;
    /** Signups allowed per client address per window (docs/security.md). */
    readonly signupRate: RateLimit;
    /** API keys created per user, and per client address, per window. */
    readonly apiKeyRate: RateLimit;
  };
  /** Timeouts of the HTTP server (docs/security.md); long-lived SSE and WebSocket are not cut by them. */
  readonly http: {
    /** Whole request, headers and body, must arrive within this. */
    readonly requestTimeoutMs: number;
    /** Request headers must arrive within this (at most requestTimeoutMs). */
    readonly headersTimeoutMs: number;
    /** An idle keep-alive connection is closed after this. */
    readonly keepAliveTimeoutMs: number;
  };
  readonly log: {
    readonly defaultPartitions: number;
    readonly segmentBytes: number;
  };
  readonly logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "silent";
  readonly ingest: {
    /** Bytes accepted and not yet durable before ingest answers 429. */
    readonly maxPendingBytes: number;
    /** Records durable but not yet processed before ingest answers 429 (0: no bound). */
    readonly maxLagRecords: number;
    /** How long an Idempotency-Key is remembered. */
    readonly idempotencyTtlMs: number;
  };
  /** A YAML or JSON file declaring sources (MQTT, Kafka topics, files); none when absent. */
  readonly sourcesFile?: string;
  readonly monitoring: {
    /** How often the traffic anomaly detector samples ingest rates and lags (its interval). */
    readonly anomalyIntervalMs: number;
  };
  /** How often the local log deletes segments past each stream's retention. */
  readonly retentionIntervalMs: number;
  /** The analytics archive (docs/storage.md). */
  readonly archive: {
    /** How often rows past their stream's hot window move to the archive. */
    readonly intervalMs: number;
    /** Where the archive lives: a local directory, or `s3://bucket/prefix`. */
    readonly location: ArchiveLocationConfig;
    /** Input rows per committed chunk of an import (src/archive/import/): the most a crash makes a re-run redo. */
    readonly importChunkRows: number;
  };
  /** Bounds on SQL queries (docs/security.md, "Query limits"). */
  readonly query: {
    readonly maxRows: number;
    /** Result size in bytes (strings by length, 8 per number) before result_too_large. */
    readonly maxResultBytes: number;
    readonly timeoutMs: number;
    /** DuckDB memory_limit of the sandbox each `user` query runs in. */
    readonly memoryLimitBytes: number;
    /** Queries running at once, over all users. */
    readonly concurrency: number;
    /** Queries of one user running at once; more wait their turn. */
    readonly userConcurrency: number;
    /** Queries of one user waiting before more are refused with 429. */
    readonly userQueue: number;
    /**
     * DuckDB threads of the analytics store's own instance: the loader's appends and commits,
     * admins' and analysts' queries, archive files (users' queries run in sandboxes of one thread).
     */
    readonly storeThreads: number;
  };
}

export type ArchiveLocationConfig =
  | { readonly kind: "local"; readonly dir: string }
  | { readonly kind: "s3"; readonly bucket: string; readonly prefix: string };

export const CHECKPOINT_STORES = ["local", "database"] as const;
export type CheckpointStoreKind = (typeof CHECKPOINT_STORES)[number];

/** At most `count` in any `windowMs`, as a token bucket: a burst of `count`, then one per windowMs/count. */
export interface RateLimit {
  readonly count: number;
  readonly windowMs: number;
}

export const DEFAULTS = {
  dataDir: "./data",
  host: "127.0.0.1",
  port: "8080",
  maxBodyBytes: "10MiB",
  maxEventBytes: "1MiB",
  maxColumnsPerStream: "1000",
  // Deep enough for any real event (Elasticsearch's mapping depth limit is 20), far below what a
  // recursive reader's stack survives; 1000 fields is Elasticsearch's total_fields limit.
  maxJsonDepth: "64",
  maxJsonFields: "1000",
  tokenTtl: "1h",
  defaultPartitions: "4",
  segmentBytes: "64MiB",
  logLevel: "info",
  ingestMaxPending: "256MiB",
  ingestMaxLag: "2000000",
  idempotencyTtl: "24h",
  kafkaTopicPrefix: "runnel-",
  installation: "runnel",
  anomalyInterval: "10s",
  retentionInterval: "1m",
  archiveInterval: "1m",
  importChunkRows: "1000000",
  // A 10 MiB body (the body limit) arrives within a minute at 1.4 Mbit/s; slower clients send smaller batches.
  requestTimeout: "60s",
  // Headers are a few KiB: ten seconds is generous on any link and short for a slowloris.
  headersTimeout: "10s",
  // Above the 60 s idle timeout of common proxies and load balancers, so they close first (Fastify's default).
  keepAliveTimeout: "72s",
  // A person signs up once; a household or office behind one address, a few times an hour.
  signupRate: "10/1h",
  // Keys are made by hand or by a deploy script: twenty an hour is far above either.
  apiKeyRate: "20/1h",
  queryMaxRows: "100000",
  queryMaxBytes: "32MiB",
  queryTimeout: "30s",
  queryMemory: "512MiB",
  queryUserQueue: "32",
} as const;

/**
 * Queries running at once by default: one per core, at least two (so one user's runaway query
 * never holds every slot), and at most the libuv thread pool less two. Each running DuckDB call
 * occupies a thread of that pool, which the log's fsyncs and every file read share
 * (UV_THREADPOOL_SIZE: 16 as bin/runnel.ts sizes it, src/core/thread-pool.ts; libuv's default 4).
 */
export function defaultQueryConcurrency(env: RawSettings = process.env): number {
  const pool = Number(env.UV_THREADPOOL_SIZE) || 4;
  return Math.max(2, Math.min(availableParallelism(), pool - 2));
}

export class ConfigError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`invalid configuration: ${field} ${message}`);
    this.name = "ConfigError";
  }
}

/** Raw settings as they come from flags (which win) and the environment. */
export type RawSettings = Readonly<Record<string, string | undefined>>;

/** Environment variable for each setting. */
export const ENV_NAMES = {
  dataDir: "RUNNEL_DATA_DIR",
  host: "RUNNEL_HOST",
  port: "RUNNEL_PORT",
  adminPassword: "RUNNEL_ADMIN_PASSWORD",
  databaseUrl: "RUNNEL_DATABASE_URL",
  kafkaBrokers: "RUNNEL_KAFKA_BROKERS",
  kafkaTopicPrefix: "RUNNEL_KAFKA_TOPIC_PREFIX",
  checkpointStore: "RUNNEL_CHECKPOINT_STORE",
  installation: "RUNNEL_INSTALLATION",
  instanceId: "RUNNEL_INSTANCE_ID",
  advertisedUrl: "RUNNEL_ADVERTISED_URL",
  clusterSlots: "RUNNEL_CLUSTER_SLOTS",
  clusterSessionTimeout: "RUNNEL_CLUSTER_SESSION_TIMEOUT",
  corsOrigins: "RUNNEL_CORS_ORIGINS",
  maxBodyBytes: "RUNNEL_MAX_BODY_BYTES",
  maxEventBytes: "RUNNEL_MAX_EVENT_BYTES",
  maxColumnsPerStream: "RUNNEL_MAX_COLUMNS_PER_STREAM",
  maxJsonDepth: "RUNNEL_MAX_JSON_DEPTH",
  maxJsonFields: "RUNNEL_MAX_JSON_FIELDS",
  tokenTtl: "RUNNEL_TOKEN_TTL",
  tokenSecret: "RUNNEL_TOKEN_SECRET",
  defaultPartitions: "RUNNEL_DEFAULT_PARTITIONS",
  segmentBytes: "RUNNEL_SEGMENT_BYTES",
  logLevel: "RUNNEL_LOG_LEVEL",
  ingestMaxPending: "RUNNEL_INGEST_MAX_PENDING",
  ingestMaxLag: "RUNNEL_INGEST_MAX_LAG",
  idempotencyTtl: "RUNNEL_IDEMPOTENCY_TTL",
  sourcesFile: "RUNNEL_SOURCES_FILE",
  anomalyInterval: "RUNNEL_ANOMALY_INTERVAL",
  retentionInterval: "RUNNEL_RETENTION_INTERVAL",
  archiveInterval: "RUNNEL_ARCHIVE_INTERVAL",
  archiveUrl: "RUNNEL_ARCHIVE_URL",
  importChunkRows: "RUNNEL_IMPORT_CHUNK_ROWS",
  requestTimeout: "RUNNEL_REQUEST_TIMEOUT",
  headersTimeout: "RUNNEL_HEADERS_TIMEOUT",
  keepAliveTimeout: "RUNNEL_KEEP_ALIVE_TIMEOUT",
  signupRate: "RUNNEL_SIGNUP_RATE",
  apiKeyRate: "RUNNEL_API_KEY_RATE",
  queryMaxRows: "RUNNEL_QUERY_MAX_ROWS",
  queryMaxBytes: "RUNNEL_QUERY_MAX_BYTES",
  queryTimeout: "RUNNEL_QUERY_TIMEOUT",
  queryMemory: "RUNNEL_QUERY_MEMORY",
  queryConcurrency: "RUNNEL_QUERY_CONCURRENCY",
  queryUserConcurrency: "RUNNEL_QUERY_USER_CONCURRENCY",
  queryUserQueue: "RUNNEL_QUERY_USER_QUEUE",
  analyticsThreads: "RUNNEL_ANALYTICS_THREADS",
} as const;

export type SettingName = keyof typeof ENV_NAMES;

/** The `runnel start` flag of each setting that has one; the others are set in the environment only. */
export const FLAG_NAMES = {
  dataDir: "data-dir",
  port: "port",
  host: "host",
  databaseUrl: "database-url",
  kafkaBrokers: "kafka-brokers",
  logLevel: "log-level",
  maxBodyBytes: "max-body-bytes",
  maxEventBytes: "max-event-bytes",
  maxJsonDepth: "max-json-depth",
  maxJsonFields: "max-json-fields",
  tokenTtl: "token-ttl",
  defaultPartitions: "default-partitions",
  sourcesFile: "sources",
} as const satisfies Partial<Record<SettingName, string>>;

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "silent"] as const;

/** Builds a frozen Config from flags (`--data-dir` → dataDir) and the environment. */
export function loadConfig(flags: Partial<Record<SettingName, string>>, env: RawSettings = process.env): Config {
  const get = (name: SettingName): string | undefined => {
    const v = flags[name] ?? env[ENV_NAMES[name]];
    return v === undefined || v === "" ? undefined : v;
  };
  const field = (name: SettingName) => {
    const flag = (FLAG_NAMES as Partial<Record<SettingName, string>>)[name];
    return flag === undefined ? ENV_NAMES[name] : `${ENV_NAMES[name]} (--${flag})`;
  };

  const integer = (name: SettingName, fallback: string, min: number, max: number): number => {
    const text = get(name) ?? fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new ConfigError(field(name), `must be an integer from ${min} to ${max}, got "${text}"`);
    }
    return n;
  };
  const size = (name: SettingName, fallback: string): number => {
    const text = get(name) ?? fallback;
    const n = parseSize(text);
    if (n === undefined || n <= 0)
      throw new ConfigError(field(name), `must be a size such as 10MiB or 4096, got "${text}"`);
    return n;
  };
  const duration = (name: SettingName, fallback: string): number => {
    const text = get(name) ?? fallback;
    const n = parseDuration(text);
    if (n === undefined || n <= 0)
      throw new ConfigError(field(name), `must be a duration such as 30s or 1h, got "${text}"`);
    return n;
  };

  /** A duration within [min, max] ms, both named in human units in the message. */
  const boundedDuration = (name: SettingName, fallback: string, min: [number, string], max: [number, string]) => {
    const n = duration(name, fallback);
    if (n < min[0] || n > max[0]) {
      throw new ConfigError(field(name), `must be from ${min[1]} to ${max[1]}, got "${get(name) ?? fallback}"`);
    }
    return n;
  };

  /** `count/duration`, e.g. `10/1h`. */
  const rate = (name: SettingName, fallback: string): RateLimit => {
    const text = get(name) ?? fallback;
    const m = /^(\d{1,6})\/(.+)$/.exec(text.trim());
    const count = m === null ? Number.NaN : Number(m[1]);
    const windowMs = m === null ? undefined : parseDuration(m[2]!);
    if (!(count >= 1) || windowMs === undefined || windowMs < 1000) {
      throw new ConfigError(field(name), `must be a count per duration such as 10/1h (at least 1/1s), got "${text}"`);
    }
    return Object.freeze({ count, windowMs });
  };

  /** A size within [min, max] bytes, both named in human units in the message. */
  const boundedSize = (name: SettingName, fallback: string, min: [number, string], max: [number, string]) => {
    const n = size(name, fallback);
    if (n < min[0] || n > max[0]) {
      throw new ConfigError(field(name), `must be from ${min[1]} to ${max[1]}, got "${get(name) ?? fallback}"`);
    }
    return n;
  };

  const queryConcurrency = integer("queryConcurrency", String(defaultQueryConcurrency(env)), 1, 256);
  const queryUserConcurrency = integer(
    "queryUserConcurrency",
    String(Math.max(1, Math.floor(queryConcurrency / 2))),
    1,
    queryConcurrency,
  );

  const databaseUrl = get("databaseUrl");
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError(field("databaseUrl"), `must be a postgres:// URL`);
  }
  // database by default when there is a server to share; PGlite serves one process only.
  const checkpointStore = get("checkpointStore") ?? (databaseUrl === undefined ? "local" : "database");
  if (!(CHECKPOINT_STORES as readonly string[]).includes(checkpointStore)) {
    throw new ConfigError(
      field("checkpointStore"),
      `must be one of ${CHECKPOINT_STORES.join(", ")}, got "${checkpointStore}"`,
    );
  }
  if (checkpointStore === "database" && databaseUrl === undefined) {
    throw new ConfigError(
      field("checkpointStore"),
      `database needs ${ENV_NAMES.databaseUrl}: the embedded control database serves one process (use local)`,
    );
  }
  const brokers = get("kafkaBrokers");
  const kafkaBrokers = brokers?.split(",").map((b) => b.trim());
  if (kafkaBrokers?.some((b) => !/^[^\s:]+:\d+$/.test(b))) {
    throw new ConfigError(field("kafkaBrokers"), `must be host:port[,host:port…], got "${brokers}"`);
  }
  const kafkaTopicPrefix = get("kafkaTopicPrefix") ?? DEFAULTS.kafkaTopicPrefix;
  if (!/^[A-Za-z0-9._-]{0,100}$/.test(kafkaTopicPrefix)) {
    throw new ConfigError(field("kafkaTopicPrefix"), `may hold only letters, digits, ".", "_" and "-"`);
  }
  const defaultPartitions = integer("defaultPartitions", DEFAULTS.defaultPartitions, 1, 1024);
  const cluster = clusterSettings(get, field, integer, boundedDuration, defaultPartitions);
  const corsText = get("corsOrigins");
  const corsOrigins = corsText === undefined ? [] : corsText.split(",").map((o) => o.trim());
  for (const origin of corsOrigins) {
    if (!/^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/.test(origin)) {
      throw new ConfigError(field("corsOrigins"), `must be origins such as https://app.example.com, got "${origin}"`);
    }
  }
  const logLevel = get("logLevel") ?? DEFAULTS.logLevel;
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(field("logLevel"), `must be one of ${LOG_LEVELS.join(", ")}, got "${logLevel}"`);
  }
  const tokenSecret = get("tokenSecret");
  if (tokenSecret !== undefined && tokenSecret.length < 32) {
    throw new ConfigError(field("tokenSecret"), "must be at least 32 characters");
  }
  const adminPassword = get("adminPassword");
  if (adminPassword !== undefined && adminPassword.length < 8) {
    throw new ConfigError(field("adminPassword"), "must be at least 8 characters");
  }

  const dataDir = resolve(get("dataDir") ?? DEFAULTS.dataDir);
  const archiveUrl = get("archiveUrl");
  let archiveLocation: ArchiveLocationConfig = { kind: "local", dir: join(dataDir, "archive") };
  if (archiveUrl !== undefined) {
    const s3 = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(archiveUrl);
    if (s3 !== null) {
      archiveLocation = { kind: "s3", bucket: s3[1]!, prefix: (s3[2] ?? "").replace(/^\/+|\/+$/g, "") };
    } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(archiveUrl) && !archiveUrl.startsWith("file://")) {
      throw new ConfigError(
        field("archiveUrl"),
        `must be a directory or an s3://bucket/prefix URL (bucket names: 3–63 of [a-z0-9.-]), got "${archiveUrl}"`,
      );
    } else {
      archiveLocation = { kind: "local", dir: resolve(archiveUrl.replace(/^file:\/\//, "")) };
    }
  }

  const config: Config = {
    dataDir,
    host: get("host") ?? DEFAULTS.host,
    port: integer("port", DEFAULTS.port, 0, 65535),
    ...(adminPassword !== undefined && { adminPassword }),
    ...(databaseUrl !== undefined && { databaseUrl }),
    ...(kafkaBrokers !== undefined && { kafkaBrokers: Object.freeze(kafkaBrokers) }),
    kafkaTopicPrefix,
    checkpointStore: checkpointStore as CheckpointStoreKind,
    cluster,
    corsOrigins: Object.freeze(corsOrigins),
    limits: Object.freeze({
      maxBodyBytes: size("maxBodyBytes", DEFAULTS.maxBodyBytes),
      maxEventBytes: size("maxEventBytes", DEFAULTS.maxEventBytes),
      // Above 10 000 a stream's registration statements and its table's schema changes grow unwieldy.
      maxColumnsPerStream: integer("maxColumnsPerStream", DEFAULTS.maxColumnsPerStream, 1, 10_000),
      json: Object.freeze({
        maxDepth: integer("maxJsonDepth", DEFAULTS.maxJsonDepth, 1, 1000),
        maxFields: integer("maxJsonFields", DEFAULTS.maxJsonFields, 1, 100_000),
      }),
    }),
    auth: Object.freeze({
      tokenTtlMs: duration("tokenTtl", DEFAULTS.tokenTtl),
      ...(tokenSecret !== undefined && { tokenSecret }),
      signupRate: rate("signupRate", DEFAULTS.signupRate),
      apiKeyRate: rate("apiKeyRate", DEFAULTS.apiKeyRate),
    }),
    http: Object.freeze({
      requestTimeoutMs: boundedDuration("requestTimeout", DEFAULTS.requestTimeout, [1000, "1s"], [3_600_000, "1h"]),
      headersTimeoutMs: boundedDuration("headersTimeout", DEFAULTS.headersTimeout, [1000, "1s"], [3_600_000, "1h"]),
      keepAliveTimeoutMs: boundedDuration(
        "keepAliveTimeout",
        DEFAULTS.keepAliveTimeout,
        [1000, "1s"],
        [3_600_000, "1h"],
      ),
    }),
    log: Object.freeze({
      defaultPartitions,
      segmentBytes: size("segmentBytes", DEFAULTS.segmentBytes),
    }),
    logLevel: logLevel as Config["logLevel"],
    ingest: Object.freeze({
      maxPendingBytes: size("ingestMaxPending", DEFAULTS.ingestMaxPending),
      maxLagRecords: integer("ingestMaxLag", DEFAULTS.ingestMaxLag, 0, Number.MAX_SAFE_INTEGER),
      idempotencyTtlMs: duration("idempotencyTtl", DEFAULTS.idempotencyTtl),
    }),
    ...(get("sourcesFile") !== undefined && { sourcesFile: resolve(get("sourcesFile")!) }),
    monitoring: Object.freeze({
      // Rates are per interval: below 1 s they are noise, above 1 h an alert comes too late to act on.
      anomalyIntervalMs: boundedDuration("anomalyInterval", DEFAULTS.anomalyInterval, [1000, "1s"], [3_600_000, "1h"]),
    }),
    retentionIntervalMs: boundedDuration(
      "retentionInterval",
      DEFAULTS.retentionInterval,
      [1000, "1s"],
      [86_400_000, "24h"],
    ),
    archive: Object.freeze({
      // Below a second the archiver would spend its time listing; above a day the hot tier holds a day too much.
      intervalMs: boundedDuration("archiveInterval", DEFAULTS.archiveInterval, [1000, "1s"], [86_400_000, "24h"]),
      location: Object.freeze(archiveLocation),
      importChunkRows: integer("importChunkRows", DEFAULTS.importChunkRows, 100, 100_000_000),
    }),
    query: Object.freeze({
      maxRows: integer("queryMaxRows", DEFAULTS.queryMaxRows, 1, 10_000_000),
      // Above 256 MiB one answer would cost the process gigabytes on its way out (rows in the
      // analytics thread, their copy in the main thread, the JSON text).
      maxResultBytes: boundedSize(
        "queryMaxBytes",
        DEFAULTS.queryMaxBytes,
        [1024, "1KiB"],
        [256 * 1024 * 1024, "256MiB"],
      ),
      timeoutMs: boundedDuration("queryTimeout", DEFAULTS.queryTimeout, [100, "100ms"], [3_600_000, "1h"]),
      // DuckDB needs a few MiB for any query at all.
      memoryLimitBytes: boundedSize(
        "queryMemory",
        DEFAULTS.queryMemory,
        [16 * 1024 * 1024, "16MiB"],
        [2 ** 40, "1024GiB"],
      ),
      concurrency: queryConcurrency,
      userConcurrency: queryUserConcurrency,
      userQueue: integer("queryUserQueue", DEFAULTS.queryUserQueue, 0, 10_000),
      // One per core, DuckDB's own default. One thread spares ingest the spinning of the loader's
      // commits on DuckDB's executor lock (about 8–14 % of the server's CPU per event on two
      // shared cores) at the cost of admins' large queries (a GROUP BY over 110 M rows 714 →
      // 1,245 ms, bench/archive.ts): docs/ingestion.md.
      storeThreads: integer("analyticsThreads", String(availableParallelism()), 1, 1024),
    }),
  };
  return Object.freeze(config);
}

/** RUNNEL_INSTALLATION, RUNNEL_INSTANCE_ID, RUNNEL_ADVERTISED_URL, RUNNEL_CLUSTER_SLOTS and RUNNEL_CLUSTER_SESSION_TIMEOUT. */
function clusterSettings(
  get: (name: SettingName) => string | undefined,
  field: (name: SettingName) => string,
  integer: (name: SettingName, fallback: string, min: number, max: number) => number,
  boundedDuration: (name: SettingName, fallback: string, min: [number, string], max: [number, string]) => number,
  defaultPartitions: number,
): Config["cluster"] {
  // Both become parts of Kafka group names and ids, which allow [A-Za-z0-9._-] (and 249 characters).
  const installation = get("installation") ?? DEFAULTS.installation;
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(installation)) {
    throw new ConfigError(
      field("installation"),
      `must be 1–100 of letters, digits, ".", "_" and "-", got "${installation}"`,
    );
  }
  const instanceId = get("instanceId") ?? hostname();
  if (!/^[A-Za-z0-9._:-]{1,200}$/.test(instanceId)) {
    throw new ConfigError(
      field("instanceId"),
      `must be 1–200 of letters, digits, ".", "_", ":" and "-", got "${instanceId}"${get("instanceId") === undefined ? " (the hostname)" : ""}`,
    );
  }
  const advertisedUrl = get("advertisedUrl");
  if (advertisedUrl !== undefined && !/^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/.test(advertisedUrl)) {
    throw new ConfigError(field("advertisedUrl"), `must be an http:// or https:// URL, got "${advertisedUrl}"`);
  }
  // One slot per partition of a default stream: every partition can then live on its own instance.
  const slots = integer("clusterSlots", String(defaultPartitions), 1, 1024);
  const sessionTimeoutMs =
    get("clusterSessionTimeout") === undefined
      ? undefined
      : boundedDuration("clusterSessionTimeout", "45s", [1000, "1s"], [3_600_000, "1h"]);
  return Object.freeze({
    installation,
    instanceId,
    ...(advertisedUrl !== undefined && { advertisedUrl: advertisedUrl.replace(/\/+$/, "") }),
    slots,
    ...(sessionTimeoutMs !== undefined && { sessionTimeoutMs }),
  });
}
