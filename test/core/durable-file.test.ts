/**
 * The durable file replacement: the target holds the old content or the whole new one, never
 * part of the new, whether the write fails or the process is SIGKILLed in the middle of it.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  appendFileDurable,
  removeFilesDurable,
  removeStaleTemps,
  staleTempsOf,
  writeFileDurable,
} from "../../src/core/durable-file.js";

const WRITER = join(import.meta.dirname, "fixtures", "durable-writer.ts");

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "runnel-durable-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs the writer until it has acknowledged `minAcks` versions, waits `delayMs`, SIGKILLs it; the last version acknowledged. */
function runAndKill(path: string, minAcks: number, delayMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", WRITER, path], { stdio: ["ignore", "pipe", "pipe"] });
    let last = 0;
    let pending = "";
    let stderr = "";
    let killed = false;
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout.on("data", (d: Buffer) => {
      pending += d.toString();
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) if (line.startsWith("ack ")) last = Number(line.slice(4));
      if (!killed && last >= minAcks) {
        killed = true;
        setTimeout(() => child.kill("SIGKILL"), delayMs);
      }
    });
    child.on("exit", (_code, signal) => {
      if (signal !== "SIGKILL") reject(new Error(`writer exited without being killed: ${stderr}`));
      else resolve(last);
    });
  });
}

describe("writeFileDurable", () => {
  it("replaces the file with text, bytes or chunks and returns the bytes written", () =>
    withDir(async (dir) => {
      const path = join(dir, "f.json");
      assert.equal(await writeFileDurable(path, "héllo"), 6);
      assert.equal(await readFile(path, "utf8"), "héllo");
      assert.equal(await writeFileDurable(path, new Uint8Array([1, 2, 3])), 3);
      assert.deepEqual([...(await readFile(path))], [1, 2, 3]);
      assert.equal(await writeFileDurable(path, [Buffer.from("ab"), Buffer.from("cde")]), 5);
      assert.equal(await readFile(path, "utf8"), "abcde");
      assert.deepEqual(await readdir(dir), ["f.json"]);
    }));

  it("keeps the old content and removes its temporary file when the new content fails half-way", () =>
    withDir(async (dir) => {
      const path = join(dir, "f.json");
      await writeFile(path, "old");
      async function* failing(): AsyncGenerator<Uint8Array> {
        yield Buffer.alloc(1 << 20, 0x61);
        throw new Error("producer failed");
      }
      await assert.rejects(writeFileDurable(path, failing()), /producer failed/);
      assert.equal(await readFile(path, "utf8"), "old");
      assert.deepEqual(await readdir(dir), ["f.json"]);
    }));

  it("a process SIGKILLed while replacing leaves the last acknowledged version or a later one, whole", () =>
    withDir(async (dir) => {
      const path = join(dir, "state.json");
      for (let round = 0; round < 4; round++) {
        const acked = await runAndKill(path, 3, round * 4);
        const text = await readFile(path, "utf8");
        let found: { v: number; pad: string };
        try {
          found = JSON.parse(text) as { v: number; pad: string };
        } catch {
          assert.fail(`round ${round}: the file is partial (${text.length} characters)`);
        }
        assert.ok(found.v >= acked, `round ${round}: version ${found.v} is older than the acknowledged ${acked}`);
        assert.equal(found.pad.length, 2 * 1024 * 1024, `round ${round}: version ${found.v} is partial`);
        assert.equal(found.pad, String(found.v % 10).repeat(found.pad.length));
      }
      await removeStaleTemps(path);
      assert.deepEqual(await readdir(dir), ["state.json"], "the killed writers' temp files are removed");
    }));
});

describe("staleTempsOf", () => {
  it("names the temp files of that path, from any process and older versions, but not one being written", () =>
    withDir(async (dir) => {
      const path = join(dir, "f.json");
      let proceed: () => void = () => undefined;
      const paused = new Promise<void>((resolve) => {
        proceed = resolve;
      });
      let started: () => void = () => undefined;
      const writing = new Promise<void>((resolve) => {
        started = resolve;
      });
      async function* slow(): AsyncGenerator<Uint8Array> {
        yield Buffer.from("new");
        started();
        await paused;
      }
      const inFlight = writeFileDurable(path, slow());
      await writing;
      const [own] = (await readdir(dir)).filter((n) => n.startsWith("f.json.tmp-"));
      assert.ok(own !== undefined);
      const names = [
        "f.json",
        own,
        `f.json.tmp-${process.pid}-999999`,
        "f.json.tmp-1-3",
        "f.json.tmp",
        "f.json2.tmp-1-0",
        "g.json.tmp-1-0",
        "f.json.tmp-x-1",
        "f.json.1.delta",
      ];
      assert.deepEqual(staleTempsOf(path, names), [
        join(dir, `f.json.tmp-${process.pid}-999999`),
        join(dir, "f.json.tmp-1-3"),
        join(dir, "f.json.tmp"),
      ]);
      proceed();
      await inFlight;
      assert.deepEqual(staleTempsOf(path, [own]), [join(dir, own)], "once written, its name is free");
    }));
});

describe("appendFileDurable and removeFilesDurable", () => {
  it("append creates the file, then adds to it; removal ignores absent files", () =>
    withDir(async (dir) => {
      const path = join(dir, "log");
      await appendFileDurable(path, Buffer.from("a"));
      await appendFileDurable(path, Buffer.from("bc"));
      assert.equal(await readFile(path, "utf8"), "abc");
      await removeFilesDurable([path, join(dir, "absent"), join(dir, "no-such-dir", "x")]);
      assert.deepEqual(await readdir(dir), []);
    }));
});
