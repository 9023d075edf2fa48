/** The Idempotency-Key journal: answers survive a restart, expire after the TTL, and a body change is refused. */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { ManualClock } from "../../src/core/clock.js";
import { RunnelError } from "../../src/core/errors.js";
import { IDEMPOTENCY_HEADER, IdempotencyStore, idempotencyTag } from "../../src/ingest/idempotency.js";
import type { LogRecord } from "../../src/log/types.js";
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

/** A one-partition log in memory, enough for intents and their settlement. */
function memoryLog() {
  const records: LogRecord[] = [];
  return {
    records,
    hasStream: (s: string) => s === "orders",
    endOffsets: async () => [records.length],
    read: async (_s: string, _p: number, offset: number) => records.slice(offset),
    append(headers?: Record<string, string>) {
      const r = {
        partition: 0,
        offset: records.length,
        key: "k",
        timestamp: 0,
        ingestTime: 0,
        value: new Uint8Array(),
      };
      records.push(headers === undefined ? r : { ...r, headers });
    },
  };
}

test("a crash after the append but before the answer was journaled: the retry is answered from the log", async () => {
  const data = await tempDataDir();
  const clock = new ManualClock(0);
  const file = join(data.dir, "keys.ndjson");
  const log = memoryLog();
  try {
    let store = new IdempotencyStore({ file, clock, ttlMs: DAY, log });
    await store.open();
    log.append(); // someone else's batch
    // The attempt appends its tagged batch, then the process "dies" before the answer is written.
    await assert.rejects(
      store.run(
        "u/orders",
        "k1",
        "h",
        async () => {
          log.append({ [IDEMPOTENCY_HEADER]: idempotencyTag("u/orders", "k1", 3) });
          throw new Error("crash");
        },
        "orders",
      ),
    );
    // And one whose batch never reached the log.
    await assert.rejects(
      store.run(
        "u/orders",
        "k2",
        "h",
        async () => {
          throw new Error("crash before the append");
        },
        "orders",
      ),
    );
    await store.close();

    store = new IdempotencyStore({ file, clock, ttlMs: DAY, log });
    await store.open();
    let runs = 0;
    const attempt = async () => {
      runs++;
      return { status: 200, body: { accepted: 3 } };
    };
    assert.deepEqual(await store.run("u/orders", "k1", "h", attempt, "orders"), {
      status: 200,
      body: { accepted: 3 },
      replayed: true,
    });
    assert.equal(runs, 0, "the appended batch is not appended again");
    assert.equal((await store.run("u/orders", "k2", "h", attempt, "orders")).replayed, false);
    assert.equal(runs, 1, "the batch that never made it is appended on retry");
    await store.close();
  } finally {
    await data.remove();
  }
});

/**
 * An attempt that appends its tagged batch and is still running when the journal is rewritten
 * (its own intent's write or a later write triggers the rewrite), then the process dies: the
 * restarted store must answer its retry from the log, not append the batch again.
 */
async function intentAcrossRewrite(trigger: "its own intent" | "a later write"): Promise<void> {
  const data = await tempDataDir();
  const clock = new ManualClock(0);
  const file = join(data.dir, "keys.ndjson");
  const log = memoryLog();
  const ttlMs = 10;
  let release: (reason: Error) => void = () => undefined;
  try {
    const store = new IdempotencyStore({ file, clock, ttlMs, log, compactAfterLines: 5 });
    await store.open();
    const ok = async () => ({ status: 200, body: { accepted: 1 } });
    // One key answered again and again, each time after the last answer expired: the journal
    // grows while the live keys do not, until a write rewrites it.
    const churn = trigger === "its own intent" ? 6 : 5;
    for (let i = 0; i < churn; i++) {
      await store.run("u/orders", "again", "h", ok);
      clock.advance(ttlMs + 1);
    }
    const appended = new Promise<void>((resolve) => {
      void store
        .run(
          "u/orders",
          "pending",
          "h",
          () => {
            log.append({ [IDEMPOTENCY_HEADER]: idempotencyTag("u/orders", "pending", 3) });
            resolve();
            return new Promise((_, reject) => {
              release = reject;
            });
          },
          "orders",
        )
        .catch(() => undefined);
    });
    await appended;
    if (trigger === "a later write") {
      clock.advance(1);
      await store.run("u/orders", "again", "h", ok);
    }
    const journal = (await readFile(file, "utf8")).trim().split("\n");
    assert.ok(journal.length <= 2, `the journal was rewritten (${journal.length} lines)`);
    await store.close();

    const restarted = new IdempotencyStore({ file, clock, ttlMs, log });
    await restarted.open();
    let runs = 0;
    const retry = await restarted.run(
      "u/orders",
      "pending",
      "h",
      async () => {
        runs++;
        return { status: 200, body: { accepted: 3 } };
      },
      "orders",
    );
    assert.deepEqual(retry, { status: 200, body: { accepted: 3 }, replayed: true });
    assert.equal(runs, 0, "the batch appended before the crash is not appended again");
    await restarted.close();
  } finally {
    release(new Error("process gone"));
    await data.remove();
  }
}

test("a journal rewrite triggered by an intent's own write keeps that intent for settling after a crash", () =>
  intentAcrossRewrite("its own intent"));

test("a journal rewrite keeps an intent whose attempt is still running, for settling after a crash", () =>
  intentAcrossRewrite("a later write"));
