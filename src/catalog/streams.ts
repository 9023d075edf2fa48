/**
 * The lifecycle of a stream across the seams: catalogue row (control store), log topic and
 * analytics table. Creation goes log → table → catalogue so that a stream visible in the
 * catalogue is always writable and queryable; deletion goes the other way.
 */

import { type FieldColumn, fromCatalogType, isBaseColumn } from "../analytics/duckdb/column-types.js";
import { quoteIdent } from "../analytics/duckdb/identifiers.js";
import type { AnalyticsLoader } from "../analytics/loader.js";
import type { AnalyticsStore } from "../analytics/types.js";
import type { ControlStore, RollupSpec, StreamDefinition } from "../control/types.js";
import { RunnelError } from "../core/errors.js";
import { SerialQueue } from "../core/serial-queue.js";
import type { EventLog } from "../log/types.js";
import type { ColumnCatalog } from "./columns.js";
import { MAX_ROLLUPS_PER_STREAM } from "./rollup-spec.js";
import { checkStreamName, type StreamSpec } from "./stream-spec.js";

export class StreamCatalog {
  /** Definitions by name: ingestion asks for them on every request. */
  private readonly cache = new Map<string, StreamDefinition>();
  /** Streams whose log, table and loader this instance has made sure of, by name, with the creation time seen. */
  private readonly materialised = new Map<string, string>();
  /** Creations, deletions and the changes heard from other instances (sync*), one at a time. */
  private readonly changes = new SerialQueue();

  constructor(
    private readonly deps: {
      readonly control: ControlStore;
      readonly log: EventLog;
      readonly analytics: AnalyticsStore;
      readonly loader: AnalyticsLoader;
      /** Column types of every stream's fields, fixed from the stream's schema at creation. */
      readonly columns: ColumnCatalog;
      /**
       * The analytics archive, whose files of a deleted stream go with it, and which settles
       * rollups added to or removed from a stream (backfills or drops them).
       */
      readonly archive?: {
        dropStream(name: string): Promise<void>;
        settleRollups(name: string): Promise<void>;
      };
    },
  ) {}

  get columns(): ColumnCatalog {
    return this.deps.columns;
  }

  /** Loads the catalogue and makes sure every stream has its log and table (after a crash mid-creation too). */
  async open(): Promise<void> {
    for (const stream of await this.deps.control.listStreams()) {
      await this.materialise(stream);
      if (stream.analytics !== false) await this.adoptTableColumns(stream.name);
      this.cache.set(stream.name, stream);
      this.materialised.set(stream.name, stream.createdAt);
    }
  }

  /**
   * Registers the columns a table already has when none are registered: a table loaded before
   * column types were kept (an older version widened columns as values came) keeps its types,
   * rather than ingest typing its fields afresh from their next values.
   */
  private async adoptTableColumns(name: string): Promise<void> {
    const { analytics, columns } = this.deps;
    if ((await columns.typesOf(name)).size > 0) return;
    const empty = await analytics.query(`SELECT * FROM ${quoteIdent(name)} LIMIT 0`, [], { kind: "all" });
    const found: FieldColumn[] = [];
    for (const c of empty.columns) {
      const type = fromCatalogType(c.type);
      if (type !== undefined && !isBaseColumn(c.name)) found.push({ name: c.name, type });
    }
    if (found.length > 0) await columns.register(name, found, Math.max(columns.maxColumns, found.length));
  }

  create(spec: StreamSpec & { readonly derivedFrom?: string }): Promise<StreamDefinition> {
    return this.changes.run(() => this.createNow(spec));
  }

  private async createNow(spec: StreamSpec & { readonly derivedFrom?: string }): Promise<StreamDefinition> {
    if (this.cache.has(spec.name) || (await this.deps.control.getStream(spec.name))) {
      throw new RunnelError("conflict", `stream "${spec.name}" already exists`);
    }
    await this.checkTableNames(spec);
    const definition: StreamDefinition = { ...spec, createdAt: new Date().toISOString() };
    const declared = spec.analytics === false ? [] : this.deps.columns.declaredBy(spec);
    await this.materialise(definition);
    const stored = await this.deps.control.createStream(spec);
    if (declared.length > 0) await this.deps.columns.register(stored.name, declared);
    this.cache.set(stored.name, stored);
    this.materialised.set(stored.name, stored.createdAt);
    return stored;
  }

