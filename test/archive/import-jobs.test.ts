/**
 * Imports as server jobs (src/archive/import/jobs.ts): the upload is spooled then imported in the
 * background; one id runs once at a time; stopping stops a running import between batches, with
 * whole chunks committed; a status no job remembers comes from the manifest; spooled files go.
 */
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, it } from "node:test";
import { Importer } from "../../src/archive/import/importer.js";
import { ImportJobs } from "../../src/archive/import/jobs.js";
import { ColumnCatalog } from "../../src/catalog/columns.js";
import { isRunnelError } from "../../src/core/errors.js";
import { archiveFixture, DAY, definition, loadStream, NOW } from "./fixture.js";

const ADMIN = { userId: "u-admin", username: "admin", role: "admin" } as const;

function rows(count: number): string {
  const out: string[] = [];
  for (let n = 0; n < count; n++) {
    out.push(JSON.stringify({ user_id: `u${n % 9}`, timestamp: new Date(NOW - 20 * DAY + n * 1000).toISOString(), n }));
  }
  return `${out.join("\n")}\n`;
}

describe("import jobs", () => {
  it("runs an upload as a job, refuses a second run of one id, stops between batches, answers from the manifest later", async () => {
    const f = await archiveFixture();
    try {
      await loadStream(f, definition("clicks", 1), []);
      const archiver = f.archiver();
      await archiver.recover();
      const importer = new Importer({
        control: f.control,
        archiver,
        location: f.location,
        analytics: f.store,
        columns: new ColumnCatalog({ control: f.control, maxColumns: 100 }),
        clock: { now: () => NOW },
        maxEventBytes: 1 << 20,
        chunkRows: 1000,
      });
      const spoolDir = join(f.dir, "imports");
      const finished: string[] = [];
      const jobs = new ImportJobs({
        importer,
        control: f.control,
        spoolDir,
        onFinished: (p) => finished.push(`${p.id}:${p.state}`),
      });
      const upload = (id: string, text: string) =>
        jobs.start({ stream: "clicks", id, format: "ndjson", principal: ADMIN, body: Readable.from([text]) });

      const small = await upload("small", rows(2500));
      assert.equal(small.state, "running");
      await assert.rejects(upload("small", rows(10)), (e: unknown) => isRunnelError(e) && e.code === "conflict");
      await assert.rejects(
        jobs.start({ stream: "nope", format: "ndjson", principal: ADMIN, body: Readable.from(["{}"]) }),
        (e: unknown) => isRunnelError(e) && e.code === "stream_not_found",
      );
      for (let i = 0; i < 400 && small.state === "running"; i++) await new Promise((r) => setTimeout(r, 25));
      assert.deepEqual([small.state, small.rowsImported, small.chunks], ["done", 2500, 3]);

      // Stopping: the running import ends before its next batch; its committed chunks are whole.
      const big = await upload("big", rows(60_000));
      for (let i = 0; i < 400 && big.chunks === 0; i++) await new Promise((r) => setTimeout(r, 10));
      await jobs.close();
      assert.equal(big.state, "failed");
      assert.equal(big.error?.code, "not_ready");
      assert.match(big.error?.message ?? "", /the server is stopping; \d+ rows before it are committed/);
      assert.equal(big.rowsImported % 1000, 0);
      assert.ok(big.rowsImported < 60_000);
      assert.deepEqual(finished.sort(), ["big:failed", "small:done"]);
      assert.deepEqual(await readdir(spoolDir), [], "spooled uploads removed");
      await assert.rejects(upload("later", rows(10)), (e: unknown) => isRunnelError(e) && e.code === "not_ready");

      // Another process's view (after a restart): what the manifest holds.
      const restarted = new ImportJobs({ importer, control: f.control, spoolDir });
      const stored = await restarted.status("clicks", "small");
      assert.deepEqual([stored.state, stored.rowsImported, stored.chunks], ["stored", 2500, 3]);
      await assert.rejects(
        restarted.status("clicks", "none"),
        (e: unknown) => isRunnelError(e) && e.code === "not_found",
      );
    } finally {
      await f.close();
    }
  });
});
