import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  createPglite,
  type PgliteTemplate,
  pgliteVersion,
  usablePgliteTemplate,
  writePgliteTemplate,
} from "../../src/control/pglite-template.js";

describe("PGlite template (a first start without initdb)", () => {
  let root: string;
  let template: PgliteTemplate;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "runnel-pglite-template-"));
    template = { dir: join(root, "template"), manifest: join(root, "t.json") };
    await writePgliteTemplate(template);
  });
  after(() => rm(root, { recursive: true, force: true }));

  it("starts a new data dir from the template, and the cluster is a working, persistent one", async () => {
    assert.ok(usablePgliteTemplate(template), "the template written by this PGlite is usable");
    const dir = join(root, "fresh");
    const db = await createPglite(dir, template);
    await db.query("CREATE TABLE kept (v int)");
    await db.query("INSERT INTO kept VALUES (42)");
    await db.close();
    assert.ok(existsSync(join(dir, "PG_VERSION")), "the cluster lives in the data dir");

    const again = await createPglite(dir, template);
    try {
      assert.deepEqual((await again.query<{ v: number }>("SELECT v FROM kept")).rows, [{ v: 42 }]);
    } finally {
      await again.close();
    }
  });

  it("starts from a template whose empty directories were dropped, as npm's packing drops them", async () => {
    const packed = { dir: join(root, "packed"), manifest: template.manifest };
    await cp(template.dir, packed.dir, { recursive: true });
    const empty = (await readdir(packed.dir, { recursive: true, withFileTypes: true }))
      .filter((e) => e.isDirectory())
      .map((e) => join(e.parentPath, e.name))
      .filter((d) => readdirSync(d).length === 0);
    assert.ok(empty.length > 0, "a fresh cluster has empty directories");
    for (const d of empty) await rm(d, { recursive: true });
    const db = await createPglite(join(root, "from-packed"), packed);
    try {
      assert.deepEqual((await db.query<{ one: number }>("SELECT 1 AS one")).rows, [{ one: 1 }]);
    } finally {
      await db.close();
    }
  });

  it("runs initdb when PostgreSQL cannot start from the copied template", async () => {
    const damaged = { dir: join(root, "damaged"), manifest: template.manifest };
    await cp(template.dir, damaged.dir, { recursive: true });
    await rm(join(damaged.dir, "global", "pg_control"));
    const db = await createPglite(join(root, "from-damaged"), damaged);
    try {
      await db.query("CREATE TABLE t (v int)");
      assert.deepEqual((await db.query<{ n: number }>("SELECT count(*)::int AS n FROM t")).rows, [{ n: 0 }]);
    } finally {
      await db.close();
    }
  });

  it("never lays the template over an existing cluster", async () => {
    const dir = join(root, "existing");
    const first = await createPglite(dir, template);
    await first.query("CREATE TABLE mine (v int)");
    await first.close();
    const reopened = await createPglite(dir, template);
    try {
      const rows = (await reopened.query<{ n: number }>("SELECT count(*)::int AS n FROM mine")).rows;
      assert.deepEqual(rows, [{ n: 0 }]);
    } finally {
      await reopened.close();
    }
  });

  it("skips a template made by another PGlite version and runs initdb instead", async () => {
    const stale = { dir: template.dir, manifest: join(root, "stale.json") };
    await writeFile(stale.manifest, JSON.stringify({ pglite: `${pgliteVersion()}-other` }));
    assert.equal(usablePgliteTemplate(stale), undefined);
    const db = await createPglite(join(root, "stale-dir"), stale);
    try {
      assert.deepEqual((await db.query<{ one: number }>("SELECT 1 AS one")).rows, [{ one: 1 }]);
    } finally {
      await db.close();
    }
  });

  it("falls back to initdb, leaving no half-copied files, when the template cannot be copied", async () => {
    // A template whose copy fails part-way: fs.cp refuses to copy a FIFO (ERR_FS_CP_FIFO_PIPE).
    const broken = { dir: join(root, "broken"), manifest: template.manifest };
    await cp(template.dir, broken.dir, { recursive: true });
    execFileSync("mkfifo", [join(broken.dir, "unreadable")]);
    const dir = join(root, "broken-dir");
    await mkdir(dir);
    const db = await createPglite(dir, broken);
    try {
      await db.query("CREATE TABLE t (v int)");
      assert.deepEqual((await db.query<{ n: number }>("SELECT count(*)::int AS n FROM t")).rows, [{ n: 0 }]);
      assert.ok((await readdir(dir)).includes("PG_VERSION"));
      assert.ok(!(await readdir(dir)).includes("unreadable"), "nothing of the failed copy is left");
      assert.deepEqual(
        (await readdir(root)).filter((name) => name.includes(".template-")),
        [],
        "no staging directory is left",
      );
    } finally {
      await db.close();
    }
  });

  it("gives every in-memory cluster of a process a new, empty one, whatever the ones before it hold", async () => {
    const first = await createPglite(undefined, template);
    try {
      await first.query("CREATE TABLE kept (v int)");
      await first.query("INSERT INTO kept VALUES (1)");
    } finally {
      await first.close();
    }
    const [a, b] = await Promise.all([createPglite(undefined, template), createPglite(undefined, template)]);
    try {
      await a.query("CREATE TABLE t (v int)");
      await a.query("INSERT INTO t VALUES (1)");
      const tables = "SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'";
      assert.deepEqual((await b.query<{ n: number }>(tables)).rows, [{ n: 0 }], "nothing of the first, nor of a");
      assert.deepEqual((await a.query<{ n: number }>(tables)).rows, [{ n: 1 }]);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("has no template when none was built", () => {
    assert.equal(usablePgliteTemplate({ dir: join(root, "none"), manifest: join(root, "none.json") }), undefined);
  });
});
