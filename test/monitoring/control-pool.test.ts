/**
 * Control-DB pool use as Prometheus sees it: the drivers' poolStats() through the real
 * scrape-time collectors, against a real PostgreSQL server (RUNNEL_TEST_DATABASE_URL or
 * scripts/postgres.sh, in a database of its own) and against PGlite's single connection.
 * Connections are held by transactions the test controls, so no timing is involved.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { SqlDriver } from "../../src/control/driver.js";
import { createPgliteControlStore, createPostgresControlStore } from "../../src/control/index.js";
import { connectPglite } from "../../src/control/pglite.js";
import { connectPostgres } from "../../src/control/postgres.js";
import { systemClock } from "../../src/core/clock.js";
import { LocalEventLog } from "../../src/log/local/index.js";
import { registerCollectors } from "../../src/monitoring/collectors.js";
import { createMetrics } from "../../src/monitoring/metrics.js";
import { hasPoolStats, type PoolStatsSource } from "../../src/monitoring/probes.js";
import { PrometheusProbe } from "../../src/monitoring/prometheus-probe.js";
import { onServer, postgresServerUrl, withDatabase } from "../helpers/postgres.js";

/** The pool series of one scrape, through the real collectors. */
async function scrapePool(pool: PoolStatsSource): Promise<Record<string, number | undefined>> {
  const dataDir = await mkdtemp(join(tmpdir(), "runnel-pool-scrape-"));
  const metrics = createMetrics();
  const remove = registerCollectors(metrics, {
    clock: systemClock,
    log: new LocalEventLog({ dir: join(dataDir, "log") }),
    dataDir,
    controlPool: pool,
    probe: new PrometheusProbe(metrics, () => Date.now()),
  });
  try {
    const text = await metrics.registry.metrics();
    const value = (series: string) => {
      const m = new RegExp(`^${series.replace(/[{}]/g, "\\$&")} (\\S+)$`, "m").exec(text);
      return m === null ? undefined : Number(m[1]);
    };
    return {
      idle: value('runnel_control_db_pool_connections{state="idle"}'),
      busy: value('runnel_control_db_pool_connections{state="busy"}'),
      waiting: value("runnel_control_db_pool_waiting_requests"),
      max: value("runnel_control_db_pool_max_connections"),
    };
  } finally {
    remove();
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** Starts a transaction that holds its connection until `release` is called. */
function holdConnection(driver: SqlDriver): { held: Promise<void>; release: () => void; done: Promise<unknown> } {
  let release!: () => void;
  let signalHeld!: () => void;
  const held = new Promise<void>((r) => {
    signalHeld = r;
  });
  const released = new Promise<void>((r) => {
    release = r;
  });
  const done = driver.transaction(async () => {
    signalHeld();
    await released;
  });
  return { held, release, done };
}

async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.fail(`never happened: ${what}`);
}

describe("control-DB pool metrics on a real PostgreSQL server", () => {
  const server = postgresServerUrl();
  const database = `runnel_pool_${randomBytes(6).toString("hex")}`;
  const url = withDatabase(server, database);

  before(async () => {
    await onServer(server, `CREATE DATABASE ${database}`);
  });

  after(async () => {
    await onServer(server, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  });

  it("reports connections opened, busy and idle, requests waiting, and the limit", async () => {
    const driver = await connectPostgres(url, { max: 2 });
    try {
      await driver.query("SELECT 1");
      assert.deepEqual(await scrapePool(() => driver.poolStats()), { idle: 1, busy: 0, waiting: 0, max: 2 });

      const first = holdConnection(driver);
      const second = holdConnection(driver);
      await Promise.all([first.held, second.held]);
      // Both connections are taken: the next request queues for one.
      const queued = driver.query("SELECT 1");
      await until(() => driver.poolStats().waiting === 1, "a request waits for a connection");
      assert.deepEqual(await scrapePool(() => driver.poolStats()), { idle: 0, busy: 2, waiting: 1, max: 2 });

      first.release();
      second.release();
      await Promise.all([first.done, second.done, queued]);
      assert.deepEqual(await scrapePool(() => driver.poolStats()), { idle: 2, busy: 0, waiting: 0, max: 2 });
    } finally {
      await driver.close();
    }
  });

  it("the control store passes its pool on while open, and nothing once closed", async () => {
    const store = createPostgresControlStore(url, { max: 3 });
    assert.ok(hasPoolStats(store), "the store offers poolStats() to the composition root");
    assert.equal(store.poolStats(), undefined);
    await store.open();
    try {
      const scraped = await scrapePool(() => store.poolStats());
      assert.equal(scraped.max, 3);
      assert.equal(scraped.busy, 0);
      assert.ok((scraped.idle ?? 0) >= 1, "migrations left a connection idle in the pool");
    } finally {
      await store.close();
    }
    assert.equal(store.poolStats(), undefined);
  });
});

describe("control-DB pool metrics on PGlite (one connection)", () => {
  it("is one connection, busy while a transaction runs, queueing the rest", async () => {
    const driver = await connectPglite();
    try {
      assert.deepEqual(await scrapePool(() => driver.poolStats()), { idle: 1, busy: 0, waiting: 0, max: 1 });
      const tx = holdConnection(driver);
      await tx.held;
      const queued = driver.query("SELECT 1");
      assert.deepEqual(await scrapePool(() => driver.poolStats()), { idle: 0, busy: 1, waiting: 1, max: 1 });
      tx.release();
      await Promise.all([tx.done, queued]);
      assert.deepEqual(await scrapePool(() => driver.poolStats()), { idle: 1, busy: 0, waiting: 0, max: 1 });
    } finally {
      await driver.close();
    }
  });

  it("the PGlite control store reports its one connection", async () => {
    const store = createPgliteControlStore();
    assert.ok(hasPoolStats(store));
    await store.open();
    try {
      assert.deepEqual(await scrapePool(() => store.poolStats()), { idle: 1, busy: 0, waiting: 0, max: 1 });
    } finally {
      await store.close();
    }
  });
});