  /** Streams and rollups share the query namespace: a name either one holds is taken for both. */
  private async checkTableNames(spec: StreamSpec): Promise<void> {
    const owners = await this.rollupOwners();
    const rollupOf = owners.get(spec.name);
    if (rollupOf !== undefined) {
      throw new RunnelError("conflict", `"${spec.name}" is the name of a rollup of stream "${rollupOf}"`);
    }
    for (const [i, r] of (spec.rollups ?? []).entries()) {
      const owner = owners.get(r.name);
      if (owner !== undefined || (await this.get(r.name)) !== undefined) {
        throw new RunnelError(
          "conflict",
          `rollups[${i}].name: "${r.name}" is taken by ${owner === undefined ? "a stream" : `a rollup of stream "${owner}"`}`,
        );
      }
    }
  }

  /**
   * Adds a rollup to an existing stream (docs/rollups.md, "Adding and removing a rollup"): it is
   * declared `building`, and the archiver backfills it from the stream's rows in both tiers, then
   * keeps it. Resolves once declared; the backfill goes on (the stream shows its state).
   */
  async addRollup(name: string, rollup: RollupSpec): Promise<StreamDefinition> {
    const stream = await this.get(name);
    if (!stream) throw new RunnelError("stream_not_found", `stream "${name}" does not exist`);
    if (stream.analytics === false) {
      throw new RunnelError("invalid_input", `stream "${name}" has analytics false: it has no table to roll up`);
    }
    checkStreamName(rollup.name, "name");
    if (rollup.name === name) throw new RunnelError("invalid_input", "name is the stream's own name");
    // A rollup of this stream of the name is refused in the transaction below.
    const owner = (await this.rollupOwners()).get(rollup.name);
    if ((owner !== undefined && owner !== name) || (await this.get(rollup.name)) !== undefined) {
      throw new RunnelError(
        "conflict",
        `name: "${rollup.name}" is taken by ${owner === undefined ? "a stream" : `a rollup of stream "${owner}"`}`,
      );
    }
    const updated = await this.deps.control.updateStreamRollups(name, (current) => {
      const same = current.find((r) => r.name === rollup.name);
      if (same !== undefined) {
        throw new RunnelError(
          "conflict",
          `name: stream "${name}" already has a rollup "${rollup.name}"${same.state === "dropping" ? " (being dropped)" : ""}`,
        );
      }
      if (current.length >= MAX_ROLLUPS_PER_STREAM) {
        throw new RunnelError(
          "invalid_input",
          `stream "${name}" has ${current.length} rollups, the most a stream may have`,
        );
      }
      return [...current, { ...rollup, state: "building" }];
    });
    this.cache.set(name, updated);
    void this.settle(name);
    return updated;
  }

  /**
   * Removes a rollup: declared `dropping`, then the archiver (at once, between two of its runs)
   * drops its table, so queries no longer find it, deletes its files, then its declaration.
   */
  async removeRollup(name: string, rollup: string): Promise<StreamDefinition> {
    const stream = await this.get(name);
    if (!stream) throw new RunnelError("stream_not_found", `stream "${name}" does not exist`);
    const updated = await this.deps.control.updateStreamRollups(name, (current) => {
      if (!current.some((r) => r.name === rollup && r.state !== "dropping")) {
        throw new RunnelError("not_found", `stream "${name}" has no rollup "${rollup}"`);
      }
      return current.map((r) => (r.name === rollup ? { ...r, state: "dropping" as const } : r));
    });
    this.cache.set(name, updated);
    void this.settle(name);
    return updated;
  }

