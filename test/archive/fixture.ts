/**
 * A store and a control database with an archive in a temporary directory, and a deterministic
 * data set spread over days, partitions and users (late events included), for the archive tests.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDbAnalyticsStore } from "../../src/analytics/duckdb/store.js";
import type { AnalyticsRow } from "../../src/analytics/types.js";
import { Archiver, type ArchiverOptions } from "../../src/archive/archiver.js";
import { type ArchiveLocation, LocalDirLocation } from "../../src/archive/location.js";
import { S3Location } from "../../src/archive/s3-location.js";
import { createPgliteControlStore } from "../../src/control/index.js";
import type { ControlStore, StreamDefinition } from "../../src/control/types.js";
import { newBucket, s3ClientConfig } from "./s3-server.js";

export const DAY = 86_400_000;
export const HOUR = 3_600_000;
/** "Now" of the tests: 2026-03-10T12:00Z. */
export const NOW = Date.UTC(2026, 2, 10, 12);

export const USERS = ["alice", "bob", "carol", "dave", "erin"];

/**
 * `count` events per partition, one an hour going back `days` days, in offset order, with every
 * seventh one late (its event time a day and a half earlier than its neighbours'), so event time
 * is not monotonic in offsets.
 */
export function events(partitions: number, count: number, days = 10): AnalyticsRow[][] {
  const out: AnalyticsRow[][] = [];
  for (let p = 0; p < partitions; p++) {
    const rows: AnalyticsRow[] = [];
    for (let i = 0; i < count; i++) {
      const base = NOW - days * DAY + Math.floor((i * days * DAY) / count);
      const time = i % 7 === 3 ? base - 1.5 * DAY : base;
      const user = USERS[(i * 3 + p) % USERS.length]!;
      const fields: Record<string, unknown> = { data: (i % 13) + p * 0.5, kind: i % 2 === 0 ? "view" : "buy" };
      // A column that appears only in later rows: files written before it existed read it as NULL.
      if (i > count / 2) fields.region = i % 3 === 0 ? "eu" : "us";
      rows.push({ partition: p, offset: i, userId: user, time, ingestTime: time, fields });
    }
    out.push(rows);
  }
  return out;
}

export function definition(name: string, partitions: number, hotMs = 3 * DAY): StreamDefinition {
  return { name, partitions, timestampField: "timestamp", hotMs, createdAt: new Date(0).toISOString() };
}

export interface ArchiveFixture {
  readonly dir: string;
  readonly archiveDir: string;
  readonly control: ControlStore;
  store: DuckDbAnalyticsStore;
  readonly location: ArchiveLocation;
  archiver(options?: Partial<ArchiverOptions>): Archiver;
  /**
   * Closes the analytics store and opens it again on the same file: what a restart keeps. With
   * a bucket, the local copies of its files are lost too (a new machine), so they are fetched.
   */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export type LocationKind = "local" | "s3";

export async function archiveFixture(kind: LocationKind = "local"): Promise<ArchiveFixture> {
  const dir = await mkdtemp(join(tmpdir(), "runnel-archive-"));
  const archiveDir = join(dir, "archive");
  const control = createPgliteControlStore();
  await control.open();
  const open = async () => {
    const s = new DuckDbAnalyticsStore({ path: join(dir, "analytics.duckdb"), archiveDir, sandbox: { warm: 1 } });
    await s.open();
    return s;
  };
  const location =
    kind === "local"
      ? new LocalDirLocation(archiveDir)
      : new S3Location({
          bucket: await newBucket(),
          prefix: "archive",
          localDir: archiveDir,
          client: s3ClientConfig(),
        });
  await location.open();
  const fixture: ArchiveFixture = {
    dir,
    archiveDir,
    control,
    store: await open(),
    location,
    archiver(options = {}) {
      return new Archiver({ control, analytics: fixture.store, location, now: () => NOW, ...options });
    },
    async restart() {
      await fixture.store.close();
      if (kind === "s3") await rm(archiveDir, { recursive: true, force: true });
      fixture.store = await open();
    },
    async close() {
      await fixture.store.close();
      if (location instanceof S3Location) location.close();
      await control.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return fixture;
}

/** Creates the stream in both places and loads its events. */
export async function loadStream(f: ArchiveFixture, def: StreamDefinition, rows: AnalyticsRow[][]): Promise<void> {
  await f.control.createStream(def);
  await f.store.ensureTable(def);
  for (const partitionRows of rows) await f.store.apply(def.name, partitionRows[0]!.partition, partitionRows);
}
