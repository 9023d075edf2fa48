/**
 * The serial queue: one task at a time in queue order, each error to its own caller only, and
 * the keyed form holding nothing for a key once its tasks have settled.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { KeyedSerialQueue, SerialQueue } from "../../src/core/serial-queue.js";

/** A task that records when it starts and ends, and how many tasks ran at once. */
function recorder() {
  const events: string[] = [];
  let running = 0;
  let maxRunning = 0;
  const task =
    (name: string, ms: number, fail = false) =>
    async (): Promise<string> => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      events.push(`start ${name}`);
      await sleep(ms);
      events.push(`end ${name}`);
      running--;
      if (fail) throw new Error(`${name} failed`);
      return name;
    };
  return { events, task, maxRunning: () => maxRunning };
}

describe("SerialQueue", () => {
  it("runs tasks one at a time in the order they were queued, whatever their durations", async () => {
    const queue = new SerialQueue();
    const r = recorder();
    const results = await Promise.all([
      queue.run(r.task("a", 30)),
      queue.run(r.task("b", 1)),
      queue.run(r.task("c", 15)),
    ]);
    assert.deepEqual(results, ["a", "b", "c"]);
    assert.deepEqual(r.events, ["start a", "end a", "start b", "end b", "start c", "end c"]);
    assert.equal(r.maxRunning(), 1);
  });

  it("gives a task's error to its caller only and runs the tasks queued after it", async () => {
    const queue = new SerialQueue();
    const r = recorder();
    const a = queue.run(r.task("a", 5));
    const b = queue.run(r.task("b", 5, true));
    const c = queue.run(async () => {
      throw new Error("thrown at once");
    });
    const d = queue.run(r.task("d", 5));
    assert.equal(await a, "a");
    await assert.rejects(b, /b failed/);
    await assert.rejects(c, /thrown at once/);
    assert.equal(await d, "d");
    assert.deepEqual(r.events, ["start a", "end a", "start b", "end b", "start d", "end d"]);
  });

  it("counts the tasks waiting to start, so a long task can yield to them", async () => {
    const queue = new SerialQueue();
    let seenWaiting = -1;
    const first = queue.run(async () => {
      await sleep(5);
      seenWaiting = queue.waiting;
    });
    const second = queue.run(async () => queue.waiting);
    assert.equal(queue.size, 2);
    await first;
    assert.equal(seenWaiting, 1);
    assert.equal(await second, 0);
    await queue.idle();
    assert.equal(queue.size, 0);
  });

  it("idle() waits for every task queued so far and does not reject when one failed", async () => {
    const queue = new SerialQueue();
    let done = false;
    void queue
      .run(async () => sleep(10))
      .then(() => {
        done = true;
      });
    queue.run(async () => Promise.reject(new Error("ignored"))).catch(() => undefined);
    await queue.idle();
    assert.equal(done, true);
    assert.equal(queue.size, 0);
  });
});

describe("KeyedSerialQueue", () => {
  it("serialises the tasks of one key and runs different keys concurrently", async () => {
    const queue = new KeyedSerialQueue<string>();
    const r = recorder();
    await Promise.all([
      queue.run("x", r.task("x1", 20)),
      queue.run("y", r.task("y1", 5)),
      queue.run("x", r.task("x2", 1)),
    ]);
    assert.ok(r.events.indexOf("end x1") < r.events.indexOf("start x2"));
    assert.ok(r.events.indexOf("start y1") < r.events.indexOf("end x1"), "y does not wait for x");
    assert.equal(r.maxRunning(), 2);
  });

  it("drops a key's queue once its tasks have settled, failed ones included", async () => {
    const queue = new KeyedSerialQueue<number>();
    const runs: Promise<unknown>[] = [];
    for (let i = 0; i < 1000; i++) {
      runs.push(queue.run(i % 10, async () => i));
      runs.push(queue.run(i, async () => Promise.reject(new Error(`key ${i}`))).catch(() => undefined));
    }
    assert.equal(queue.keys, 1000);
    await Promise.all(runs);
    assert.equal(queue.keys, 0);
  });

  it("keeps a key whose queue gets a new task while the last one settles", async () => {
    const queue = new KeyedSerialQueue<string>();
    const order: number[] = [];
    await queue.run("k", async () => {
      order.push(1);
      void queue.run("k", async () => {
        await sleep(5);
        order.push(2);
      });
    });
    assert.equal(queue.keys, 1);
    const third = queue.run("k", async () => {
      order.push(3);
    });
    await third;
    assert.deepEqual(order, [1, 2, 3]);
    await queue.idleAll();
    assert.equal(queue.keys, 0);
  });

  it("idle(key) waits for that key's tasks only", async () => {
    const queue = new KeyedSerialQueue<string>();
    let aDone = false;
    let bDone = false;
    void queue.run("a", async () => {
      await sleep(5);
      aDone = true;
    });
    void queue.run("b", async () => {
      await sleep(50);
      bDone = true;
    });
    await queue.idle("a");
    assert.equal(aDone, true);
    assert.equal(bDone, false);
    await queue.idle("unknown");
    await queue.idleAll();
    assert.equal(bDone, true);
  });
});
