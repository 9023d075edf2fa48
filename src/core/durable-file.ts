/**
 * Durable file writes: the one place that replaces a file atomically (temp, fsync, rename, fsync
 * the directory) and that appends to a file so that a crash never loses a created file's name.
 */
import { open, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

let tempCounter = 0;
const TEMP_SUFFIX = /^\.tmp(?:-\d+-\d+)?$/;
/** Temp files this process is writing: every other temp file is a killed writer's. */
const writing = new Set<string>();

/** What writeFileDurable writes: text, bytes, or chunks of bytes produced while it writes. */
export type FileContent = string | Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/** Makes a directory's entries (created, renamed, removed files) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes `data` whole to `path` and fsyncs the file; `wx` refuses a path that exists. The new
 * directory entry is durable only once the caller fsyncs the directory. A failed write removes
 * what it wrote. Chunks (an iterable) are
 * written one at a time, so a large content never has to be one buffer. Returns the bytes written.
 */
export async function writeFileSynced(path: string, data: FileContent, flag: "w" | "wx" = "w"): Promise<number> {
  const handle = await open(path, flag);
  let bytes = 0;
  try {
    if (typeof data === "string" || data instanceof Uint8Array) {
      // writeFile, not write: write() may write less than it was given.
      await handle.writeFile(data);
      bytes = typeof data === "string" ? Buffer.byteLength(data) : data.byteLength;
    } else {
      for await (const chunk of data) {
        await handle.writeFile(chunk);
        bytes += chunk.byteLength;
      }
    }
    await handle.sync();
  } catch (e) {
    await handle.close();
    // Half a file must not stay behind under the name (a `wx` retry would find it).
    await rm(path, { force: true });
    throw e;
  }
  await handle.close();
  return bytes;
}

/**
 * Replaces `path` atomically and durably: writes a temp file beside it, fsyncs it, renames it
 * over `path` and fsyncs the directory. A reader or a crash sees the old content or the new, never
 * part of the new; a failed write leaves the old file and no temp file. Returns the bytes written.
 *
 * @example
 * await writeFileDurable(join(dir, "state.json"), JSON.stringify(state));
 */
export async function writeFileDurable(path: string, data: FileContent): Promise<number> {
  const temp = `${path}.tmp-${process.pid}-${tempCounter++}`;
  let bytes: number;
  writing.add(temp);
  try {
    bytes = await writeFileSynced(temp, data);
    await rename(temp, path);
  } catch (e) {
    await rm(temp, { force: true });
    throw e;
  } finally {
    writing.delete(temp);
  }
  await fsyncDir(dirname(path));
  return bytes;
}

/**
 * Appends `data` to `path` and fsyncs it; when the append created the file (it was empty), the
 * directory is fsynced too, so the file's name survives a crash along with its content.
 */
export async function appendFileDurable(path: string, data: Uint8Array): Promise<void> {
  const handle = await open(path, "a");
  let created: boolean;
  try {
    created = (await handle.stat()).size === 0;
    // writeFile loops over short writes; on an append handle it appends.
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  if (created) await fsyncDir(dirname(path));
}

/**
 * The temp files of `path` among `names` (a listing of its directory) that a process killed while
 * replacing it left behind (the `.tmp` name of older versions included): every one this process
 * is not writing. Not by process id: in a container every run is PID 1. A data directory belongs
 * to one process, so no other process's write can be in flight.
 */
export function staleTempsOf(path: string, names: readonly string[]): string[] {
  const prefix = basename(path);
  const stale: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix) || !TEMP_SUFFIX.test(name.slice(prefix.length))) continue;
    const full = join(dirname(path), name);
    if (!writing.has(full)) stale.push(full);
  }
  return stale;
}

/** Removes the temp files a killed process left beside `path` (see staleTempsOf). */
export async function removeStaleTemps(path: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw e;
  }
  await removeFilesDurable(staleTempsOf(path, names));
}

/** Removes the files (absent ones are ignored) and makes their removal durable, one fsync per directory. */
export async function removeFilesDurable(paths: readonly string[]): Promise<void> {
  const dirs = new Set<string>();
  for (const path of paths) {
    try {
      await rm(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw e;
    }
    dirs.add(dirname(path));
  }
  for (const dir of dirs) await fsyncDir(dir);
}
