/**
 * Where archive files live, behind one small seam: a local directory (the default) or an
 * S3-compatible bucket. DuckDB reads and writes only local files (its S3 support is an extension
 * downloaded at run time, which Runnel does not depend on), so every location has a local
 * directory, `localDir`: files are written there first (`staging/`), and read from there; a
 * remote location keeps its local copies there.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";

export interface ArchiveLocation {
  /** The directory the analytics engine may read and write (the archive's files or their copies). */
  readonly localDir: string;
  /** Creates what it needs; run before anything else. */
  open(): Promise<void>;
  /** A new path in `localDir` to write a file to before put(). */
  stagingPath(label: string): string;
  /** Stores the staged file under `key` (replacing any file there); the staged file is gone after. */
  put(staged: string, key: string): Promise<void>;
  /** A local path holding the file at `key`, fetched first if the location is remote. */
  localPath(key: string): Promise<string>;
  /** Keys under `prefix` ("" for all), in no particular order. */
  list(prefix: string): Promise<string[]>;
  delete(keys: readonly string[]): Promise<void>;
  /** Removes staged files left by a run that never put them. */
  clearStaging(): Promise<void>;
}

const STAGING = ".staging";

/**
 * The key of a file: `<stream>/<day>/p<partition>/<offsetStart>-<offsetEnd>.parquet`, the day
 * (UTC) of its newest event: a late event lowers a file's earliest time but not its newest, so
 * consecutive files of a partition keep to one day and compaction can merge them.
 */
export function archiveKey(stream: string, partition: number, offsetStart: number, offsetEnd: number, maxTime: number) {
  const day = new Date(maxTime).toISOString().slice(0, 10);
  return `${stream}/${day}/p${partition}/${offsetStart}-${offsetEnd}.parquet`;
}

/**
 * The file beside an archive file holding a rollup's rows for the same offset range
 * (docs/rollups.md): `…/<offsetStart>-<offsetEnd>.rollup_<name>.parquet`. Works on keys and
 * local paths alike. It belongs to the file's manifest row: put before it is committed, deleted
 * with it.
 */
export function rollupFile(file: string, rollup: string): string {
  return file.replace(/\.parquet$/, `.rollup_${rollup}.parquet`);
}

/** The rollup whose file `key` is, or undefined for a stream's own file. */
export function rollupOfKey(key: string): string | undefined {
  return /\.rollup_([a-z][a-z0-9_]*)\.parquet$/.exec(key)?.[1];
}

/**
 * Part `k` of the files a group of archive files is re-laid into by user range
 * (./relayout.ts): `…/<offsetStart>-<offsetEnd>.u<k>.parquet`. Works on keys and local paths alike.
 */
export function userPartFile(file: string, k: number): string {
  return file.replace(/\.parquet$/, `.u${Math.trunc(k)}.parquet`);
}

/** Whether a key is a part of a layout by user range (userPartFile), not a file of one day. */
export function isUserPartKey(key: string): boolean {
  return /\.u\d+\.parquet$/.test(key);
}

/** The archive file a key belongs to: itself, or the file a rollup's file sits beside. */
export function ownerKey(key: string): string {
  return key.replace(/\.rollup_[a-z][a-z0-9_]*\.parquet$/, ".parquet");
}

export class LocalDirLocation implements ArchiveLocation {
  constructor(readonly localDir: string) {}

  async open(): Promise<void> {
    await mkdir(join(this.localDir, STAGING), { recursive: true });
  }

  stagingPath(label: string): string {
    return join(this.localDir, STAGING, `${label}-${randomBytes(6).toString("hex")}.parquet`);
  }

  async put(staged: string, key: string): Promise<void> {
    const target = this.pathOf(key);
    await mkdir(dirname(target), { recursive: true });
    await rename(staged, target);
  }

  async localPath(key: string): Promise<string> {
    return this.pathOf(key);
  }

  async list(prefix: string): Promise<string[]> {
    const root = prefix === "" ? this.localDir : this.pathOf(prefix);
    const out: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries: import("node:fs").Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
        throw e;
      }
      for (const entry of entries) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) {
          if (dir === this.localDir && entry.name === STAGING) continue;
          await walk(path);
        } else if (entry.isFile() && entry.name.endsWith(".parquet")) {
          out.push(relative(this.localDir, path).split(sep).join("/"));
        }
      }
    };
    if ((await stat(root).catch(() => undefined))?.isDirectory()) await walk(root);
    return out;
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const key of keys) await rm(this.pathOf(key), { force: true });
  }

  async clearStaging(): Promise<void> {
    await rm(join(this.localDir, STAGING), { recursive: true, force: true });
    await mkdir(join(this.localDir, STAGING), { recursive: true });
  }

  private pathOf(key: string): string {
    if (key.split("/").some((part) => part === ".." || part === "." || part === STAGING)) {
      throw new Error(`invalid archive key ${key}`);
    }
    return join(this.localDir, ...key.split("/"));
  }
}
