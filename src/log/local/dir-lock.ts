/**
 * One process per local log directory. Two processes appending to the same segment files would
 * interleave their writes and corrupt the log, and two Runnel instances on one data directory would
 * both process every partition: scaling out needs Apache Kafka as the log (docs/cluster.md).
 *
 * The lock is the kernel's: flock(2) on `<dir>/.lock`, held by a `flock(1)` child whose stdin is a
 * pipe from this process. Node has no flock of its own, and a lock the kernel holds is released
 * however its holder dies: when this process exits, even by SIGKILL, the pipe closes, the child
 * reads end-of-file and exits, and the kernel drops the lock. A pid file would have to guess
 * whether its pid is still ours, and cannot take over a stale file without a race between two
 * processes starting at once. The file also names its holder (pid, host, since) for the message of
 * the process that is refused.
 *
 * Where flock(1) is missing (it ships with util-linux on every Linux, and busybox; macOS lacks it),
 * the holder's record alone decides: a live pid refuses the open. That fallback cannot tell two
 * processes starting in the same instant apart, and says so in the log it is given.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { Socket } from "node:net";
import { hostname } from "node:os";
import { join } from "node:path";
import { RunnelError } from "../../core/errors.js";

export const LOCK_FILE = ".lock";
/** flock(1)'s exit status when another process holds the lock (`--conflict-exit-code`). */
const CONFLICT_EXIT = 75;

/** Who holds a directory, as its lock file records it. */
export interface LockHolder {
  readonly pid: number;
  readonly host: string;
  /** ISO 8601 time the holder took the lock. */
  readonly since: string;
}

/** The local log's directory is held by another process. */
export class LogDirectoryLockedError extends RunnelError {
  override name = "LogDirectoryLockedError";
  constructor(
    readonly dir: string,
    readonly holder: LockHolder | undefined,
  ) {
    const who =
      holder === undefined ? "another process" : `process ${holder.pid} on ${holder.host} (since ${holder.since})`;
    super(
      "storage_locked",
      `the local log in ${dir} is in use by ${who}: one data directory serves one Runnel process; ` +
        "to run several instances, give each its own data directory and share Apache Kafka as the log " +
        "(RUNNEL_KAFKA_BROKERS, see docs/cluster.md)",
      { details: { dir, holder } },
    );
  }
}

export interface DirectoryLockOptions {
  /**
   * How long a held lock is retried before the open is refused. A holder killed a moment ago
   * releases its lock only once its flock child has seen the pipe close, a few milliseconds later;
   * an immediate restart must not be refused for that. Default 1 s.
   */
  readonly waitMs?: number;
  /** The flock(1) command; tests name a missing one to exercise the fallback. */
  readonly flockCommand?: string;
  /** Told when the fallback (no flock(1)) is used, and if the lock's holder child dies early. */
  readonly warn?: (message: string) => void;
}

export interface DirectoryLock {
  /** The file the lock is held on. */
  readonly path: string;
  /** `flock` (a kernel lock) or `pid` (the fallback). */
  readonly kind: "flock" | "pid";
  release(): Promise<void>;
}

/** Takes `dir`'s lock or throws LogDirectoryLockedError naming the holder. `dir` must exist. */
export async function lockDirectory(dir: string, options: DirectoryLockOptions = {}): Promise<DirectoryLock> {
  const path = join(dir, LOCK_FILE);
  const deadline = Date.now() + (options.waitMs ?? 1_000);
  for (;;) {
    const outcome = await tryFlock(path, options);
    if (outcome === "missing") return pidLock(dir, path, options);
    if (outcome !== "held") {
      try {
        await writeHolder(path);
      } catch (e) {
        await outcome.release();
        throw e;
      }
      return outcome;
    }
    if (Date.now() >= deadline) throw new LogDirectoryLockedError(dir, await readHolder(path));
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Starts a flock(1) child holding the lock: the lock when it got it, or why not. */
function tryFlock(path: string, options: DirectoryLockOptions): Promise<DirectoryLock | "held" | "missing"> {
  const command = options.flockCommand ?? "flock";
  // `exec cat` keeps the lock for as long as our end of its stdin is open; the line says it is held.
  const child = spawn(
    command,
    ["--nonblock", "--conflict-exit-code", String(CONFLICT_EXIT), path, "-c", "echo locked; exec cat"],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  return new Promise((resolve, reject) => {
    let stderr = "";
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      fn();
    };
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.stdout?.once("data", () => settle(() => resolve(held(child, path, options))));
    child.once("error", (e: NodeJS.ErrnoException) =>
      settle(() =>
        e.code === "ENOENT"
          ? resolve("missing")
          : reject(new RunnelError("internal", `could not run ${command} to lock ${path}: ${e.message}`, { cause: e })),
      ),
    );
    child.once("exit", (code) =>
      settle(() =>
        code === CONFLICT_EXIT
          ? resolve("held")
          : reject(new RunnelError("internal", `${command} could not lock ${path} (exit ${code}): ${stderr.trim()}`)),
      ),
    );
  });
}

function held(child: ChildProcess, path: string, options: DirectoryLockOptions): DirectoryLock {
  let releasing = false;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.once("exit", (code, signal) => {
    if (!releasing) options.warn?.(`the lock on ${path} was lost: its flock child exited (${signal ?? code})`);
  });
  // A child killed from outside makes our end of the pipe fail (EPIPE) on release: not a crash.
  child.stdin?.on("error", () => undefined);
  // The child and its pipes must not keep this process alive; the pipe is its lifeline, not work.
  child.stdout?.destroy();
  child.unref();
  for (const stream of [child.stdin, child.stderr]) if (stream instanceof Socket) stream.unref();
  return {
    path,
    kind: "flock",
    release: async () => {
      if (releasing) return exited;
      releasing = true;
      // Waiting for the child's exit is work again: without a ref, a process whose last task is
      // this close would exit before it (an unsettled await).
      child.ref();
      // Cleared while still held, so it never erases the record of whoever locks next.
      await writeFile(path, "").catch(() => undefined);
      child.stdin?.end();
      await exited;
    },
  };
}

async function pidLock(dir: string, path: string, options: DirectoryLockOptions): Promise<DirectoryLock> {
  options.warn?.(
    `flock(1) is not installed: the lock on ${dir} falls back to a pid check, which two processes starting at the same moment can both pass`,
  );
  const holder = await readHolder(path);
  if (holder !== undefined && holder.pid !== process.pid && holder.host === hostname() && alive(holder.pid)) {
    throw new LogDirectoryLockedError(dir, holder);
  }
  await writeHolder(path);
  return {
    path,
    kind: "pid",
    release: async () => {
      // Only our own record is cleared: the file stays, as under flock, and names no holder.
      if ((await readHolder(path))?.pid === process.pid) await writeFile(path, "");
    },
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but is another user's.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function writeHolder(path: string): Promise<void> {
  const holder: LockHolder = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  await writeFile(path, `${JSON.stringify(holder)}\n`);
}

/** The holder the file names, if it names one (a release or a crash while writing leaves none). */
export async function readHolder(path: string): Promise<LockHolder | undefined> {
  try {
    const parsed: unknown = JSON.parse(await readFile(path, "utf8"));
    if (typeof parsed !== "object" || parsed === null) return undefined;
    const { pid, host, since } = parsed as Record<string, unknown>;
    if (typeof pid !== "number" || typeof host !== "string" || typeof since !== "string") return undefined;
    return { pid, host, since };
  } catch {
    return undefined;
  }
}
