/** Durable file replacement: the one place that writes a file atomically (temp, fsync, rename, fsync the directory). */
import { open, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";

let tempCounter = 0;

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
 * directory entry is durable only once the caller fsyncs the directory.
 */
export async function writeFileSynced(
  path: string,
  data: string | Uint8Array | Iterable<Uint8Array>,
  flag: "w" | "wx" = "w",
): Promise<void> {
  const handle = await open(path, flag);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (e) {
    await handle.close();
    await rm(path, { force: true });
    throw e;
  }
  await handle.close();
}

/** Replaces `path` atomically and durably: write a temp file, fsync it, rename, fsync the dir. */
export async function writeFileDurable(path: string, data: string | Uint8Array): Promise<void> {
  const temp = `${path}.tmp-${process.pid}-${tempCounter++}`;
  await writeFileSynced(temp, data);
  await rename(temp, path);
  await fsyncDir(dirname(path));
}
