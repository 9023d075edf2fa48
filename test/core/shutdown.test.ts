import assert from "node:assert/strict";
import { test } from "node:test";
import { type Closer, type ShutdownLogger, stopInReverse } from "../../src/core/shutdown.js";

function recordingLogger(): ShutdownLogger & { lines: { level: string; fields: object; message: string }[] } {
  const lines: { level: string; fields: object; message: string }[] = [];
  return {
    lines,
    debug: (fields, message) => lines.push({ level: "debug", fields, message }),
    info: (fields, message) => lines.push({ level: "info", fields, message }),
    warn: (fields, message) => lines.push({ level: "warn", fields, message }),
  };
}

test("components stop last-started first, and the list is emptied", async () => {
  const order: string[] = [];
  const closers: Closer[] = ["log", "loader", "http"].map((name) => ({
    name,
    close: async () => {
      order.push(name);
    },
  }));
  const logger = recordingLogger();
  await stopInReverse(closers, logger, 1_000);
  assert.deepEqual(order, ["http", "loader", "log"]);
  assert.equal(closers.length, 0);
  assert.deepEqual(
    logger.lines.map((l) => l.level),
    ["debug", "debug", "debug"],
  );
});

test("a step slower than a second is reported at info, with its duration", async () => {
  const closers: Closer[] = [
    { name: "log", close: async () => {} },
    { name: "kafka writer", close: () => new Promise<void>((resolve) => setTimeout(resolve, 1_100)) },
  ];
  const logger = recordingLogger();
  await stopInReverse(closers, logger, 5_000);
  assert.deepEqual(
    logger.lines.map((l) => [l.level, (l.fields as { step: string }).step, l.message]),
    [
      ["info", "kafka writer", "stopped slowly"],
      ["debug", "log", "stopped"],
    ],
  );
  assert.ok((logger.lines[0]!.fields as { ms: number }).ms >= 1_000);
});

test("a component that never stops is reported and the rest still stop, within the bound", async () => {
  const order: string[] = [];
  const closers: Closer[] = [
    { name: "log", close: async () => void order.push("log") },
    { name: "kafka reader", close: () => new Promise<void>(() => {}) },
    { name: "http", close: async () => void order.push("http") },
  ];
  const logger = recordingLogger();
  const started = Date.now();
  await stopInReverse(closers, logger, 50);
  assert.ok(Date.now() - started < 2_000, "shutdown waited for the hung component");
  assert.deepEqual(order, ["http", "log"]);
  const warned = logger.lines.filter((l) => l.level === "warn");
  assert.equal(warned.length, 1);
  assert.deepEqual((warned[0]!.fields as { step: string }).step, "kafka reader");
});

test("a component whose stop fails does not keep the others open", async () => {
  const order: string[] = [];
  const closers: Closer[] = [
    { name: "log", close: async () => void order.push("log") },
    { name: "store", close: () => Promise.reject(new Error("disk gone")) },
  ];
  const logger = recordingLogger();
  await stopInReverse(closers, logger, 1_000);
  assert.deepEqual(order, ["log"]);
  assert.equal(logger.lines.find((l) => l.level === "warn")?.message, "failed to stop cleanly");
});

test("a step with a latest start begins by then, beside a slow step ahead of it, and is not stopped twice", async () => {
  const events: string[] = [];
  let releaseSlow: () => void = () => {};
  let leaves = 0;
  const closers: Closer[] = [
    { name: "log", close: async () => void events.push("log") },
    {
      name: "cluster membership",
      latestStartMs: 30,
      close: async () => {
        leaves++;
        events.push("left");
      },
    },
    {
      name: "pipelines",
      close: () =>
        new Promise<void>((resolve) => {
          releaseSlow = () => {
            events.push("pipelines stopped");
            resolve();
          };
        }),
    },
  ];
  const logger = recordingLogger();
  const stopping = stopInReverse(closers, logger, 5_000);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.deepEqual(events, ["left"], "the leave did not wait for the slow step past its latest start");
  releaseSlow();
  await stopping;
  assert.deepEqual(events, ["left", "pipelines stopped", "log"]);
  assert.equal(leaves, 1);
  const early = logger.lines.find((l) => l.level === "warn");
  assert.deepEqual(early?.fields, { step: "cluster membership", ms: 30 });
});

test("a step with a latest start reached in time stops in its turn, with no warning", async () => {
  const order: string[] = [];
  const closers: Closer[] = ["log", "cluster membership", "http"].map((name) => ({
    name,
    latestStartMs: name === "cluster membership" ? 1_000 : undefined,
    close: async () => void order.push(name),
  }));
  const logger = recordingLogger();
  await stopInReverse(closers, logger, 5_000);
  assert.deepEqual(order, ["http", "cluster membership", "log"]);
  assert.equal(logger.lines.filter((l) => l.level === "warn").length, 0);
});
