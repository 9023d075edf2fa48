import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { QueryScheduler } from "../../src/analytics/query-scheduler.js";

/** A task the test finishes by hand, recording when it started. */
function controlled(log: string[], name: string) {
  let finish!: () => void;
  let fail!: (e: Error) => void;
  const done = new Promise<string>((resolve, reject) => {
    finish = () => resolve(name);
    fail = reject;
  });
  return {
    task: () => {
      log.push(name);
      return done;
    },
    finish: () => finish(),
    fail: (e: Error) => fail(e),
  };
}

/** Lets settled tasks' continuations (slot release, dispatch) run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("query scheduler", () => {
  test("one principal's queries wait behind its own bound while another principal's start at once", async () => {
    const s = new QueryScheduler({ maxRunning: 2, maxRunningPerPrincipal: 1, maxQueuedPerPrincipal: 8 });
    const started: string[] = [];
    const runaway = [0, 1, 2, 3].map((i) => controlled(started, `a${i}`));
    const pending = runaway.map((r) => s.run("alice", r.task));
    const b = controlled(started, "b");
    const answer = s.run("bob", b.task);
    assert.deepEqual(started, ["a0", "b"]);
    assert.deepEqual(s.stats(), { running: 2, queued: 3 });
    b.finish();
    assert.equal(await answer, "b");
    for (const r of runaway) {
      r.finish();
      await settle();
    }
    assert.deepEqual(await Promise.all(pending), ["a0", "a1", "a2", "a3"]);
    assert.deepEqual(s.stats(), { running: 0, queued: 0 });
  });

  test("a free slot goes to waiting principals in turn, not to whoever queued most", async () => {
    const s = new QueryScheduler({ maxRunning: 1, maxRunningPerPrincipal: 1, maxQueuedPerPrincipal: 8 });
    const started: string[] = [];
    const tasks = new Map<string, ReturnType<typeof controlled>>();
    const submit = (principal: string, name: string) => {
      const c = controlled(started, name);
      tasks.set(name, c);
      return s.run(principal, c.task);
    };
    const all = [
      submit("alice", "a0"),
      submit("alice", "a1"),
      submit("alice", "a2"),
      submit("bob", "b0"),
      submit("carol", "c0"),
      submit("alice", "a3"),
      submit("bob", "b1"),
    ];
    // Finish whatever runs, one at a time, until everything ran.
    while (started.length < all.length || s.stats().running > 0) {
      tasks.get(started.at(-1)!)!.finish();
      await settle();
    }
    await Promise.all(all);
    assert.deepEqual(started, ["a0", "a1", "b0", "c0", "a2", "b1", "a3"]);
  });

  test("a full queue is refused with overloaded and Retry-After, and costs only its principal", async () => {
    const s = new QueryScheduler({
      maxRunning: 2,
      maxRunningPerPrincipal: 1,
      maxQueuedPerPrincipal: 2,
      retryAfterSeconds: 3,
    });
    const started: string[] = [];
    const held = [0, 1, 2].map((i) => controlled(started, `a${i}`));
    const pending = held.map((h) => s.run("alice", h.task));
    await assert.rejects(
      s.run("alice", async () => "never"),
      (e: unknown) => {
        assert.ok(e instanceof Error);
        assert.equal((e as { code?: string }).code, "overloaded");
        assert.equal((e as { status?: number }).status, 429);
        assert.equal((e as { retryAfter?: number }).retryAfter, 3);
        return true;
      },
    );
    assert.equal(await s.run("bob", async () => "bob ran"), "bob ran");
    for (const h of held) {
      h.finish();
      await settle();
    }
    await Promise.all(pending);
  });

  test("a query whose client went away leaves the queue; the rest still run", async () => {
    const s = new QueryScheduler({ maxRunning: 1, maxRunningPerPrincipal: 1, maxQueuedPerPrincipal: 8 });
    const started: string[] = [];
    const first = controlled(started, "first");
    const running = s.run("alice", first.task);
    const gone = new AbortController();
    const abandoned = s.run("alice", async () => started.push("abandoned"), gone.signal);
    const later = s.run("alice", async () => started.push("later"));
    assert.deepEqual(s.stats(), { running: 1, queued: 2 });
    gone.abort(new Error("client closed"));
    await assert.rejects(abandoned, /client closed/);
    assert.deepEqual(s.stats(), { running: 1, queued: 1 });
    first.finish();
    await running;
    await later;
    assert.deepEqual(started, ["first", "later"]);
  });

  test("a failed query frees its slot", async () => {
    const s = new QueryScheduler({ maxRunning: 1, maxRunningPerPrincipal: 1, maxQueuedPerPrincipal: 8 });
    const started: string[] = [];
    const failing = controlled(started, "failing");
    const first = s.run("alice", failing.task);
    const next = s.run("bob", async () => "bob ran");
    failing.fail(new Error("boom"));
    await assert.rejects(first, /boom/);
    assert.equal(await next, "bob ran");
    assert.deepEqual(s.stats(), { running: 0, queued: 0 });
  });

  test("refuses bounds that are not whole numbers of at least 1", () => {
    assert.throws(
      () => new QueryScheduler({ maxRunning: 0, maxRunningPerPrincipal: 1, maxQueuedPerPrincipal: 1 }),
      /maxRunning/,
    );
    assert.throws(
      () => new QueryScheduler({ maxRunning: 2, maxRunningPerPrincipal: 1.5, maxQueuedPerPrincipal: 1 }),
      /maxRunningPerPrincipal/,
    );
  });
});