  /** Has the archiver settle the stream's rollups now, then reads back what it declared. */
  private async settle(name: string): Promise<void> {
    await this.deps.archive?.settleRollups(name);
    await this.get(name, { fresh: true }).catch(() => undefined);
  }

  /** Rollup name → the stream that declares it (being built or dropped too: the name is held). */
  private async rollupOwners(): Promise<Map<string, string>> {
    const owners = new Map<string, string>();
    for (const stream of await this.deps.control.listStreams()) {
      for (const r of stream.rollups ?? []) owners.set(r.name, stream.name);
    }
    return owners;
  }

  /**
   * The stream's definition, from the cache unless `fresh`. A definition whose rollups are being
   * built or dropped is always read afresh: the archiver settles them in the control database.
   */
  async get(name: string, options: { readonly fresh?: boolean } = {}): Promise<StreamDefinition | undefined> {
    const cached = this.cache.get(name);
    if (cached && options.fresh !== true && !cached.rollups?.some((r) => r.state !== undefined)) return cached;
    const stored = await this.deps.control.getStream(name);
    if (stored) this.cache.set(name, stored);
    else this.cache.delete(name);
    return stored;
  }

  /** Same as get, shaped for the ingestor. */
  getStream(name: string): Promise<StreamDefinition | undefined> {
    return this.get(name);
  }

  async list(): Promise<StreamDefinition[]> {
    return this.deps.control.listStreams();
  }

  delete(name: string): Promise<void> {
    return this.changes.run(() => this.deleteNow(name));
  }

  private async deleteNow(name: string): Promise<void> {
    const existing = await this.get(name);
    if (!existing) throw new RunnelError("stream_not_found", `stream "${name}" does not exist`);
    // Ingest here stops finding it first.
    this.cache.delete(name);
    await this.deps.control.deleteStream(name);
    await this.forget(name);
    await this.deps.archive?.dropStream(name);
    await this.deps.log.deleteStream(name);
  }

  /** Drops what this instance holds of a stream: cached definition, column types, its table and its loading. */
  private async forget(name: string): Promise<void> {
    this.cache.delete(name);
    this.materialised.delete(name);
    this.deps.columns.forget(name);
    this.deps.loader.unfollow(name);
    await this.deps.analytics.dropTable(name);
  }

  // Changes made through another instance (src/control/change-feed.ts), each read from the store.

  /**
   * Makes sure of the log, table and loading of a stream another instance created, or forgets
   * the table and loading of one it deleted (the log and the archive are shared: its deleter
   * removed them).
   */
  syncStream(name: string): Promise<void> {
    return this.changes.run(async () => this.follow(name, await this.deps.control.getStream(name)));
  }

  /** syncStream for every stream, stored or known here. */
  syncStreams(): Promise<void> {
    return this.changes.run(async () => {
      const stored = new Map((await this.deps.control.listStreams()).map((s) => [s.name, s]));
      for (const name of new Set([...this.materialised.keys(), ...stored.keys()])) {
        await this.follow(name, stored.get(name));
      }
    });
  }

  private async follow(name: string, stored: StreamDefinition | undefined): Promise<void> {
    const seen = this.materialised.get(name);
    if (seen !== undefined && seen !== stored?.createdAt) await this.forget(name);
    if (stored === undefined) {
      this.cache.delete(name);
      return;
    }
    if (this.materialised.get(name) === stored.createdAt) return;
    await this.materialise(stored);
    this.cache.set(name, stored);
    this.materialised.set(name, stored.createdAt);
  }

  private async materialise(stream: StreamDefinition): Promise<void> {
    const { log, analytics, loader } = this.deps;
    if (!log.hasStream(stream.name)) {
      await log.createStream(stream.name, {
        partitions: stream.partitions,
        ...(stream.retentionMs !== undefined && { retentionMs: stream.retentionMs }),
      });
    }
    // A log-only stream has no table and no loader: nothing indexes its events.
    if (stream.analytics === false) return;
    await analytics.ensureTable(stream);
    loader.follow(stream);
  }
}
