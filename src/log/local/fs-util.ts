/** Small durable-filesystem helpers: the rename dance and directory fsync. */
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

/** Replaces `path` atomically and durably: write a temp file, fsync it, rename, fsync the dir. */
export async function writeFileDurable(path: string, data: string | Uint8Array): Promise<void> {
  const temp = `${path}.tmp-${process.pid}-${tempCounter++}`;
  const handle = await open(temp, "w");
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (e) {
    await handle.close();
    await rm(temp, { force: true });
    throw e;
  }
  await handle.close();
  await rename(temp, path);
  await fsyncDir(dirname(path));
}

/** Kafka-style segment name: the base offset, zero-padded to 20 digits. */
export function segmentFileName(baseOffset: number, extension: ".log" | ".index" | ".timeindex"): string {
  return `${String(baseOffset).padStart(20, "0")}${extension}`;
}

const SEGMENT_NAME = /^(\d{20})\.log$/;

export function parseSegmentFileName(name: string): number | undefined {
  const m = SEGMENT_NAME.exec(name);
  return m === null ? undefined : Number(m[1]);
}

/**
 * Stream and group names become directory and file names. Percent-encoding keeps any name
 * filesystem-safe and reversible; a leading dot is escaped too, because dot-names are reserved
 * for the log's own temporary directories.
 */
export function encodeName(name: string): string {
  const encoded = encodeURIComponent(name);
  return encoded.startsWith(".") ? `%2E${encoded.slice(1)}` : encoded;
}

export function decodeName(encoded: string): string {
  return decodeURIComponent(encoded);
}
