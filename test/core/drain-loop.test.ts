/**
 * The consumers' drain loop: wakes during a drain are never lost, whatever the moment they
 * arrive (the last-look race a `drain().finally(...)` loop has), failures retry after a delay,
 * stop waits for the round in flight.
 */
import assert from "node:assert/strict";
import { describe, it, mock } from "node:test";
import { DrainLoop } from "../../src/core/drain-loop.js";

/** Resolves after `n` microtask hops. */
async function hops(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await Promise.resolve();
}

describe("DrainLoop", () => {
  it("drains a wake that arrives at any moment while a drain is ending", async () => {
    for (let depth = 0; depth < 12; depth++) {
      let rounds = 0;
      let work = 1;
      const loop = new DrainLoop({
        round: async () => {
          rounds++;
          if (work > 0) work--;
          if (rounds === 1) {
            // New work arrives `depth` microtask hops after the round that found the last of it.
            void hops(depth).then(() => {
              work++;
              loop.wake();
            });
          }
          return false;
        },
        onError: (e) => assert.fail(String(e)),
      });
      loop.start();
      loop.wake();
      await hops(40);
      await loop.idle();
      assert.equal(work, 0, `depth ${depth}: the work that arrived was drained (${rounds} rounds)`);
    }
  });

  it("coalesces wakes during a round into one more round, and runs while rounds report more", async () => {
    let rounds = 0;
    let backlog = 3;
    const loop = new DrainLoop({
      round: async () => {
        rounds++;
        if (backlog > 0) {
          // Appends while the round runs.
          loop.wake();
          loop.wake();
        }
        await hops(1);
        backlog = Math.max(0, backlog - 1);
        return backlog > 0;
      },
      onError: (e) => assert.fail(String(e)),
    });
    loop.start();
    loop.wake();
    await loop.idle();
    // Three rounds for the backlog; each woke the loop, so one more finds nothing.
    assert.equal(rounds, 4);
  });

  it("remembers wakes before start, and after a failure retries after the delay", async () => {
    const errors: unknown[] = [];
    let rounds = 0;
    const loop = new DrainLoop({
      round: async () => {
        rounds++;
        if (rounds === 1) throw new Error("disk on fire");
        return false;
      },
      onError: (e) => errors.push(e),
      retryDelayMs: 30,
    });
    loop.wake();
    await hops(5);
    assert.equal(rounds, 0, "not started");
    const started = performance.now();
    loop.start();
    await loop.idle();
    assert.equal(rounds, 1);
    assert.match(String(errors[0]), /disk on fire/);
    while (rounds < 2) await new Promise((r) => setTimeout(r, 5));
    assert.ok(performance.now() - started >= 25, "retried after the delay, not at once");
    await loop.stop();
  });

  it("stop waits for the round in flight and then runs no more", async () => {
    let rounds = 0;
    let release: () => void = () => {};
    const loop = new DrainLoop({
      round: async () => {
        rounds++;
        await new Promise<void>((r) => {
          release = r;
        });
        return true;
      },
      onError: (e) => assert.fail(String(e)),
    });
    loop.start();
    loop.wake();
    await hops(2);
    let stopped = false;
    const stopping = loop.stop().then(() => {
      stopped = true;
    });
    await hops(5);
    assert.equal(stopped, false, "the round in flight is waited for");
    release();
    await stopping;
    loop.wake();
    await hops(5);
    assert.equal(rounds, 1);
  });

  it("backs off by doubling while rounds keep failing, says it is failing, and clears it on success", async () => {
    const delays: number[] = [];
    // Retries run at once, each delay recorded: the loop's choice of delay is what is tested.
    const timers = mock.method(globalThis, "setTimeout", (retry: () => void, ms: number) => {
      delays.push(ms);
      queueMicrotask(retry);
      return { unref: () => {} };
    });
    try {
      let failuresLeft = 7;
      const seen: number[] = [];
      const loop = new DrainLoop({
        round: async () => {
          if (failuresLeft === 0) return false;
          failuresLeft--;
          throw new Error("store away");
        },
        onError: () => seen.push(loop.failing?.attempts ?? 0),
        retryDelayMs: 100,
        now: () => 5,
      });
      loop.start();
      loop.wake();
      while (failuresLeft > 0 || loop.failing !== undefined) await hops(5);
      assert.deepEqual(delays, [100, 200, 400, 800, 1600, 3200, 3200]);
      assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7], "failing counts the attempts in a row");
      await loop.stop();
    } finally {
      timers.mock.restore();
    }
  });
});
