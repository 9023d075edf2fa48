/**
 * File source: tails a log file (NDJSON, or lines through a JSON, logfmt or regex parser) into a
 * stream, polling for growth. Rotation (the path now names another inode) is followed after the
 * old file is read to its end; truncation (the file shrank below our position, or the bytes just
 * before our position changed) restarts at 0.
 * Only complete lines are consumed (a final line without a newline waits, unless the file was
 * rotated away). The position is persisted after every durable batch (see checkpoint.ts).
 */
import { type FileHandle, open, stat } from "node:fs/promises";
import { join } from "node:path";
import { parseDuration } from "../config/units.js";
import type { JsonLimits } from "../ingest/json-limits.js";
import { endsOf, findLastTag, type LogReader, readCheckpoint, writeCheckpoint } from "./checkpoint.js";
import { type Candidate, DEAD_LETTER_SUFFIX, type Delivery } from "./deliver.js";
import { compileParser, type LineParse } from "./parsers.js";
import type { FileSourceSpec, RunningSource, SourceCounters } from "./types.js";

const TAG = "runnel-file-position";
const READ_BYTES = 1 << 20;
const MAX_LINES_PER_BATCH = 5000;
const FINGERPRINT_BYTES = 64;

interface Position {
  readonly ino: number;
  readonly offset: number;
  /** Batches delivered so far: orders tags found in the log. */
  readonly seq: number;
}

interface Checkpoint extends Position {
  readonly ends: Record<string, number[]>;
}

export interface FileSourceDeps {
  readonly delivery: Delivery;
  readonly log: LogReader;
  readonly checkpointDir: string;
  readonly counters: SourceCounters;
  readonly jsonLimits: JsonLimits;
}

export class FileSource implements RunningSource {
  private readonly parse: LineParse;
  private readonly pollMs: number;
  private readonly checkpointFile: string;
  private readonly streams: string[];
  private fh: FileHandle | undefined;
  private position: Position = { ino: -1, offset: 0, seq: 0 };
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private trouble: string | undefined;
  private lagging = false;
  /**
   * The last bytes consumed, compared with the file before reading on: a file truncated and
   * refilled past our position between two polls (copytruncate) is not smaller, but differs here.
   */
  private fingerprint: Buffer | undefined;
  private mtimeMs = 0;

  constructor(
    private readonly spec: FileSourceSpec,
    private readonly deps: FileSourceDeps,
  ) {
    this.parse = compileParser(spec.format === "lines" ? (spec.parser ?? "json") : "json", deps.jsonLimits);
    this.pollMs = spec.pollInterval !== undefined ? (parseDuration(spec.pollInterval) ?? 250) : 250;
    this.checkpointFile = join(deps.checkpointDir, `${spec.name}.position.json`);
    this.streams = [spec.stream, `${spec.stream}${DEAD_LETTER_SUFFIX}`];
  }

  async start(): Promise<void> {
    const saved = await readCheckpoint<Checkpoint>(this.checkpointFile);
    if (saved !== undefined) {
      this.position = { ino: saved.ino, offset: saved.offset, seq: saved.seq };
      const tag = await findLastTag(this.deps.log, saved.ends, TAG, (v) => (JSON.parse(v) as Position).seq);
      if (tag !== undefined) {
        const found = JSON.parse(tag) as Position;
        if (found.seq > this.position.seq) this.position = found;
      }
    }
    await this.saveCheckpoint();
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    await this.fh?.close();
    this.fh = undefined;
  }

