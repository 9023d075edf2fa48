import assert from "node:assert/strict";
import { mkdtemp, open, readdir, rm, stat, truncate } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { encodeTask, LocalFileCheckpointStore } from "../../../src/runtime/checkpoint/local.js";
import type { CheckpointStore } from "../../../src/runtime/checkpoint/store.js";
import { runCheckpointStoreConformance, type TearWrite } from "../checkpoint-store-conformance.js";

/** A write that succeeds, then the file it added matching `pattern`, damaged by `damage`. */
function tearFile(dir: string, pattern: RegExp, damage: (path: string) => Promise<void>): TearWrite {
  return async (store: CheckpointStore, task, epoch, kind, data) => {
    const taskDir = join(dir, encodeTask(task));
    const before = new Set(await readdir(taskDir));
    await store.write(task, epoch, kind, data);
    const added = (await readdir(taskDir)).filter((f) => pattern.test(f) && !before.has(f));
    if (added.length !== 1) throw new Error(`expected one new file matching ${pattern}, found ${added}`);
    await damage(join(taskDir, added[0]!));
  };
}

async function flipLastByte(path: string): Promise<void> {
  const handle = await open(path, "r+");
  try {
    const { size } = await handle.stat();
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, size - 1);
    byte[0] = byte[0]! ^ 0xff;
    await handle.write(byte, 0, 1, size - 1);
  } finally {
    await handle.close();
  }
}

runCheckpointStoreConformance("local files", async () => {
  const root = await mkdtemp(join(tmpdir(), "runnel-checkpoints-"));
  const dir = join(root, "checkpoints");
  return {
    open: async () => new LocalFileCheckpointStore(dir),
    tears: {
      "data file cut short": tearFile(dir, /^d-/, async (path) =>
        truncate(path, Math.floor((await stat(path)).size / 2)),
      ),
      "data file tail damaged": tearFile(dir, /^d-/, flipLastByte),
      "manifest cut short": tearFile(dir, /^v\d+$/, async (path) => truncate(path, (await stat(path)).size - 3)),
      "manifest tail damaged": tearFile(dir, /^v\d+$/, flipLastByte),
    },
    destroy: () => rm(root, { recursive: true, force: true }),
  };
});

describe("local checkpoint files", () => {
  it("retire replaced bases and their deltas as one owner goes on writing", async () => {
    const root = await mkdtemp(join(tmpdir(), "runnel-checkpoints-"));
    try {
      const store = new LocalFileCheckpointStore(root);
      const { epoch } = await store.claim("job/0", "a");
      for (let i = 0; i < 20; i++) {
        await store.write("job/0", epoch, i % 4 === 0 ? "base" : "delta", new Uint8Array(1000).fill(i));
      }
      const files = await readdir(join(root, "job~2f0"));
      // The newest manifest (base 16, deltas 17-19) and the one before it: four data files.
      assert.deepEqual(
        files.filter((f) => f.startsWith("v")),
        ["v20", "v21"],
      );
      assert.equal(files.filter((f) => f.startsWith("d-")).length, 4, `files: ${files}`);
      const read = await store.read("job/0");
      assert.deepEqual([read!.base[0], ...read!.deltas.map((d) => d[0])], [16, 17, 18, 19]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
