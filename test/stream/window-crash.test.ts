/**
 * Exactly-once windows under SIGKILL: a child process runs a tumbling-window pipeline over the
 * real local log, checkpointing into the local-file store, and is killed twice part-way; after a final run, every window result in the output
 * stream equals the result computed offline from the input: none duplicated, none missing.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { LocalEventLog } from "../../src/log/local/index.js";
import { partitionForKey } from "../../src/log/types.js";
import { LocalFileCheckpointStore } from "../../src/runtime/checkpoint/local.js";
import { taskName } from "../../src/runtime/checkpoint/store.js";
import { decodeTaskCheckpoint } from "../../src/runtime/task-checkpoint.js";
import { random } from "./window-harness.js";

const WORKER = new URL("./fixtures/window-crash-worker.ts", import.meta.url).pathname;
const PARTITIONS = 3;
const EVENTS = 15_000;
const SIZE = 10_000;
const T0 = Date.UTC(2024, 0, 1);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Event {
  readonly user_id: string;
  readonly merchant: string;
  readonly t: number;
  readonly amount: number;
}

/** What the windows are grouped by: the partition key, or a field whose groups sit in every partition. */
type Group = "user_id" | "merchant";

function input(): Event[] {
  const rnd = random(42);
  const events: Event[] = [];
  for (let i = 0; i < EVENTS; i++) {
    // Up to 1.5 s out of order, within the pipeline's 2 s bound: no event is late.
    const t = T0 + i * 40 - Math.floor(rnd() * 1_500);
    const user_id = `u${Math.floor(rnd() * 40)}`;
    events.push({ user_id, merchant: `m${Math.floor(rnd() * 7)}`, t, amount: Math.floor(rnd() * 100) });
  }
  // One event per partition far ahead closes every window of the data above.
  for (let i = 0, found = 0; found < PARTITIONS; i++) {
    const user = `flush${i}`;
    if (partitionForKey(user, PARTITIONS) !== found) continue;
    events.push({ user_id: user, merchant: user, t: T0 + EVENTS * 40 + 60_000, amount: 0 });
    found++;
  }
  return events;
}

function offline(events: readonly Event[], group: Group): Map<string, { n: number; total: number; top: number }> {
  const out = new Map<string, { n: number; total: number; top: number }>();
  for (const e of events) {
    if (e.user_id.startsWith("flush")) continue;
    const k = `${e[group]}|${e.t - (e.t % SIZE)}`;
    const cur = out.get(k) ?? { n: 0, total: 0, top: Number.NEGATIVE_INFINITY };
    out.set(k, { n: cur.n + 1, total: cur.total + e.amount, top: Math.max(cur.top, e.amount) });
  }
  return out;
}

function checkpointDir(logDir: string): string {
  return `${logDir}-checkpoints`;
}

/** Runs the worker; kills it with SIGKILL once it has read `killAfter` records (or lets it finish). */
function runWorker(dir: string, group: Group, killAfter: number | undefined): Promise<"killed" | "done"> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", WORKER, dir, checkpointDir(dir), group], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let outcome: "killed" | "done" | undefined;
    let stderr = "";
    let buffered = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout.on("data", (d: Buffer) => {
      buffered += d.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) {
        if (line === "done") outcome = "done";
        const m = /^progress (\d+)$/.exec(line);
        if (m !== null && killAfter !== undefined && Number(m[1]) >= killAfter && outcome === undefined) {
          outcome = "killed";
          child.kill("SIGKILL");
        }
      }
    });
    child.on("exit", () => {
      if (outcome === undefined) reject(new Error(`worker exited unexpectedly: ${stderr}`));
      else resolve(outcome);
    });
  });
}

