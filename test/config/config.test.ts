import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError, loadConfig } from "../../src/config/config.js";
import { parseDuration, parseSize } from "../../src/config/units.js";

test("defaults are human units, resolved and frozen", () => {
  const config = loadConfig({}, {});
  assert.equal(config.port, 8080);
  assert.equal(config.host, "127.0.0.1");
  assert.equal(config.limits.maxBodyBytes, 10 * 1024 * 1024);
  assert.equal(config.limits.maxEventBytes, 1024 * 1024);
  assert.equal(config.auth.tokenTtlMs, 3_600_000);
  assert.equal(config.log.defaultPartitions, 4);
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
  ];
  for (const [env, message] of cases) {
    assert.throws(
      () => loadConfig({}, env),
      (e: unknown) => e instanceof ConfigError && message.test(e.message),
    );
  }
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
