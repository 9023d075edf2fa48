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