async function crashRun(t: TestContext, group: Group): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "runnel-window-crash-"));
  try {
    const events = input();
    if (group === "merchant") {
      const partitionsOf = (m: string) =>
        new Set(events.filter((e) => e.merchant === m).map((e) => partitionForKey(e.user_id, PARTITIONS)));
      assert.equal(partitionsOf("m0").size, PARTITIONS, "a merchant's events sit in every partition");
    }
    const log = new LocalEventLog({ dir, segmentBytes: 256 * 1024 });
    await log.open();
    await log.createStream("transactions", { partitions: PARTITIONS });
    await log.createStream("out", { partitions: PARTITIONS });
    await log.createStream("out_late", { partitions: PARTITIONS });
    for (let i = 0; i < events.length; i += 1000) {
      await log.append(
        "transactions",
        events.slice(i, i + 1000).map(({ t, ...value }) => ({
          key: value.user_id,
          timestamp: t,
          value: encoder.encode(JSON.stringify(value)),
        })),
      );
    }
    await log.close();

    const expected = offline(events, group);
    for (const killAfter of [3_000, 5_000]) {
      assert.equal(await runWorker(dir, group, killAfter), "killed");
      // The kill must land mid-run, with results written after the last checkpoint for recovery to skip.
      const probe = new LocalEventLog({ dir });
      await probe.open();
      const written = (await probe.endOffsets("out")).reduce((a, b) => a + b, 0);
      // The job's operator tasks (one per partition of its exchange stream): what the oldest checkpoint covers.
      const store = new LocalFileCheckpointStore(checkpointDir(dir));
      let covered = Number.POSITIVE_INFINITY;
      for (let p = 0; p < PARTITIONS; p++) {
        const stored = await store.read(taskName("out", p));
        const checkpoint = stored && decodeTaskCheckpoint("out", stored.base, stored.deltas).header;
        covered = Math.min(covered, checkpoint?.outputEnds.reduce((a, b) => a + b, 0) ?? 0);
      }
      await probe.close();
      t.diagnostic(
        `killed after ${killAfter} reads: ${written} results written, ${written - covered} after the checkpoint`,
      );
      assert.ok(written > 0 && written < expected.size, `killed mid-run (${written} of ${expected.size})`);
    }
    assert.equal(await runWorker(dir, group, undefined), "done");

    const reader = new LocalEventLog({ dir });
    await reader.open();
    const got = new Map<string, { n: number; total: number; top: number }>();
    const duplicates: string[] = [];
    const ends = await reader.endOffsets("out");
    for (let p = 0; p < PARTITIONS; p++) {
      for (let offset = 0; offset < (ends[p] ?? 0); ) {
        const records = await reader.read("out", p, offset, { maxRecords: 1000 });
        for (const r of records) {
          const v = JSON.parse(decoder.decode(r.value)) as Record<string, unknown>;
          const k = `${v[group]}|${Date.parse(String(v.window_start))}`;
          if (String(v[group]).startsWith("flush")) continue;
          if (got.has(k)) duplicates.push(k);
          got.set(k, { n: v.n as number, total: v.total as number, top: v.top as number });
          // A merchant's results belong to no user.
          assert.equal(r.key, group === "user_id" ? v.user_id : "");
          assert.equal(r.timestamp, Date.parse(String(v.window_end)) - 1);
        }
        offset = (records[records.length - 1]?.offset ?? offset) + 1;
      }
    }
    const late = (await reader.endOffsets("out_late")).reduce((a, b) => a + b, 0);
    await reader.close();
    assert.deepEqual(duplicates, [], "no window result is written twice");
    assert.equal(late, 0, "no event was late");
    const missing = [...expected.keys()].filter((k) => !got.has(k));
    assert.deepEqual(missing, [], "no window result is missing");
    assert.equal(got.size, expected.size);
    for (const [k, v] of expected) assert.deepEqual(got.get(k), v, k);
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(checkpointDir(dir), { recursive: true, force: true });
  }
}

test("windowed results survive SIGKILL exactly once", { timeout: 120_000 }, (t) => crashRun(t, "user_id"));

test(
  "windows grouped by a field whose groups sit in every partition survive SIGKILL exactly once through the exchange",
  { timeout: 120_000 },
  (t) => crashRun(t, "merchant"),
);
