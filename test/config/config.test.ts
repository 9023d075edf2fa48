import assert from "node:assert/strict";
import { availableParallelism, hostname } from "node:os";
import { test } from "node:test";
import { ConfigError, loadConfig } from "../../src/config/config.js";
import { parseDuration, parseSize } from "../../src/config/units.js";

test("defaults are human units, resolved and frozen", () => {
  const config = loadConfig({}, {});
  assert.equal(config.port, 8080);
  assert.equal(config.host, "127.0.0.1");
  assert.equal(config.limits.maxBodyBytes, 10 * 1024 * 1024);
  assert.equal(config.limits.maxEventBytes, 1024 * 1024);
  assert.equal(config.limits.maxColumnsPerStream, 1000);
  assert.equal(config.auth.tokenTtlMs, 3_600_000);
  assert.equal(config.log.defaultPartitions, 4);
  assert.deepEqual(config.limits.json, { maxDepth: 64, maxFields: 1000 });
  assert.ok(config.dataDir.endsWith("/data"));
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.limits));
});

test("flags win over the environment", () => {
  const config = loadConfig({ port: "9000" }, { RUNNEL_PORT: "9100", RUNNEL_HOST: "0.0.0.0" });
  assert.equal(config.port, 9000);
  assert.equal(config.host, "0.0.0.0");
});

test("bad values are refused naming the setting", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ RUNNEL_PORT: "eighty" }, /RUNNEL_PORT \(--port\) must be an integer/],
    [{ RUNNEL_PORT: "70000" }, /RUNNEL_PORT/],
    [{ RUNNEL_MAX_BODY_BYTES: "lots" }, /RUNNEL_MAX_BODY_BYTES \(--max-body-bytes\) must be a size/],
    [{ RUNNEL_TOKEN_TTL: "forever" }, /RUNNEL_TOKEN_TTL \(--token-ttl\) must be a duration/],
    [{ RUNNEL_DATABASE_URL: "mysql://x" }, /RUNNEL_DATABASE_URL .* postgres:\/\//],
    [{ RUNNEL_KAFKA_BROKERS: "localhost" }, /RUNNEL_KAFKA_BROKERS .* host:port/],
    [{ RUNNEL_LOG_LEVEL: "loud" }, /RUNNEL_LOG_LEVEL .* one of/],
    // Settings without a flag are named by their environment variable alone.
    [{ RUNNEL_TOKEN_SECRET: "short" }, /: RUNNEL_TOKEN_SECRET must be at least 32/],
    [{ RUNNEL_CORS_ORIGINS: "example.com" }, /: RUNNEL_CORS_ORIGINS must be origins/],
    [{ RUNNEL_ANOMALY_INTERVAL: "5h" }, /: RUNNEL_ANOMALY_INTERVAL must be from 1s to 1h/],
    [{ RUNNEL_ADMIN_PASSWORD: "short" }, /RUNNEL_ADMIN_PASSWORD .* at least 8/],
    [{ RUNNEL_DEFAULT_PARTITIONS: "0" }, /RUNNEL_DEFAULT_PARTITIONS/],
    [{ RUNNEL_MAX_COLUMNS_PER_STREAM: "0" }, /RUNNEL_MAX_COLUMNS_PER_STREAM .* integer from 1 to 10000/],
    [{ RUNNEL_MAX_COLUMNS_PER_STREAM: "many" }, /RUNNEL_MAX_COLUMNS_PER_STREAM/],
    [{ RUNNEL_MAX_JSON_DEPTH: "0" }, /RUNNEL_MAX_JSON_DEPTH \(--max-json-depth\) must be an integer from 1 to 1000/],
    [{ RUNNEL_MAX_JSON_DEPTH: "deep" }, /RUNNEL_MAX_JSON_DEPTH/],
    [{ RUNNEL_MAX_JSON_FIELDS: "1e9" }, /RUNNEL_MAX_JSON_FIELDS \(--max-json-fields\) must be an integer/],
    [{ RUNNEL_CHECKPOINT_STORE: "kafka" }, /: RUNNEL_CHECKPOINT_STORE must be one of local, database, got "kafka"/],
    [{ RUNNEL_CHECKPOINT_STORE: "database" }, /: RUNNEL_CHECKPOINT_STORE database needs RUNNEL_DATABASE_URL/],
  ];
  for (const [env, message] of cases) {
    assert.throws(
      () => loadConfig({}, env),
      (e: unknown) => e instanceof ConfigError && message.test(e.message),
    );
  }
});

