/**
 * Crash safety: a child process appends multi-partition batches and is SIGKILLed mid-stream,
 * repeatedly over one directory. After each kill every acknowledged batch must be readable
 * exactly once, and every batch found must be whole (atomic across partitions).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { RecoveryReport } from "../../src/log/local/index.js";
import { LocalEventLog } from "../../src/log/local/index.js";
import { decodeValue, readAll } from "./conformance.js";

const ROUNDS = 3;
const WRITER = join(import.meta.dirname, "fixtures", "crash-writer.ts");

let dir = "";
after(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

/** Runs the writer until it has acknowledged `minAcks` batches, then SIGKILLs it. */
function runAndKill(round: number, minAcks: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", WRITER, dir, String(round)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const acks: string[] = [];
    let pending = "";
    let stderr = "";
    let killed = false;
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout.on("data", (d: Buffer) => {
      pending += d.toString();
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) if (line.startsWith("ack ")) acks.push(line.slice(4));
      if (!killed && acks.length >= minAcks) {
        killed = true;
        // A little later, so the kill lands in the middle of in-flight groups.
        setTimeout(() => child.kill("SIGKILL"), 3 + round * 7);
      }
    });
    child.on("exit", (_code, signal) => {
      if (signal !== "SIGKILL") reject(new Error(`writer exited without being killed: ${stderr}`));
      else resolve(acks);
    });
  });
}

test("every acknowledged batch survives SIGKILL exactly once, and batches are all-or-nothing", async (t) => {
  dir = await mkdtemp(join(tmpdir(), "runnel-log-crash-"));
  const acknowledged = new Set<string>();
  const reports: RecoveryReport[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const id of await runAndKill(round, 300)) acknowledged.add(id);

    const log = new LocalEventLog({ dir, segmentBytes: 32 * 1024, onRecovery: (r) => reports.push(r) });
    await log.open();
    const batches = new Map<string, { size: number; seen: Set<number> }>();
    for (let p = 0; p < log.partitionCount("crash"); p++) {
      const records = await readAll(log, "crash", p);
      records.forEach((r, i) => {
        assert.equal(r.offset, i);
        const v = decodeValue(r) as { id: string; size: number; i: number };
        const b = batches.get(v.id) ?? { size: v.size, seen: new Set<number>() };
        assert.ok(!b.seen.has(v.i), `record ${v.i} of batch ${v.id} appears twice`);
        b.seen.add(v.i);
        batches.set(v.id, b);
      });
    }
    for (const [id, b] of batches) assert.equal(b.seen.size, b.size, `batch ${id} is partial`);
    for (const id of acknowledged) assert.ok(batches.has(id), `acknowledged batch ${id} is missing`);
    await log.close();
  }
  assert.ok(acknowledged.size >= ROUNDS * 300);
  t.diagnostic(`acknowledged ${acknowledged.size} batches; ${reports.length} partition tails truncated on reopen`);
  for (const r of reports) assert.ok(r.reason === "torn_tail" || r.reason === "uncommitted_batch");
});
