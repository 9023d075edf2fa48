import type { ControlStore } from "../control/types.js";
import type { Clock } from "../core/clock.js";
import { systemClock } from "../core/clock.js";
import { RunnelError } from "../core/errors.js";

/**
 * Enrichment against a table (Flink's lookup join, `JOIN t FOR SYSTEM_TIME AS OF s.proc_time`):
 * each event is joined with the table's current row for its key, read through an LRU cache whose
 * entries expire after a TTL of processing time (the injected clock), as Flink's
 * `lookup.cache = PARTIAL` with `lookup.partial-cache.expire-after-write` and `max-rows`.
 *
 * The table is asynchronous (the control plane is a database) and operators are synchronous, so
 * the runner asks the operator to `prefetch` a chunk's keys before processing it: misses are
 * loaded once per distinct key per chunk, hits cost a Map lookup. As in Flink, a lookup reads the
 * table as it is when the event is processed: a replay after a crash may see a newer row.
 */
export type LookupRow = Readonly<Record<string, unknown>>;

/** A table to enrich from: one row (or none) per key. */
export interface LookupTable {
  readonly name: string;
  get(key: string): Promise<LookupRow | undefined>;
}

export interface LookupCacheOptions {
  /** Rows kept (least recently used dropped first). Default 10,000. */
  readonly maxRows?: number;
  /** Processing-time milliseconds a row (or a miss) is trusted. Default 60,000. */
  readonly ttlMs?: number;
  readonly clock?: Clock;
}

interface Entry {
  readonly row: LookupRow | undefined;
  readonly expiresAt: number;
}

/** LRU with a TTL per entry: a Map's insertion order is the recency order (a hit re-inserts). */
export class LruTtlCache {
  private readonly entries = new Map<string, Entry>();
  readonly maxRows: number;
  readonly ttlMs: number;
  private readonly clock: Clock;
  hits = 0;
  misses = 0;

  constructor(options: LookupCacheOptions = {}) {
    this.maxRows = options.maxRows ?? 10_000;
    this.ttlMs = options.ttlMs ?? 60_000;
    this.clock = options.clock ?? systemClock;
    if (!Number.isSafeInteger(this.maxRows) || this.maxRows < 1) {
      throw new RunnelError("invalid_input", "lookup cache maxRows must be a positive whole number");
    }
    if (!Number.isSafeInteger(this.ttlMs) || this.ttlMs < 0) {
      throw new RunnelError("invalid_input", "lookup cache ttl must be a whole number of milliseconds ≥ 0");
    }
  }

  get size(): number {
    return this.entries.size;
  }

  /** The cached entry when fresh: `{row}` (row may be undefined: a cached miss), else undefined. */
  lookup(key: string): Entry | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt <= this.clock.now()) {
      this.entries.delete(key);
      return undefined;
    }
    // Recency: move to the end of the insertion order.
    this.entries.delete(key);
    this.entries.set(key, e);
    return e;
  }

  put(key: string, row: LookupRow | undefined): void {
    this.entries.delete(key);
    this.entries.set(key, { row, expiresAt: this.clock.now() + this.ttlMs });
    if (this.entries.size > this.maxRows) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
  }

  invalidate(key?: string): void {
    if (key === undefined) this.entries.clear();
    else this.entries.delete(key);
  }
}

/** A table plus its cache: `prefetch` before a chunk, then `get` synchronously per event. */
export class CachedLookup {
  readonly cache: LruTtlCache;
  // Rows loaded by the last prefetch, so an entry evicted or expired between prefetch and use
  // (a chunk with more distinct keys than maxRows) is still found for that chunk.
  private chunkRows = new Map<string, LookupRow | undefined>();

  constructor(
    readonly table: LookupTable,
    options: LookupCacheOptions = {},
  ) {
    this.cache = new LruTtlCache(options);
  }

  /** Loads the keys not cached (each distinct key once); the table is read concurrently. */
  async prefetch(keys: Iterable<string>): Promise<void> {
    const rows = new Map<string, LookupRow | undefined>();
    const missingSet = new Set<string>();
    for (const k of keys) {
      if (rows.has(k) || missingSet.has(k)) continue;
      const hit = this.cache.lookup(k);
      if (hit !== undefined) {
        this.cache.hits++;
        rows.set(k, hit.row);
      } else missingSet.add(k);
    }
    const missing = [...missingSet];
    const loaded = await Promise.all(missing.map((k) => this.table.get(k)));
    for (let i = 0; i < missing.length; i++) {
      const k = missing[i] as string;
      this.cache.misses++;
      this.cache.put(k, loaded[i]);
      rows.set(k, loaded[i]);
    }
    this.chunkRows = rows;
  }

  /** The row for `key`; the key must have been prefetched (else it is looked up as a miss: undefined). */
  get(key: string): LookupRow | undefined {
    if (this.chunkRows.has(key)) return this.chunkRows.get(key);
    return this.cache.lookup(key)?.row;
  }
}

/** The control plane's per-user settings (`PUT /api/v1/users/{id}/settings`), keyed by user id. */
export function userSettingsTable(store: ControlStore): LookupTable {
  return {
    name: "user_settings",
    get: async (userId) => {
      const settings = await store.getSettings(userId);
      return Object.keys(settings).length === 0 ? undefined : settings;
    },
  };
}

/** The control plane's user profiles (no credentials), keyed by user id or by username. */
export function usersTable(store: ControlStore, by: "id" | "username" = "id"): LookupTable {
  return {
    name: "users",
    get: async (key) => {
      const u = by === "id" ? await store.getUserById(key) : await store.getUserByUsername(key);
      if (u === undefined) return undefined;
      return {
        id: u.id,
        username: u.username,
        email: u.email,
        role: u.role,
        disabled: u.disabled,
        created_at: u.createdAt,
      };
    },
  };
}
