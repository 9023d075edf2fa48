/**
 * In a cluster the archiver moves and merges only the partitions its instance owns (another
 * instance loads the others), and publishes the manifest's boundaries for a partition gained.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { archiveFixture, definition, events, loadStream } from "./fixture.js";

it("archives only owned partitions; publishedBoundaries gives the manifest's boundaries", async () => {
  const f = await archiveFixture();
  try {
    await loadStream(f, definition("clicks", 4), events(4, 100));
    const archiver = f.archiver({ maxRowsPerFile: 30, owns: (p) => p % 2 === 0 });
    await archiver.recover();
    await archiver.runOnce();
    const files = await f.control.listArchiveFiles("clicks");
    assert.ok(files.length > 0);
    assert.deepEqual([...new Set(files.map((file) => file.partition))].sort(), [0, 2]);
    const boundaries = await archiver.publishedBoundaries("clicks");
    assert.deepEqual(boundaries, await f.control.archiveBoundaries("clicks"));
    assert.ok((boundaries.get(0) ?? 0) > 0 && !boundaries.has(1));
    assert.deepEqual(await archiver.publishedBoundaries("nope"), new Map());
  } finally {
    await f.close();
  }
});
