/**
 * One process per local log directory (issue 19): a second process is refused with
 * storage_locked naming the holder and pointing at Kafka, and a holder killed with SIGKILL does
 * not keep the next process out. Real processes, real kernel locks.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { isRunnelError } from "../../src/core/errors.js";
import { LOCK_FILE, LogDirectoryLockedError, readHolder } from "../../src/log/local/dir-lock.js";
import { LocalEventLog } from "../../src/log/local/index.js";

const HOLDER = join(import.meta.dirname, "fixtures", "lock-holder.ts");
const MISSING_FLOCK = "runnel-test-no-such-flock";

interface Holder {
  readonly child: ChildProcess;
  /** The first line the child printed: "open" or "refused <code>". */
  readonly line: string;
  readonly exited: Promise<void>;
}

async function startHolder(dir: string, flockCommand?: string): Promise<Holder> {
  const child = spawn(process.execPath, ["--import", "tsx", HOLDER, dir, ...(flockCommand ? [flockCommand] : [])], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const line = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("\n")) resolve(out.split("\n")[0]!);
    });
    child.once("exit", (code) => reject(new Error(`the holder exited with ${code} before saying anything`)));
  });
  return { child, line, exited };
}

async function kill9(holder: Holder): Promise<void> {
  holder.child.kill("SIGKILL");
  await holder.exited;
}

describe("the local log's directory lock", () => {
  const dirs: string[] = [];
  const children: ChildProcess[] = [];
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const tempDir = async (): Promise<string> => {
    const dir = await mkdtemp(join(tmpdir(), "runnel-lock-"));
    dirs.push(dir);
    return dir;
  };

  test("a second process is refused, naming the holder and Kafka; after a SIGKILL the next one opens", async () => {
    const dir = await tempDir();
    const first = await startHolder(dir);
    children.push(first.child);
    assert.equal(first.line, "open");

    const second = await startHolder(dir);
    children.push(second.child);
    assert.equal(second.line, "refused storage_locked");
    await second.exited;

    const log = new LocalEventLog({ dir, lock: { waitMs: 0 } });
    const refusal = await log.open().then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(refusal instanceof LogDirectoryLockedError, `expected LogDirectoryLockedError, got ${String(refusal)}`);
    assert.equal(refusal.code, "storage_locked");
    assert.equal(refusal.holder?.pid, first.child.pid);
    assert.match(refusal.message, new RegExp(`in use by process ${first.child.pid} on `));
    assert.match(refusal.message, /RUNNEL_KAFKA_BROKERS/);

    await kill9(first);
    // Straight after the kill: the default wait covers the moment the kernel takes to drop the lock.
    const next = new LocalEventLog({ dir });
    await next.open();
    try {
      const [record] = await next.read("held", 0, 0);
      assert.equal(new TextDecoder().decode(record!.value), String(first.child.pid), "the killed holder's append");
      assert.equal((await readHolder(join(dir, LOCK_FILE)))?.pid, process.pid, "the file names the new holder");
    } finally {
      await next.close();
    }
  });

  test("within one process, a second open of the same directory is refused until the first closes", async () => {
    const dir = await tempDir();
    const first = new LocalEventLog({ dir });
    await first.open();
    const second = new LocalEventLog({ dir, lock: { waitMs: 100 } });
    await assert.rejects(second.open(), (e: unknown) => isRunnelError(e) && e.code === "storage_locked");
    await first.close();
    assert.equal(await readFile(join(dir, LOCK_FILE), "utf8"), "", "a clean close leaves no holder named");
    await second.open();
    await second.close();
  });

  test("a held lock is retried for waitMs before the open is refused", async () => {
    const dir = await tempDir();
    const first = new LocalEventLog({ dir });
    await first.open();
    const started = performance.now();
    await assert.rejects(new LocalEventLog({ dir, lock: { waitMs: 400 } }).open(), LogDirectoryLockedError);
    assert.ok(performance.now() - started >= 400, "refused only after the wait");
    // Released during the wait: the waiting open gets it.
    const waiting = new LocalEventLog({ dir, lock: { waitMs: 5_000 } });
    setTimeout(() => void first.close(), 200);
    await waiting.open();
    await waiting.close();
  });

  test("a lock lost because its holder child was killed is reported, and close() still succeeds", async () => {
    const dir = await tempDir();
    const warnings: string[] = [];
    const log = new LocalEventLog({ dir, lock: { warn: (m) => warnings.push(m) } });
    await log.open();
    // This process's flock(1) child, and under it the `cat` that keeps the lock.
    const processes = execFileSync("ps", ["-eo", "pid=,ppid=,comm="], { encoding: "utf8" })
      .trim()
      .split("\n")
      .map((line) => line.trim().split(/\s+/));
    const childOf = (parent: string, name?: string) =>
      processes.find(([, ppid, comm]) => ppid === parent && (name === undefined || comm === name))?.[0];
    const flock = childOf(String(process.pid), "flock");
    // `sh` until it has exec'ed `cat`.
    const holder = flock === undefined ? undefined : childOf(flock);
    assert.ok(holder !== undefined, `no flock child holding the lock: ${JSON.stringify(processes.slice(-10))}`);
    process.kill(Number(holder), "SIGKILL");
    for (let i = 0; i < 100 && warnings.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.match(warnings[0] ?? "", /the lock on .* was lost/);
    // Truly lost: another open gets it.
    const other = new LocalEventLog({ dir, lock: { waitMs: 0 } });
    await other.open();
    await other.close();
    await log.close();
  });

  test("without flock(1), a live holder's pid refuses the open and a killed one's does not", async () => {
    const dir = await tempDir();
    const warnings: string[] = [];
    const first = await startHolder(dir, MISSING_FLOCK);
    children.push(first.child);
    assert.equal(first.line, "open");
    const log = new LocalEventLog({
      dir,
      lock: { waitMs: 0, flockCommand: MISSING_FLOCK, warn: (m) => warnings.push(m) },
    });
    await assert.rejects(
      log.open(),
      (e: unknown) => e instanceof LogDirectoryLockedError && e.holder?.pid === first.child.pid,
    );
    assert.match(warnings[0] ?? "", /flock\(1\) is not installed/);
    await kill9(first);
    await log.open();
    await log.close();
  });
});