  health(): { state: "running" | "lagging" | "failed"; reason?: string } {
    if (this.trouble !== undefined) return { state: "lagging", reason: this.trouble };
    return this.lagging ? { state: "lagging", reason: "catching up with the file" } : { state: "running" };
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.poll().then(
        (more) => this.schedule(more ? 0 : this.pollMs),
        (e) => {
          this.trouble = (e as Error).message;
          this.schedule(Math.max(this.pollMs, 1000));
        },
      );
    }, ms);
  }

  /** One step; true when there is more to read right away. */
  private async poll(): Promise<boolean> {
    const { path } = this.spec;
    let current: Awaited<ReturnType<typeof stat>> | undefined;
    try {
      current = await stat(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    if (this.fh === undefined) {
      if (current === undefined) {
        this.trouble = `waiting for ${path} to exist`;
        return false;
      }
      this.fh = await open(path, "r");
      const st = await this.fh.stat();
      if (st.ino !== this.position.ino) {
        // A file we have not read before (first start, or rotated while we were down).
        const startAtEnd = this.position.ino === -1 && this.spec.startAt === "end";
        this.position = { ino: st.ino, offset: startAtEnd ? st.size : 0, seq: this.position.seq };
      }
    }
    this.trouble = undefined;
    const fh = this.fh;
    const st = await fh.stat();
    // Only a file that changed since the last poll can have been replaced under us.
    const changed = st.size > this.position.offset || st.mtimeMs !== this.mtimeMs;
    this.mtimeMs = st.mtimeMs;
    if (st.size < this.position.offset || (changed && (await this.replaced(fh)))) {
      this.position = { ...this.position, offset: 0 };
      this.fingerprint = undefined;
    }
    const rotated = current === undefined || current.ino !== this.position.ino;
    const more = await this.readSome(fh, st.size, rotated);
    this.lagging = more;
    if (more) return true;
    if (rotated && current !== undefined) {
      await fh.close();
      this.fh = undefined;
      this.position = { ino: -2, offset: 0, seq: this.position.seq };
      this.fingerprint = undefined;
      return true;
    }
    return false;
  }

  /** Reads and delivers one batch of complete lines; true when more remain. */
  private async readSome(fh: FileHandle, size: number, final: boolean): Promise<boolean> {
    const start = this.position.offset;
    if (start >= size) return false;
    const length = Math.min(READ_BYTES, size - start);
    const buf = Buffer.allocUnsafe(length);
    const { bytesRead } = await fh.read(buf, 0, length, start);
    const data = buf.subarray(0, bytesRead);
    const candidates: Candidate[] = [];
    let pos = 0;
    while (pos < data.length && candidates.length < MAX_LINES_PER_BATCH) {
      let nl = data.indexOf(0x0a, pos);
      if (nl === -1) {
        // The rest of a line still being written, unless the file is finished (rotated) and all read.
        if (!(final && start + data.length >= size) && !(pos === 0 && data.length === READ_BYTES)) break;
        nl = data.length;
      }
      let text = data.toString("utf8", pos, nl);
      if (text.endsWith("\r")) text = text.slice(0, -1);
      const offset = start + pos;
      pos = nl + 1;
      if (text.trim() === "") continue;
      const parsed = this.parse(text);
      const origin = { file: this.spec.path, offset };
      if ("error" in parsed) candidates.push({ payload: text, origin, error: parsed.error });
      else {
        const event = parsed.event;
        if (this.spec.userId !== undefined && event.user_id === undefined) event.user_id = this.spec.userId;
        candidates.push({ payload: text, origin, event });
      }
    }
    const consumed = Math.min(pos, data.length);
    if (consumed === 0) return false;
    const next: Position = { ino: this.position.ino, offset: start + consumed, seq: this.position.seq + 1 };
    this.deps.counters.backlog = size - next.offset;
    if (candidates.length > 0) {
      await this.deps.delivery.deliver(this.spec.stream, candidates, { [TAG]: JSON.stringify(next) });
    }
    this.position = next;
    this.fingerprint = Buffer.from(data.subarray(Math.max(0, consumed - FINGERPRINT_BYTES), consumed));
    await this.saveCheckpoint();
    return next.offset < size;
  }

  private async replaced(fh: FileHandle): Promise<boolean> {
    const fp = this.fingerprint;
    if (fp === undefined || fp.length === 0) return false;
    const at = this.position.offset - fp.length;
    if (at < 0) return false;
    const now = Buffer.allocUnsafe(fp.length);
    const { bytesRead } = await fh.read(now, 0, fp.length, at);
    return bytesRead !== fp.length || !now.equals(fp);
  }

  private async saveCheckpoint(): Promise<void> {
    const ends = await endsOf(this.deps.log, this.streams);
    await writeCheckpoint(this.checkpointFile, { ...this.position, ends } satisfies Checkpoint);
  }
}
