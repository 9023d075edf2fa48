/**
 * Checkpoints in files under `<dataDir>/checkpoints/`: the embedded default.
 *
 * Each task has a directory of numbered manifests (`v1`, `v2`, …) and data files (`d-<epoch>-<id>`,
 * one per base or delta). A manifest names the newest claim (epoch, owner) and the files of the
 * task's state (a base and its deltas). Every operation (claim, write, drop) adds the next manifest,
 * and only by `link(2)` from a complete, fsynced temporary file: link refuses a name that exists,
 * so of two writers (two processes on one machine, or two stores in one) racing for `v<n>` exactly
 * one wins, and the loser re-reads and re-checks its epoch. That compare-and-set is the fencing:
 * no lock file, so nothing to go stale when a process is killed. (Old manifests are retired, so a
 * number can come free again: each manifest names the one it was built on, which tells a current
 * manifest from one linked late by a writer that read before the retirement; see commit.) A task
 * has one writer at a time, its owner: the store fences other epochs, not concurrent writes of one. Every file is framed with its
 * length and CRC-32 (frame.ts), and a data file is fsynced before the manifest naming it is linked
 * and the directory fsynced, so after a crash at any moment a read finds the state before or after
 * the write in flight. A file found cut short or damaged all the same (a disk that lied about a
 * flush, a hand-edited directory) is skipped: the read falls back to the previous manifest, which
 * is kept, with its files, until the next operation succeeds.
 */
import { randomBytes } from "node:crypto";
import { link, mkdir, readdir, readFile, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fsyncDir, writeFileSynced } from "../../core/durable-file.js";
import { frameHeader, unframe } from "./frame.js";
import {
  CheckpointContendedError,
  CheckpointCorruptError,
  CheckpointFencedError,
  type CheckpointKind,
  CheckpointNoBaseError,
  type CheckpointStore,
  type StoredTaskCheckpoint,
  type TaskClaim,
} from "./store.js";

interface Written {
  readonly epoch: number;
  readonly base: string;
  readonly deltas: readonly string[];
}

interface ManifestBody {
  /** The newest claim. */
  readonly epoch: number;
  readonly owner: string;
  /** Data files of the state, none before the first base and after a drop. */
  readonly written: Written | null;
}

interface Manifest extends ManifestBody {
  /** Random, so the manifest built on this one can name it (see commit). */
  readonly id: string;
  /** The id of the manifest this one was built on; null for a task's first. */
  readonly prev: string | null;
}

type Committed = "committed" | "taken" | "withdrawn";

interface Newest {
  /** The number the next manifest takes. */
  readonly next: number;
  /** The newest manifest that reads back whole; undefined for a task never claimed. */
  readonly latest?: { readonly version: number; readonly manifest: Manifest };
}

interface WholeState {
  readonly epoch: number;
  readonly written: Written | null;
  readonly base?: Uint8Array;
  readonly deltas?: Uint8Array[];
}

const VERSION = /^v(\d+)$/;
const DATA = /^d-(\d+)-[0-9a-f]+$/;
const TEMP = /^\.tmp-(\d+)-[0-9a-f]+$/;
/** Re-reads after losing a race or reading a manifest removed under us, before giving up. */
const MAX_ATTEMPTS = 100;
/** File names are limited to 255 bytes on every common file system. */
const MAX_ENCODED_NAME = 255;

export class LocalFileCheckpointStore implements CheckpointStore {
  /** @param dir where task directories live, `<dataDir>/checkpoints` */
  constructor(private readonly dir: string) {}

