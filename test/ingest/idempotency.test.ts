/** The Idempotency-Key journal: answers survive a restart, expire after the TTL, and a body change is refused. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { ManualClock } from "../../src/core/clock.js";
import { RunnelError } from "../../src/core/errors.js";
import { IdempotencyStore } from "../../src/ingest/idempotency.js";
import { tempDataDir } from "../helpers/server-process.js";

const DAY = 24 * 3600 * 1000;

test("answers are remembered across a restart for the TTL, then forgotten", async () => {
  const data = await tempDataDir();
  const clock = new ManualClock(1_000_000);
  const file = join(data.dir, "keys.ndjson");
  try {
    let store = new IdempotencyStore({ file, clock, ttlMs: DAY });
    await store.open();
    let runs = 0;
    const attempt = async () => {
      runs++;
      return { status: 200, body: { accepted: 3 } };
    };
    const first = await store.run("u/s", "k", "h1", attempt);
    assert.deepEqual(first, { status: 200, body: { accepted: 3 }, replayed: false });
    await store.close();

    store = new IdempotencyStore({ file, clock, ttlMs: DAY });
    await store.open();
    clock.advance(DAY - 1);
    const again = await store.run("u/s", "k", "h1", attempt);
    assert.deepEqual(again, { status: 200, body: { accepted: 3 }, replayed: true });
    assert.equal(runs, 1);
    await assert.rejects(store.run("u/s", "k", "h2", attempt), (e: unknown) => (e as RunnelError).code === "conflict");
    // Another scope (user or stream) has its own keys.
    await store.run("v/s", "k", "h2", attempt);
    assert.equal(runs, 2);
    await store.close();

    clock.advance(2);
    store = new IdempotencyStore({ file, clock, ttlMs: DAY });
    await store.open();
    assert.equal(store.size, 1, "the first key expired; the second is younger");
    await store.run("u/s", "k", "h2", attempt);
    assert.equal(runs, 3);
    await store.close();
  } finally {
    await data.remove();
  }
});

test("a failed attempt is not remembered, so a retry can succeed", async () => {
  const data = await tempDataDir();
  const clock = new ManualClock(0);
  try {
    const store = new IdempotencyStore({ file: join(data.dir, "k.ndjson"), clock, ttlMs: DAY });
    await store.open();
    await assert.rejects(
      store.run("u/s", "k", "h", async () => {
        throw new RunnelError("overloaded", "busy", { retryAfter: 1 });
      }),
    );
    const ok = await store.run("u/s", "k", "h", async () => ({ status: 200, body: { accepted: 1 } }));
    assert.equal(ok.replayed, false);
    await store.close();
  } finally {
    await data.remove();
  }
});

test("keys must be printable ASCII without spaces, at most 255 characters", () => {
  IdempotencyStore.checkKey("a-b_c:1/2");
  for (const bad of ["", "a b", "é", "x".repeat(256)]) {
    assert.throws(() => IdempotencyStore.checkKey(bad), /Idempotency-Key/);
  }
});
