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
 * The batch's last record also carries the key as a header (`runnel-idempotency`), so an operator
 * can tell from the log alone whether a batch was appended if the process died between the
 * append and the journal write.
 */
import { createHash } from "node:crypto";
import { type FileHandle, mkdir, open, readFile, rename } from "node:fs/promises";
import { dirname } from "node:path";
import type { Clock } from "../core/clock.js";
import { RunnelError } from "../core/errors.js";

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

export interface IdempotencyStoreOptions {
  readonly file: string;
  readonly clock: Clock;
  readonly ttlMs: number;
}

const MAX_KEY_LENGTH = 255;
const PRINTABLE = /^[\x21-\x7e]+$/;

export class IdempotencyStore {
  private readonly entries = new Map<string, Entry>();
  private readonly inFlight = new Map<string, { hash: string; done: Promise<StoredAnswer> }>();
  private fh: FileHandle | undefined;
  private queue: string[] = [];
  private waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  private flushing = false;
  private journalLines = 0;

  constructor(private readonly options: IdempotencyStoreOptions) {}

  async open(): Promise<void> {
    await mkdir(dirname(this.options.file), { recursive: true });
    let text = "";
    try {
      text = await readFile(this.options.file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    const oldest = this.options.clock.now() - this.options.ttlMs;
    for (const line of text.split("\n")) {
      if (line === "") continue;
      let entry: Entry;
      try {
        entry = JSON.parse(line) as Entry;
      } catch {
        continue; // A torn last line from a crash mid-write: its request was never answered.
      }
      if (entry.at >= oldest) this.entries.set(mapKey(entry.scope, entry.key), entry);
    }
    await this.rewrite();
  }

  async close(): Promise<void> {
    while (this.flushing) await new Promise((r) => setTimeout(r, 5));
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
    this.entries.set(mapKey(entry.scope, entry.key), entry);
    this.queue.push(`${JSON.stringify(entry)}\n`);
    const written = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.flushing) void this.flush();
    return written;
  }

  /** Concurrent requests share one write and one fdatasync, as the log's group commit does. */
  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const lines = this.queue;
        const waiters = this.waiters;
        this.queue = [];
        this.waiters = [];
        try {
          if (this.journalLines > 10_000 && this.journalLines > 2 * this.entries.size) {
            this.dropExpired();
            await this.rewrite();
          } else {
            await this.fh!.write(lines.join(""));
            await this.fh!.datasync();
            this.journalLines += lines.length;
          }
          for (const w of waiters) w.resolve();
        } catch (e) {
          for (const w of waiters) w.reject(e);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  private dropExpired(): void {
    const oldest = this.options.clock.now() - this.options.ttlMs;
    for (const [id, entry] of this.entries) if (entry.at < oldest) this.entries.delete(id);
  }

  /** Writes the live entries to a new journal and swaps it in atomically. */
  private async rewrite(): Promise<void> {
    const tmp = `${this.options.file}.tmp`;
    const out = await open(tmp, "w");
    try {
      let text = "";
      for (const entry of this.entries.values()) text += `${JSON.stringify(entry)}\n`;
      await out.write(text);
      await out.datasync();
    } finally {
      await out.close();
    }
    await rename(tmp, this.options.file);
    const dir = await open(dirname(this.options.file), "r");
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    await this.fh?.close();
    this.fh = await open(this.options.file, "a");
    this.journalLines = this.entries.size;
  }
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