  async claim(task: string, owner: string): Promise<TaskClaim> {
    const dir = this.taskDir(task);
    const created = await mkdir(dir, { recursive: true });
    // A new task directory (and a new checkpoints directory) must survive a crash like its files.
    if (created !== undefined) {
      await fsyncDir(this.dir);
      if (created === this.dir) await fsyncDir(dirname(this.dir));
    }
    const manifest = await this.apply(task, dir, true, async (latest) => {
      // The new owner continues from the newest state that reads back whole, so what it restores
      // and what it writes its deltas onto are the same.
      const whole = latest === undefined ? undefined : await this.wholeState(task, dir);
      return { epoch: (latest?.epoch ?? 0) + 1, owner, written: whole?.written ?? null };
    });
    return { task, epoch: manifest.epoch };
  }

  async read(task: string): Promise<StoredTaskCheckpoint | undefined> {
    const state = await this.wholeState(task, this.taskDir(task));
    if (state?.written == null) return undefined;
    return { epoch: state.written.epoch, base: state.base!, deltas: state.deltas! };
  }

  async write(task: string, epoch: number, kind: CheckpointKind, data: Uint8Array): Promise<void> {
    const dir = this.taskDir(task);
    // Refuse a fenced writer before it writes what may be a large file.
    this.check(task, epoch, kind, (await this.newest(task, dir)).latest?.manifest);
    const file = `d-${epoch}-${randomBytes(8).toString("hex")}`;
    await writeFileSynced(join(dir, file), [frameHeader(data), data], "wx");
    // Once linked, the file may be named by a manifest others build on, even if ours is withdrawn.
    let linked = false;
    try {
      await this.apply(
        task,
        dir,
        true,
        async (latest) => {
          const current = this.check(task, epoch, kind, latest);
          const written: Written =
            kind === "base"
              ? { epoch, base: file, deltas: [] }
              : { epoch, base: current.written!.base, deltas: [...current.written!.deltas, file] };
          return { epoch: current.epoch, owner: current.owner, written };
        },
        () => {
          linked = true;
        },
      );
    } catch (e) {
      if (!linked) await rm(join(dir, file), { force: true });
      throw e;
    }
  }

  async drop(task: string, epoch: number): Promise<void> {
    // Nothing to fall back to: a dropped task's files all go.
    await this.apply(task, this.taskDir(task), false, async (latest) => {
      const current = this.check(task, epoch, "base", latest);
      return { epoch: current.epoch, owner: current.owner, written: null };
    });
  }

  async list(prefix: string): Promise<string[]> {
    const tasks: string[] = [];
    for (const entry of await readdirOrEmpty(this.dir)) {
      const task = decodeTask(entry);
      if (task === undefined || !task.startsWith(prefix)) continue;
      if ((await versions(join(this.dir, entry))).length > 0) tasks.push(task);
    }
    return tasks.sort();
  }

  async close(): Promise<void> {}

  private taskDir(task: string): string {
    const name = encodeTask(task);
    if (name.length > MAX_ENCODED_NAME) {
      throw new RangeError(`task name ${JSON.stringify(task)} is too long for a checkpoint directory name`);
    }
    return join(this.dir, name);
  }

  /** The current manifest, when `epoch` owns the task and (for a delta) there is a base. */
  private check(task: string, epoch: number, kind: CheckpointKind, current: Manifest | undefined): Manifest {
    if (current === undefined || current.epoch !== epoch) {
      throw new CheckpointFencedError(task, epoch, current?.epoch ?? 0);
    }
    if (kind === "delta" && current.written === null) throw new CheckpointNoBaseError(task);
    return current;
  }

