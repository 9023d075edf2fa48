/**
 * Idempotency keys for ingest (API.md: a retried request with the same key and body appends
 * nothing twice and returns the first answer), remembered durably for `ttlMs` (24 h by default).
 *
 * Kept in a journal file of our own under the data dir rather than in the control database: the
 * check sits on the ingest hot path (a PostgreSQL round trip per request would cost more than the
 * append), the journal shares one fdatasync among concurrent requests as the log does, and expiry
 * is a rewrite at open instead of a DELETE sweep. Only successful answers are remembered: a refused
 * request appended nothing, so retrying it is already safe and may succeed later (after a 429).
 *
 * A crash between the durable append and the journal write must not let a retry append again, so
 * an attempt first writes an intent (scope, key and the stream's end offsets) and tags its batch's
 * last record with the key (`runnel-idempotency` header). On open, an intent without an answer is
 * settled from the log: the tagged batch found after the recorded offsets means it was appended
 * (its answer is restored), none means it was not (the intent is dropped). Until then an intent
 * is kept in memory too, so a rewrite of the journal (compaction) carries it over.
 */
import { createHash } from "node:crypto";
import { type FileHandle, mkdir, open, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { Clock } from "../core/clock.js";
import { removeStaleTemps, writeFileDurable } from "../core/durable-file.js";
import { RunnelError } from "../core/errors.js";
import type { EventLog } from "../log/types.js";

export const IDEMPOTENCY_HEADER = "runnel-idempotency";

export interface StoredAnswer {
  readonly status: number;
  readonly body: unknown;
}

interface Entry extends StoredAnswer {
  readonly scope: string;
  readonly key: string;
  readonly hash: string;
  readonly at: number;
}

/** Written before the append; settled by the answer, or by the log after a crash. */
interface Intent {
  readonly intent: true;
  readonly scope: string;
  readonly key: string;
  readonly hash: string;
  readonly at: number;
  readonly stream: string;
  readonly from: readonly number[];
}

/** The header value tagging an idempotent batch's last record. */
export function idempotencyTag(scope: string, key: string, events: number): string {
  return JSON.stringify({ s: scope, k: key, n: events });
}

export type IdempotencyLog = Pick<EventLog, "hasStream" | "endOffsets" | "read">;

export interface IdempotencyStoreOptions {
  readonly file: string;
  readonly clock: Clock;
  readonly ttlMs: number;
  /** For intents (end offsets before an append) and settling them after a crash. */
  readonly log?: IdempotencyLog;
  /**
   * Journal lines past which it is rewritten with only the live keys (when they are fewer than half
   * of its lines). Default 10,000.
   */
  readonly compactAfterLines?: number;
}

const COMPACT_AFTER_LINES = 10_000;

/** Bytes of journal text handed to one write when the journal is rewritten. */
const WRITE_CHUNK = 1 << 18;

const MAX_KEY_LENGTH = 255;
const PRINTABLE = /^[\x21-\x7e]+$/;

export class IdempotencyStore {
  private readonly entries = new Map<string, Entry>();
  /** Intents written and not answered yet (the attempt runs, or failed and may have appended). */
  private readonly intents = new Map<string, Intent>();
  private readonly inFlight = new Map<string, { hash: string; done: Promise<StoredAnswer> }>();
  private fh: FileHandle | undefined;
  private queue: string[] = [];
  private waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  private flushing: Promise<void> | undefined;
  private journalLines = 0;

  constructor(private readonly options: IdempotencyStoreOptions) {}

  async open(): Promise<void> {
    await mkdir(dirname(this.options.file), { recursive: true });
    await removeStaleTemps(this.options.file);
    let text = "";
    try {
      text = await readFile(this.options.file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    const oldest = this.options.clock.now() - this.options.ttlMs;
    const intents = new Map<string, Intent>();
    for (const line of text.split("\n")) {
      if (line === "") continue;
      let entry: Entry | Intent;
      try {
        entry = JSON.parse(line) as Entry | Intent;
      } catch {
        continue; // A torn last line from a crash mid-write: its request was never answered.
      }
      if (entry.at < oldest) continue;
      const id = mapKey(entry.scope, entry.key);
      if ("intent" in entry) intents.set(id, entry);
      else {
        this.entries.set(id, entry);
        intents.delete(id);
      }
    }
    for (const [id, intent] of intents) {
      if (this.entries.has(id)) continue;
      const accepted = await this.findTagged(intent);
      if (accepted !== undefined) {
        const { scope, key, hash, at } = intent;
        this.entries.set(id, { scope, key, hash, at, status: 200, body: { accepted } });
      }
    }
    await this.rewrite();
  }

  async close(): Promise<void> {
    await this.flushing;
    await this.fh?.close();
    this.fh = undefined;
  }

  /** Checks the key's shape; throws invalid_input naming the header. */
  static checkKey(key: string): void {
    if (key.length === 0 || key.length > MAX_KEY_LENGTH || !PRINTABLE.test(key)) {
      throw new RunnelError(
        "invalid_input",
        `Idempotency-Key must be 1 to ${MAX_KEY_LENGTH} printable ASCII characters without spaces`,
      );
    }
  }

  static hashBody(contentType: string, body: Uint8Array): string {
    return createHash("sha256").update(contentType).update("\n").update(body).digest("base64url");
  }

  /**
   * Runs `attempt` once per (scope, key): a retry with the same body gets the stored answer, a
   * retry while the first is still running waits for it, a different body is a conflict.
   */
  async run(
    scope: string,
    key: string,
    hash: string,
    attempt: () => Promise<StoredAnswer>,
    stream?: string,
  ): Promise<StoredAnswer & { replayed: boolean }> {
    const id = mapKey(scope, key);
    const stored = this.entries.get(id);
    if (stored && stored.at >= this.options.clock.now() - this.options.ttlMs) {
      if (stored.hash !== hash) throw reused(key);
      return { status: stored.status, body: stored.body, replayed: true };
    }
    const running = this.inFlight.get(id);
    if (running) {
      if (running.hash !== hash) throw reused(key);
      const answer = await running.done;
      return { ...answer, replayed: true };
    }
    const done = (async () => {
      const log = this.options.log;
      if (stream !== undefined && log?.hasStream(stream)) {
        const from = await log.endOffsets(stream);
        const intent: Intent = { intent: true, scope, key, hash, at: this.options.clock.now(), stream, from };
        this.intents.set(id, intent);
        await this.write(intent);
      }
      const answer = await attempt();
      await this.remember({ scope, key, hash, at: this.options.clock.now(), ...answer });
      return answer;
    })();
    this.inFlight.set(id, { hash, done });
    try {
      return { ...(await done), replayed: false };
    } finally {
      this.inFlight.delete(id);
    }
  }

  /** Number of live keys (for tests and metrics). */
  get size(): number {
    return this.entries.size;
  }

  private remember(entry: Entry): Promise<void> {
    const id = mapKey(entry.scope, entry.key);
    this.entries.set(id, entry);
    this.intents.delete(id);
    return this.write(entry);
  }

  private write(line: Entry | Intent): Promise<void> {
    this.queue.push(`${JSON.stringify(line)}\n`);
    const written = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.flushing ??= this.flush();
    return written;
  }

  /** Concurrent requests share one write and one fdatasync, as the log's group commit does. */
  private async flush(): Promise<void> {
    const compactAfter = this.options.compactAfterLines ?? COMPACT_AFTER_LINES;
    try {
      while (this.queue.length > 0) {
        const lines = this.queue;
        const waiters = this.waiters;
        this.queue = [];
        this.waiters = [];
        try {
          if (this.journalLines > compactAfter && this.journalLines > 2 * (this.entries.size + this.intents.size)) {
            // The lines of this group are in the rewrite: their entries and intents are in the maps.
            this.dropExpired();
            await this.rewrite();
          } else {
            // appendFile, not write: write() may write less than it was given.
            await this.fh!.appendFile(lines.join(""));
            await this.fh!.datasync();
            this.journalLines += lines.length;
          }
          for (const w of waiters) w.resolve();
        } catch (e) {
          for (const w of waiters) w.reject(e);
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }

  /** The accepted count of the intent's batch if the log holds it, else undefined. */
  private async findTagged(intent: Intent): Promise<number | undefined> {
    const log = this.options.log;
    if (log === undefined || !log.hasStream(intent.stream)) return undefined;
    const ends = await log.endOffsets(intent.stream);
    for (let p = 0; p < ends.length; p++) {
      let offset = intent.from[p] ?? 0;
      while (offset < ends[p]!) {
        const records = await log.read(intent.stream, p, offset, { maxRecords: 1000 });
        if (records.length === 0) break;
        for (const r of records) {
          const tag = r.headers?.[IDEMPOTENCY_HEADER];
          if (tag === undefined) continue;
          const found = JSON.parse(tag) as FoundTag;
          if (found.s === intent.scope && found.k === intent.key) return found.n;
        }
        offset = records[records.length - 1]!.offset + 1;
      }
    }
    return undefined;
  }

  private dropExpired(): void {
    const oldest = this.options.clock.now() - this.options.ttlMs;
    for (const [id, entry] of this.entries) if (entry.at < oldest) this.entries.delete(id);
    for (const [id, intent] of this.intents) if (intent.at < oldest) this.intents.delete(id);
  }

  /** Writes the live entries and the unanswered intents to a new journal and swaps it in atomically. */
  private async rewrite(): Promise<void> {
    await writeFileDurable(this.options.file, this.journalChunks());
    await this.fh?.close();
    this.fh = await open(this.options.file, "a");
    this.journalLines = this.entries.size + this.intents.size;
  }

  /** The journal's text in chunks of about WRITE_CHUNK bytes, so a large one is never one string. */
  private *journalChunks(): Generator<Buffer> {
    let text = "";
    // Entries first: an intent retrying an expired key's entry must come after it to stay pending.
    for (const lines of [this.entries.values(), this.intents.values()]) {
      for (const line of lines) {
        text += `${JSON.stringify(line)}\n`;
        if (text.length >= WRITE_CHUNK) {
          yield Buffer.from(text);
          text = "";
        }
      }
    }
    if (text.length > 0) yield Buffer.from(text);
  }
}

export interface FoundTag {
  readonly s: string;
  readonly k: string;
  readonly n: number;
}

function mapKey(scope: string, key: string): string {
  return `${scope}\u0000${key}`;
}

function reused(key: string): RunnelError {
  return new RunnelError(
    "conflict",
    `Idempotency-Key "${key}" was already used with a different request body; use a new key for a new request`,
  );
}
