/**
 * The ArchiveLocation contract, run on both implementations: a local directory and an
 * S3-compatible bucket (the moto server of scripts/s3.sh).
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type ArchiveLocation, archiveKey, LocalDirLocation } from "../../src/archive/location.js";
import { S3Location } from "../../src/archive/s3-location.js";
import { isRunnelError } from "../../src/core/errors.js";
import { newBucket, s3ClientConfig } from "./s3-server.js";

async function stage(location: ArchiveLocation, text: string): Promise<string> {
  const path = location.stagingPath("t");
  await writeFile(path, text);
  return path;
}

function conformance(name: string, make: (localDir: string) => Promise<ArchiveLocation>): void {
  describe(`ArchiveLocation conformance: ${name}`, () => {
    let dir: string;
    let location: ArchiveLocation;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), "runnel-location-"));
      location = await make(join(dir, "local"));
      await location.open();
    });
    after(async () => {
      (location as { close?: () => void }).close?.();
      await rm(dir, { recursive: true, force: true });
    });

    it("puts a staged file under its key, readable from a local path, and lists it", async () => {
      const key = archiveKey("clicks", 3, 100, 250, Date.UTC(2026, 0, 31, 23, 59));
      assert.equal(key, "clicks/2026-01-31/p3/100-250.parquet");
      const staged = await stage(location, "first");
      await location.put(staged, key);
      assert.equal(await stat(staged).catch(() => undefined), undefined, "the staged file is gone");
      assert.equal(await readFile(await location.localPath(key), "utf8"), "first");
      assert.deepEqual(await location.list("clicks"), [key]);
      assert.ok((await location.list("")).includes(key));
      assert.deepEqual(await location.list("clicks_other"), []);
      // A second put of an uncommitted key replaces it (a retry after a failed commit).
      await location.put(await stage(location, "second"), key);
      assert.equal(await readFile(await location.localPath(key), "utf8"), "second");
    });

    it("deletes files; staging is cleared; keys cannot leave the archive", async () => {
      const keys = ["orders/2026-01-01/p0/0-10.parquet", "orders/2026-01-01/p1/0-5.parquet"];
      for (const key of keys) await location.put(await stage(location, key), key);
      assert.deepEqual((await location.list("orders")).sort(), keys);
      await location.delete([keys[0]!]);
      assert.deepEqual(await location.list("orders"), [keys[1]]);
      await location.delete(keys);
      assert.deepEqual(await location.list("orders"), []);
      const left = await stage(location, "left over");
      await location.clearStaging();
      assert.equal(await stat(left).catch(() => undefined), undefined);
      assert.ok(!(await location.list("")).some((k) => k.includes(".staging")));
      await assert.rejects(location.localPath("../escape.parquet"));
    });
  });
}

conformance("local directory", async (localDir) => new LocalDirLocation(localDir));

let bucket = "";
conformance("S3 (moto)", async (localDir) => {
  bucket = await newBucket();
  return new S3Location({ bucket, prefix: "runnel/archive", localDir, client: s3ClientConfig() });
});

describe("S3 location specifics", () => {
  it("fetches a file it has no local copy of, e.g. on another machine", async () => {
    const dir = await mkdtemp(join(tmpdir(), "runnel-location-"));
    const b = await newBucket();
    const writer = new S3Location({ bucket: b, prefix: "", localDir: join(dir, "a"), client: s3ClientConfig() });
    const reader = new S3Location({ bucket: b, prefix: "", localDir: join(dir, "b"), client: s3ClientConfig() });
    try {
      await writer.open();
      await reader.open();
      const key = "s/2026-01-01/p0/0-1.parquet";
      await writer.put(await stage(writer, "remote"), key);
      const path = await reader.localPath(key);
      assert.ok(path.startsWith(join(dir, "b")));
      assert.equal(await readFile(path, "utf8"), "remote");
    } finally {
      writer.close();
      reader.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses to open on a bucket that does not exist, naming it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "runnel-location-"));
    const location = new S3Location({
      bucket: "runnel-missing-bucket",
      prefix: "",
      localDir: dir,
      client: s3ClientConfig(),
    });
    try {
      await assert.rejects(
        location.open(),
        (e: unknown) => isRunnelError(e) && e.code === "not_ready" && /runnel-missing-bucket/.test(e.message),
      );
    } finally {
      location.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