  /** The newest manifest that reads back whole. */
  private async newest(task: string, dir: string): Promise<Newest> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const found = await versions(dir);
      if (found.length === 0) return { next: 1 };
      const next = found[0]! + 1;
      let removed = false;
      for (const version of found) {
        const manifest = await readManifest(dir, version);
        if (manifest === "missing") {
          removed = true; // collected by a newer operation: start over from the new listing
          break;
        }
        if (manifest !== "damaged") return { next, latest: { version, manifest } };
      }
      if (!removed) throw new CheckpointCorruptError(task, `no manifest in ${dir} reads back whole`);
    }
    throw this.contended(task);
  }

  /** The newest state whose manifest and data files all read back whole, with its data. */
  private async wholeState(task: string, dir: string): Promise<WholeState | undefined> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const found = await versions(dir);
      if (found.length === 0) return undefined;
      let removed = false;
      for (const version of found) {
        const manifest = await readManifest(dir, version);
        if (manifest === "damaged") continue;
        if (manifest !== "missing") {
          if (manifest.written === null) return { epoch: manifest.epoch, written: null };
          const files = [manifest.written.base, ...manifest.written.deltas];
          const data = await Promise.all(files.map((f) => readData(join(dir, f))));
          if (data.every((d) => d instanceof Uint8Array)) {
            const [base, ...deltas] = data as Uint8Array[];
            return { epoch: manifest.epoch, written: manifest.written, base: base!, deltas };
          }
          // A file gone because a newer operation collected it (start over), or lost (fall back).
          if (!data.includes("missing") || (await versions(dir))[0] === found[0]) continue;
        }
        removed = true;
        break;
      }
      if (!removed) throw new CheckpointCorruptError(task, `no checkpoint in ${dir} reads back whole`);
    }
    throw this.contended(task);
  }

  /**
   * Adds the next manifest, built by `build` from the newest one, again and again while other
   * writers add theirs first; `linked` hears of any manifest linked, even one withdrawn after.
   */
  private async apply(
    task: string,
    dir: string,
    keepPrevious: boolean,
    build: (latest: Manifest | undefined) => Promise<ManifestBody>,
    linked?: () => void,
  ): Promise<Manifest> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const { next, latest } = await this.newest(task, dir);
      const body = await build(latest?.manifest);
      const manifest: Manifest = { id: randomBytes(8).toString("hex"), prev: latest?.manifest.id ?? null, ...body };
      const outcome = await this.commit(dir, next, manifest);
      if (outcome !== "taken") linked?.();
      if (outcome === "committed") {
        // The new name, and the data file it names, survive a crash from here on.
        await fsyncDir(dir);
        await this.collect(dir, next, manifest, keepPrevious);
        return manifest;
      }
      // Lost to another writer: back off for a random while, so many contenders do not go on
      // colliding in step (a task rarely has more than two, its owner and its next).
      await sleep(Math.random() * Math.min(100, 2 ** attempt));
    }
    throw this.contended(task);
  }

  /**
   * Links manifest `v<version>`: "taken" when another writer has that number, "withdrawn" when the
   * number was free only because collect() had retired it (see below).
   */
  private async commit(dir: string, version: number, manifest: Manifest): Promise<Committed> {
    const temp = join(dir, `.tmp-${process.pid}-${randomBytes(8).toString("hex")}`);
    const payload = Buffer.from(JSON.stringify(manifest));
    await writeFileSynced(temp, [frameHeader(payload), payload], "wx");
    try {
      await link(temp, join(dir, `v${version}`));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") return "taken";
      throw e;
    } finally {
      await rm(temp, { force: true });
    }
    // A number retired by collect() can be linked again by a writer that listed before it was
    // retired: such a manifest is stale. Retiring needs two newer manifests and the newest number
    // only grows, so ours is current if it is the newest now, or if the next was built on it.
    if ((await versions(dir))[0] === version) return "committed";
    const successor = await readManifest(dir, version + 1);
    if (typeof successor === "object" && successor.prev === manifest.id) return "committed";
    // Stale, or superseded so long ago (a paused process) that nobody can tell: withdraw it.
    const linked = await readManifest(dir, version);
    if (typeof linked === "object" && linked.id === manifest.id) await rm(join(dir, `v${version}`), { force: true });
    return "withdrawn";
  }

  /**
   * Retires the manifests before `version` (all but the newest one before it, when `keepPrevious`,
   * so a damaged newest file has a state to fall back to), the data files only they name, data files
   * written under an older epoch that no manifest names (a fenced or crashed writer's), and temporary
   * files of processes that are gone. Best effort: whatever stays is retired by a later operation.
   */
  private async collect(dir: string, version: number, manifest: Manifest, keepPrevious: boolean): Promise<void> {
    try {
      const entries = await readdir(dir);
      const older = entries
        .map((e) => Number(VERSION.exec(e)?.[1] ?? Number.NaN))
        .filter((v) => v < version)
        .sort((a, b) => b - a);
      const kept = new Set<number>(
        entries.map((e) => Number(VERSION.exec(e)?.[1] ?? Number.NaN)).filter((v) => v >= version),
      );
      if (keepPrevious && older.length > 0) kept.add(older[0]!);
      const filesOf = async (v: number, into: Set<string>) => {
        const m = v === version ? manifest : await readManifest(dir, v);
        if (typeof m === "object" && m.written !== null) {
          for (const f of [m.written.base, ...m.written.deltas]) into.add(f);
        }
      };
      const named = new Set<string>();
      for (const v of kept) await filesOf(v, named);
      const retired = new Set<string>();
      for (const v of older) {
        if (kept.has(v)) continue;
        await filesOf(v, retired);
        await rm(join(dir, `v${v}`), { force: true });
      }
      for (const entry of entries) {
        const data = DATA.exec(entry);
        const temp = TEMP.exec(entry);
        // A data file no kept manifest names goes when a retired one named it (a replaced base, the
        // deltas before it), or when an older epoch wrote it (a fenced or crashed writer's file: no
        // manifest will ever name it), or with everything else on a drop.
        const stale =
          (data !== null &&
            !named.has(entry) &&
            (retired.has(entry) || Number(data[1]) < manifest.epoch || !keepPrevious)) ||
          (temp !== null && !processAlive(Number(temp[1])));
        if (stale) await rm(join(dir, entry), { force: true });
      }
    } catch {
      // A later operation retries; the write itself has succeeded.
    }
  }

  private contended(task: string): CheckpointContendedError {
    return new CheckpointContendedError(task, MAX_ATTEMPTS);
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
}

