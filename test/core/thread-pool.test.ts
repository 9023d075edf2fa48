import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { THREAD_POOL_SIZE } from "../../src/core/thread-pool.js";

const MODULE = join(import.meta.dirname, "..", "..", "src", "core", "thread-pool.ts");
/** Reads parked on FIFOs hold this many pool threads; a stat then gets one only if the pool is larger. */
const HELD = 6;

/**
 * Runs, in plain node (as the installed `runnel` runs), a module that imports thread-pool.ts
 * first, holds HELD pool threads in reads of empty FIFOs and says whether a stat still ran.
 */
function probe(dir: string, env: NodeJS.ProcessEnv): string {
  const fifos = Array.from({ length: HELD }, (_, i) => join(dir, `fifo-${i}`));
  for (const f of fifos) assert.equal(spawnSync("mkfifo", [f]).status, 0);
  const script = `
    import ${JSON.stringify(MODULE)};
    import { constants, openSync, read, stat, writeSync } from "node:fs";
    const fds = ${JSON.stringify(fifos)}.map((f) => openSync(f, constants.O_RDWR));
    for (const fd of fds) read(fd, Buffer.alloc(1), 0, 1, null, () => {});
    let answered = false;
    const done = (answer) => {
      if (answered) return;
      answered = true;
      console.log(answer);
      for (const fd of fds) writeSync(fd, "x");
    };
    const timer = setTimeout(() => done("blocked"), 2000);
    stat(".", () => { clearTimeout(timer); done("free"); });
  `;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    env,
    timeout: 20_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

test("imported first by plain node, it sizes libuv's pool beyond the 4 threads fsyncs can fill", async (t) => {
  assert.ok(THREAD_POOL_SIZE > HELD);
  const dir = await mkdtemp(join(os.tmpdir(), "runnel-pool-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const env = { ...process.env };
  delete env.UV_THREADPOOL_SIZE;
  assert.equal(probe(dir, env), "free");
});

test("a pool size the environment sets is kept (the probe sees libuv's 4 threads held)", async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), "runnel-pool-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  assert.equal(probe(dir, { ...process.env, UV_THREADPOOL_SIZE: "4" }), "blocked");
});
