/**
 * A full disk refuses the append with storage_full, loses nothing acknowledged, leaves no partial
 * record visible, and the log takes appends again once space returns (issue 3). Two ways to fill
 * the disk: a small tmpfs (needs root and mount; skipped otherwise) and a file-size limit in a
 * child process (works anywhere Linux has prlimit).
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { isRunnelError } from "../../src/core/errors.js";
import type { LocalEventLogStats, RecoveryReport } from "../../src/log/local/index.js";
import { LocalEventLog } from "../../src/log/local/index.js";
import type { AppendRecord } from "../../src/log/types.js";
import { decodeValue, readAll } from "./conformance.js";
import { scrapeLogStats } from "./scrape.js";

const WRITER = join(import.meta.dirname, "fixtures", "disk-full-writer.ts");
const encoder = new TextEncoder();

function batch(n: number): AppendRecord[] {
  return Array.from({ length: 20 }, (_, i) => ({
    key: `user-${i}`,
    timestamp: n,
    value: encoder.encode(JSON.stringify({ n, i, pad: "x".repeat(100) })),
  }));
}

/** Every batch in the log, which must be whole, as a sorted list of batch numbers. */
async function batchesIn(log: LocalEventLog, stream: string): Promise<number[]> {
  const seen = new Map<number, number>();
  for (let p = 0; p < log.partitionCount(stream); p++) {
    const records = await readAll(log, stream, p);
    records.forEach((r, i) => {
      assert.equal(r.offset, i, "offsets stay dense");
      const v = decodeValue(r) as { n: number };
      seen.set(v.n, (seen.get(v.n) ?? 0) + 1);
    });
  }
  for (const [n, count] of seen) assert.equal(count, 20, `batch ${n} is partial`);
  return [...seen.keys()].sort((a, b) => a - b);
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe("disk full", () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  test("on a full tmpfs: refused with storage_full, readable, appendable once space is freed", async (t) => {
    const mountpoint = await mkdtemp(join(tmpdir(), "runnel-log-tmpfs-"));
    cleanups.push(() => rm(mountpoint, { recursive: true, force: true }));
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mountpoint], { stdio: "ignore" });
    } catch {
      t.skip("mounting a tmpfs needs root; the file-size-limit test covers this case");
      return;
    }
    cleanups.push(async () => {
      execFileSync("umount", [mountpoint], { stdio: "ignore" });
    });
    const dir = join(mountpoint, "log");
    await mkdir(dir);
    // Room an operator can free later, less the page the log's lock file takes, so the disk fills
    // where it always did: part-way through a group, which is what the rollback figures check.
    const filler = join(mountpoint, "filler");
    await writeFile(filler, Buffer.alloc(252 * 1024));
    const log = new LocalEventLog({ dir });
    await log.open();
    cleanups.push(() => log.close());
    await log.createStream("full", { partitions: 2 });

    let n = 0;
    let refusal: unknown;
    for (; n < 10_000; n++) {
      try {
        await log.append("full", batch(n));
      } catch (e) {
        refusal = e;
        break;
      }
    }
    assert.ok(isRunnelError(refusal), `expected a RunnelError, got ${String(refusal)}`);
    assert.equal(refusal.code, "storage_full");
    assert.equal(refusal.status, 507);
    assert.match(refusal.message, /disk full/);
    assert.deepEqual(await batchesIn(log, "full"), range(0, n), "every acknowledged batch, nothing partial");
    assert.ok(log.stats().rollbacks >= 1);
    const series = await scrapeLogStats(log, log.stats());
    assert.equal(series("runnel_log_refused_appends_total"), 1, "the refusal is in a metric");
    assert.equal(series("runnel_log_rollbacks_total"), log.stats().rollbacks);
    assert.ok(series("runnel_log_rolled_back_bytes_total")! > 0);

    // Concurrent appends on a full disk are refused together, and the stream is not wedged.
    const results = await Promise.allSettled(range(n, n + 5).map((k) => log.append("full", batch(k))));
    const acked = range(n, n + 5).filter((_, i) => results[i]!.status === "fulfilled");
    for (const r of results)
      if (r.status === "rejected") assert.equal((r.reason as { code: string }).code, "storage_full");
    assert.deepEqual(await batchesIn(log, "full"), [...range(0, n), ...acked]);

    await rm(filler);
    const next = n + 5;
    for (let k = next; k < next + 3; k++) await log.append("full", batch(k));
    const expected = [...range(0, n), ...acked, ...range(next, next + 3)];
    assert.deepEqual(await batchesIn(log, "full"), expected);

    await log.close();
    const reports: RecoveryReport[] = [];
    const reopened = new LocalEventLog({ dir, onRecovery: (r) => reports.push(r) });
    await reopened.open();
    cleanups.push(() => reopened.close());
    assert.deepEqual(reports, [], "the runtime rollback left nothing for recovery to truncate");
    assert.deepEqual(await batchesIn(reopened, "full"), expected);
  });

  test("under a file-size limit: refused with storage_full, appendable once the limit is lifted", async (t) => {
    try {
      execFileSync("prlimit", ["--version"], { stdio: "ignore" });
    } catch {
      t.skip("needs prlimit (util-linux) to lift the limit of a running process");
      return;
    }
    const dir = await mkdtemp(join(tmpdir(), "runnel-log-fsize-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    // A soft limit of 64 KiB per file, which an unprivileged prlimit may raise again later.
    const child = spawn(
      "bash",
      ["-c", 'ulimit -S -f 64 && exec "$0" --import tsx "$1" "$2"', process.execPath, WRITER, join(dir, "log")],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    const acks: number[] = [];
    const lines: string[] = [];
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    let buffered = "";
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    child.stdout.on("data", (d: Buffer) => {
      buffered += d.toString();
      const parts = buffered.split("\n");
      buffered = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(line);
        if (line.startsWith("ack ")) acks.push(Number(line.slice(4)));
        if (line === "waiting") {
          execFileSync("prlimit", ["--pid", String(child.pid), "--fsize=unlimited"]);
          child.stdin.write("go\n");
        }
      }
    });
    assert.equal(await exited, 0, `writer failed: ${stderr}`);
    const refused = lines.find((l) => l.startsWith("refused "));
    assert.ok(refused, lines.join("\n"));
    assert.match(refused, /^refused storage_full 507 disk full \(EFBIG\)/);
    assert.ok(lines.includes("resumed"));
    const stats = JSON.parse(lines.find((l) => l.startsWith("stats "))!.slice(6)) as LocalEventLogStats;
    assert.ok(stats.rollbacks >= 1);

    const reports: RecoveryReport[] = [];
    const log = new LocalEventLog({ dir: join(dir, "log"), onRecovery: (r) => reports.push(r) });
    await log.open();
    cleanups.push(() => log.close());
    assert.deepEqual(reports, []);
    const series = await scrapeLogStats(log, stats);
    assert.ok(series("runnel_log_refused_appends_total")! >= 1, "the refusal is in a metric");
    assert.equal(series("runnel_log_rollbacks_total"), stats.rollbacks);
    assert.deepEqual(await batchesIn(log, "full"), acks, "exactly the acknowledged batches");
  });
});