/** Manifest numbers in `dir`, newest first. */
async function versions(dir: string): Promise<number[]> {
  return (await readdirOrEmpty(dir))
    .map((e) => VERSION.exec(e)?.[1])
    .filter((v) => v !== undefined)
    .map(Number)
    .sort((a, b) => b - a);
}

async function readFramed(path: string): Promise<Uint8Array | "missing" | "damaged"> {
  let file: Buffer;
  try {
    file = await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return "missing";
    throw e;
  }
  const frame = unframe(file);
  return "payload" in frame ? frame.payload : "damaged";
}

const readData = readFramed;

async function readManifest(dir: string, version: number): Promise<Manifest | "missing" | "damaged"> {
  const payload = await readFramed(join(dir, `v${version}`));
  if (typeof payload === "string") return payload;
  try {
    return JSON.parse(Buffer.from(payload).toString("utf8")) as Manifest;
  } catch {
    return "damaged";
  }
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * A task name as a directory name: lower-case letters, digits, `_` and `-` as they are, every other
 * UTF-8 byte as `~xx`, so names stay distinct on case-insensitive file systems and `/` is no path.
 */
export function encodeTask(task: string): string {
  let name = "";
  for (const byte of Buffer.from(task, "utf8")) {
    const c = String.fromCharCode(byte);
    name += /[a-z0-9_-]/.test(c) ? c : `~${byte.toString(16).padStart(2, "0")}`;
  }
  return name;
}

/** The task of a directory name, or undefined for a name encodeTask never produces. */
export function decodeTask(name: string): string | undefined {
  if (!/^(?:[a-z0-9_-]|~[0-9a-f]{2})+$/.test(name)) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < name.length; i++) {
    if (name[i] === "~") {
      bytes.push(Number.parseInt(name.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(name.charCodeAt(i));
  }
  const task = Buffer.from(bytes).toString("utf8");
  return encodeTask(task) === name ? task : undefined;
}