test("checkpoints are local files by default, the database's when there is a server", () => {
  assert.equal(loadConfig({}, {}).checkpointStore, "local");
  const url = "postgres://runnel@db/runnel";
  assert.equal(loadConfig({}, { RUNNEL_DATABASE_URL: url }).checkpointStore, "database");
  assert.equal(loadConfig({ databaseUrl: url }, {}).checkpointStore, "database");
  assert.equal(loadConfig({}, { RUNNEL_DATABASE_URL: url, RUNNEL_CHECKPOINT_STORE: "local" }).checkpointStore, "local");
});

test("durations and sizes", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("1.5s"), 1500);
  assert.equal(parseDuration("5m"), 300_000);
  assert.equal(parseDuration("7d"), 604_800_000);
  assert.equal(parseDuration("5 minutes"), undefined);
  assert.equal(parseSize("10MiB"), 10_485_760);
  assert.equal(parseSize("512KB"), 512_000);
  assert.equal(parseSize("4096"), 4096);
  assert.equal(parseSize("-1"), undefined);
});

test("query limits: defaults, bounds named in the refusal, and a user's share never above the whole", () => {
  const defaults = loadConfig({}, { UV_THREADPOOL_SIZE: "4" });
  assert.equal(defaults.query.maxRows, 100_000);
  assert.equal(defaults.query.maxResultBytes, 32 * 1024 * 1024);
  assert.equal(defaults.query.timeoutMs, 30_000);
  assert.equal(defaults.query.memoryLimitBytes, 512 * 1024 * 1024);
  // The default libuv pool (4 threads) leaves two for running queries, whatever the cores.
  assert.equal(defaults.query.concurrency, 2);
  assert.equal(defaults.query.userConcurrency, 1);
  assert.equal(defaults.query.userQueue, 32);
  assert.equal(defaults.query.storeThreads, availableParallelism());
  assert.equal(loadConfig({}, { RUNNEL_ANALYTICS_THREADS: "1" }).query.storeThreads, 1);
  assert.ok(Object.isFrozen(defaults.query));
  assert.equal(loadConfig({}, { RUNNEL_QUERY_CONCURRENCY: "8" }).query.userConcurrency, 4);

  const cases: [Record<string, string>, RegExp][] = [
    [{ RUNNEL_QUERY_MAX_ROWS: "0" }, /RUNNEL_QUERY_MAX_ROWS .* from 1 to 10000000/],
    [{ RUNNEL_QUERY_MAX_BYTES: "1GiB" }, /RUNNEL_QUERY_MAX_BYTES .* from 1KiB to 256MiB, got "1GiB"/],
    [{ RUNNEL_QUERY_MAX_BYTES: "big" }, /RUNNEL_QUERY_MAX_BYTES must be a size/],
    [{ RUNNEL_QUERY_TIMEOUT: "10ms" }, /RUNNEL_QUERY_TIMEOUT .* from 100ms to 1h/],
    [{ RUNNEL_QUERY_MEMORY: "1MiB" }, /RUNNEL_QUERY_MEMORY .* from 16MiB/],
    [{ RUNNEL_QUERY_CONCURRENCY: "0" }, /RUNNEL_QUERY_CONCURRENCY/],
    [
      { RUNNEL_QUERY_CONCURRENCY: "2", RUNNEL_QUERY_USER_CONCURRENCY: "3" },
      /RUNNEL_QUERY_USER_CONCURRENCY .* from 1 to 2/,
    ],
    [{ RUNNEL_QUERY_USER_QUEUE: "-1" }, /RUNNEL_QUERY_USER_QUEUE/],
    [{ RUNNEL_ANALYTICS_THREADS: "0" }, /RUNNEL_ANALYTICS_THREADS must be an integer from 1 to 1024, got "0"/],
    [{ RUNNEL_ANALYTICS_THREADS: "two" }, /RUNNEL_ANALYTICS_THREADS must be an integer/],
  ];
  for (const [env, message] of cases) {
    assert.throws(
      () => loadConfig({}, env),
      (e: unknown) => e instanceof ConfigError && message.test(e.message),
      JSON.stringify(env),
    );
  }
});

