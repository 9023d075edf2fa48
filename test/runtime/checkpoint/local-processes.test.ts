/**
 * The local store across real processes of one machine: claims made at once by two processes get
 * distinct epochs, and a writer killed with SIGKILL mid-write leaves the state of its last
 * acknowledged write or of the write in flight, whole.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { LocalFileCheckpointStore } from "../../../src/runtime/checkpoint/local.js";
import { CheckpointFencedError } from "../../../src/runtime/checkpoint/store.js";

const WORKER = new URL("./fixtures/local-worker.ts", import.meta.url).pathname;

function worker(...args: string[]): { child: ChildProcess; lines: string[]; line(match: RegExp): Promise<string> } {
  const child = spawn(process.execPath, ["--import", "tsx", WORKER, ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const lines: string[] = [];
  const waiting: { match: RegExp; resolve: (l: string) => void }[] = [];
  let rest = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    for (const l of parts) {
      lines.push(l);
      for (const w of waiting.filter((x) => x.match.test(l))) {
        waiting.splice(waiting.indexOf(w), 1);
        w.resolve(l);
      }
    }
  });
  const line = (match: RegExp) =>
    new Promise<string>((resolve) => {
      const seen = lines.find((l) => match.test(l));
      if (seen !== undefined) resolve(seen);
      else waiting.push({ match, resolve });
    });
  return { child, lines, line };
}

describe("local checkpoint store across processes", () => {
  const dirs: string[] = [];
  const tempDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), "runnel-ckpt-proc-"));
    dirs.push(dir);
    return dir;
  };
  after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  it("claims made at once by two processes get distinct epochs", async () => {
    const dir = await tempDir();
    const workers = [worker("claim", dir, "job/0", "20"), worker("claim", dir, "job/0", "20")];
    await Promise.all(workers.map(async (w) => assert.deepEqual(await once(w.child, "exit"), [0, null])));
    const epochs = workers.flatMap((w) => w.lines.map(Number));
    assert.equal(epochs.length, 40);
    assert.equal(new Set(epochs).size, 40, `duplicate epochs: ${epochs.sort((a, b) => a - b)}`);
    // Each process awaited its own claims: the newest epoch on disk is the greatest handed out.
    const store = new LocalFileCheckpointStore(dir);
    assert.equal((await store.claim("job/0", "last")).epoch, Math.max(...epochs) + 1);
  });

  it("a writer killed mid-write leaves a whole state; its successor fences it and continues", async () => {
    const dir = await tempDir();
    const bytes = 4 * 1024 * 1024;
    const w = worker("write", dir, "job/0", String(bytes));
    const epoch = Number((await w.line(/^claimed /)).split(" ")[1]);
    await w.line(/^ack 3$/);
    w.child.kill("SIGKILL");
    await once(w.child, "exit");
    const acked = Number(
      w.lines
        .filter((l) => l.startsWith("ack "))
        .at(-1)!
        .split(" ")[1],
    );

    const store = new LocalFileCheckpointStore(dir);
    const next = await store.claim("job/0", "successor");
    assert.ok(next.epoch > epoch);
    const read = await store.read("job/0");
    assert.ok(read !== undefined);
    assert.equal(read.base.byteLength, bytes);
    // The last acknowledged base, or the one in flight when the kill came (acknowledged or not).
    const n = read.base[0]!;
    assert.ok(n === (acked & 0xff) || n === ((acked + 1) & 0xff), `base ${n}, last ack ${acked}`);
    assert.ok(
      read.base.every((b) => b === n),
      "the base read back is not whole",
    );
    await assert.rejects(store.write("job/0", epoch, "base", new Uint8Array(1)), CheckpointFencedError);
    await store.write("job/0", next.epoch, "delta", new Uint8Array([1]));
    assert.equal((await store.read("job/0"))!.deltas.length, 1);
    // The killed writer's half-written files are retired by the successor's operations.
    const files = await readdir(join(dir, "job~2f0"));
    assert.ok(files.filter((f) => f.startsWith("d-")).length <= 3, `files left: ${files}`);
    assert.deepEqual(
      files.filter((f) => f.startsWith(".tmp-")),
      [],
    );
  });
});
