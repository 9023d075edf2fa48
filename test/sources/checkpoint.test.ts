/** A source's position file: replaced whole (large ones too), with nothing left beside it. */
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { readCheckpoint, writeCheckpoint } from "../../src/sources/checkpoint.js";

test("a checkpoint is read back as written, replaced whole, with no temporary file left", async () => {
  const dir = await mkdtemp(join(tmpdir(), "runnel-source-cp-"));
  try {
    const file = join(dir, "sources", "app.position.json");
    assert.equal(await readCheckpoint(file), undefined);
    await writeCheckpoint(file, { inode: 1, offset: 10 });
    assert.deepEqual(await readCheckpoint(file), { inode: 1, offset: 10 });
    // Big enough that a single write() call would be free to write only part of it.
    const ends = { big: Array.from({ length: 1_000_000 }, (_, i) => i) };
    await writeCheckpoint(file, { inode: 1, offset: 20, ends });
    assert.deepEqual(await readCheckpoint(file), { inode: 1, offset: 20, ends });
    assert.deepEqual(await readdir(join(dir, "sources")), ["app.position.json"]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
