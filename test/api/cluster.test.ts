/**
 * GET /api/v1/cluster of a single process (the local log and PGlite): an installation of one
 * instance owning every partition, saying why it is not a cluster. Cluster mode itself is tested
 * with real processes on Kafka and PostgreSQL in test/cluster/cluster-mode.test.ts.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { partitionsOf } from "../../src/cluster/status.js";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";

describe("GET /api/v1/cluster, one process", () => {
  let t: TestRunnel;
  before(async () => {
    t = await startTestRunnel({
      env: { RUNNEL_INSTALLATION: "shop", RUNNEL_INSTANCE_ID: "solo", RUNNEL_ADVERTISED_URL: "http://solo:8080" },
    });
  });
  after(() => t.close());

  test("lists this instance owning every partition of every stream, and why it is alone", async () => {
    const created = await t.call("POST", "/api/v1/streams", {
      token: t.adminToken,
      body: { name: "clicks", partitions: 3, timestampField: "ts" },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const res = await t.call("GET", "/api/v1/cluster", { token: t.adminToken });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const { instances, ...rest } = res.body as { instances: Record<string, unknown>[] };
    assert.deepEqual(rest, {
      installation: "shop",
      mode: "single",
      reason: "the local log serves one process (cluster mode needs RUNNEL_KAFKA_BROKERS)",
      instanceId: "solo",
      slots: 1,
      sessionTimeoutMs: null,
      lastRebalanceAt: null,
    });
    assert.equal(instances.length, 1);
    const [solo] = instances;
    assert.equal(solo?.id, "solo");
    assert.equal(solo?.url, "http://solo:8080");
    assert.equal(solo?.self, true);
    assert.equal(solo?.live, true);
    assert.deepEqual(solo?.slots, [0]);
    assert.deepEqual((solo?.partitions as Record<string, number[]> | undefined)?.clicks, [0, 1, 2]);
  });

  test("readiness has no cluster component outside cluster mode", async () => {
    const res = await t.call("GET", "/readyz");
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal((res.body.components as Record<string, boolean>).cluster, undefined);
  });
});

test("a stream's partitions are covered by the slots p mod slots", () => {
  const streams = [
    { name: "a", partitions: 8 },
    { name: "b", partitions: 3 },
  ];
  assert.deepEqual(partitionsOf([1, 2], 4, streams), { a: [1, 2, 5, 6], b: [1, 2] });
  const all = [0, 1, 2, 3].flatMap((slot) => partitionsOf([slot], 4, streams).a ?? []);
  assert.deepEqual(
    all.sort((x, y) => x - y),
    [0, 1, 2, 3, 4, 5, 6, 7],
    "the slots together cover each partition once",
  );
});