test("the archive: every minute into <data-dir>/archive by default, a directory or an s3:// URL", () => {
  const defaults = loadConfig({ dataDir: "/srv/runnel" }, {});
  assert.equal(defaults.archive.intervalMs, 60_000);
  assert.deepEqual(defaults.archive.location, { kind: "local", dir: "/srv/runnel/archive" });
  assert.ok(Object.isFrozen(defaults.archive) && Object.isFrozen(defaults.archive.location));
  const s3 = loadConfig({}, { RUNNEL_ARCHIVE_URL: "s3://runnel-archive/prod/eu/", RUNNEL_ARCHIVE_INTERVAL: "30s" });
  assert.deepEqual(s3.archive.location, { kind: "s3", bucket: "runnel-archive", prefix: "prod/eu" });
  assert.equal(s3.archive.intervalMs, 30_000);
  assert.deepEqual(loadConfig({}, { RUNNEL_ARCHIVE_URL: "s3://bucket" }).archive.location, {
    kind: "s3",
    bucket: "bucket",
    prefix: "",
  });
  assert.deepEqual(loadConfig({}, { RUNNEL_ARCHIVE_URL: "file:///mnt/cold" }).archive.location, {
    kind: "local",
    dir: "/mnt/cold",
  });
  for (const [env, message] of [
    [{ RUNNEL_ARCHIVE_URL: "gs://bucket/x" }, /: RUNNEL_ARCHIVE_URL must be a directory or an s3:\/\/bucket\/prefix/],
    [{ RUNNEL_ARCHIVE_URL: "s3://B/x" }, /: RUNNEL_ARCHIVE_URL must be/],
    [{ RUNNEL_ARCHIVE_INTERVAL: "500ms" }, /: RUNNEL_ARCHIVE_INTERVAL must be from 1s to 24h/],
    [{ RUNNEL_ARCHIVE_INTERVAL: "often" }, /: RUNNEL_ARCHIVE_INTERVAL must be a duration/],
  ] as const) {
    assert.throws(
      () => loadConfig({}, env),
      (e: unknown) => e instanceof ConfigError && message.test(e.message),
    );
  }
});

test("cluster settings: an installation, a stable instance id, slots as many as a stream's partitions", () => {
  const defaults = loadConfig({}, {}).cluster;
  assert.equal(defaults.installation, "runnel");
  assert.equal(defaults.instanceId, hostname());
  assert.equal(defaults.slots, 4);
  assert.equal(defaults.advertisedUrl, undefined);
  assert.equal(defaults.sessionTimeoutMs, undefined);
  assert.ok(Object.isFrozen(defaults));
  assert.equal(loadConfig({ defaultPartitions: "12" }, {}).cluster.slots, 12);
  const set = loadConfig(
    {},
    {
      RUNNEL_INSTALLATION: "shop.prod",
      RUNNEL_INSTANCE_ID: "runnel-0",
      RUNNEL_ADVERTISED_URL: "http://runnel-0.runnel:8080/",
      RUNNEL_CLUSTER_SLOTS: "6",
      RUNNEL_CLUSTER_SESSION_TIMEOUT: "10s",
    },
  ).cluster;
  assert.deepEqual(set, {
    installation: "shop.prod",
    instanceId: "runnel-0",
    advertisedUrl: "http://runnel-0.runnel:8080",
    slots: 6,
    sessionTimeoutMs: 10_000,
  });
});

test("bad cluster settings are refused naming the setting", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ RUNNEL_INSTALLATION: "my shop" }, /RUNNEL_INSTALLATION must be 1–100 of letters/],
    [{ RUNNEL_INSTANCE_ID: "a/b" }, /RUNNEL_INSTANCE_ID must be 1–200 of letters.*got "a\/b"/],
    [{ RUNNEL_ADVERTISED_URL: "runnel-0:8080" }, /RUNNEL_ADVERTISED_URL must be an http:\/\/ or https:\/\/ URL/],
    [{ RUNNEL_CLUSTER_SLOTS: "0" }, /RUNNEL_CLUSTER_SLOTS must be an integer from 1 to 1024, got "0"/],
    [{ RUNNEL_CLUSTER_SESSION_TIMEOUT: "soon" }, /RUNNEL_CLUSTER_SESSION_TIMEOUT must be a duration/],
    [{ RUNNEL_CLUSTER_SESSION_TIMEOUT: "500ms" }, /RUNNEL_CLUSTER_SESSION_TIMEOUT must be from 1s to 1h/],
    // A bad partition count is named as itself, not as the slots it would default.
    [{ RUNNEL_DEFAULT_PARTITIONS: "many" }, /RUNNEL_DEFAULT_PARTITIONS \(--default-partitions\)/],
  ];
  for (const [env, message] of cases) {
    assert.throws(
      () => loadConfig({}, env),
      (e: unknown) => e instanceof ConfigError && message.test(e.message),
      JSON.stringify(env),
    );
  }
});
