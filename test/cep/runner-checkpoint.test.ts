/**
 * A rule runner's checkpoints on disk, as a crash finds them: copies of the checkpoint files taken
 * at arbitrary moments while the runner works (a full base, then deltas appended, a new base once
 * they outgrow it) each restore to a state from which a new runner, fed the rest of the log, emits
 * every match of an uninterrupted run, none missing (duplicates are replays, which alert ids absorb).
 */
import assert from "node:assert/strict";
import { copyFile, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type CepMatch, CepOperator, EVENT_META, type MetaEvent } from "../../src/cep/operator.js";
import { compileRule } from "../../src/cep/rule/compile.js";
import { validateRuleSpec } from "../../src/cep/rule/spec.js";
import { RuleRunner, type RuleRunnerOptions } from "../../src/cep/runner.js";
import type { AppendRecord } from "../../src/log/types.js";
import { rng } from "../helpers/rng.js";
import { tempLogs } from "../log/temp-logs.js";

const RULE = compileRule(
  validateRuleSpec({
    name: "burst",
    stream: "tx",
    pattern: [{ name: "large", where: "amount > 500", times: { min: 3 } }],
    within: "2m",
    skip: "past_last_event",
    onTimeout: "alert",
  }),
);
const PARTITIONS = 2;
const KEYS = 3000;

function batches(count: number, size: number): AppendRecord[][] {
  const r = rng(99);
  const encoder = new TextEncoder();
  let ts = 1_700_000_000_000;
  return Array.from({ length: count }, () =>
    Array.from({ length: size }, () => {
      ts += Math.floor(r() * 200);
      const user = `u${Math.floor(r() * KEYS)}`;
      return {
        key: user,
        timestamp: ts,
        value: encoder.encode(JSON.stringify({ user_id: user, amount: Math.round(r() * 1000) })),
      };
    }),
  );
}

/**
 * Copies the files of `from`, one at a time while the runner goes on writing: any mix is a state a
 * crash could leave (a base is replaced by rename before its old deltas go; a half-appended delta
 * is a torn tail), and a file renamed away meanwhile is skipped.
 */
async function copyFiles(from: string, to: string): Promise<void> {
  for (const name of await readdir(from)) {
    await copyFile(join(from, name), join(to, name)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "ENOENT") throw e;
    });
  }
}

/** A match as comparable text: key, timeout, step=log positions. */
function render(m: CepMatch): string {
  const steps = [...m.match].map(([step, evs]) => `${step}=${evs.map((e) => e[EVENT_META]?.id).join("+")}`);
  return `${m.key}${m.timedOut ? ` timeout@${m.timeoutAt}` : ""}: ${steps.join(" ")}`;
}

describe("rule runner checkpoints", () => {
  const temp = tempLogs("runnel-cep-runner-");

  it("restore from any moment's files and, fed the rest, miss no match", async () => {
    const log = await temp.openLog({ dir: await temp.tempDir() });
    await log.createStream("tx", { partitions: PARTITIONS });
    const dir = await temp.tempDir();
    const checkpointPath = join(dir, "rule.json");
    const emitted: string[] = [];
    /** A runner of the rule on `log` whose matches, rendered, go to `out`. */
    const runnerInto = (out: string[], path: string, options: Partial<RuleRunnerOptions> = {}) =>
      new RuleRunner({
        log,
        ruleId: "r",
        stream: "tx",
        compiled: RULE,
        checkpointPath: path,
        sink: async (ms) => {
          for (const m of ms) out.push(render(m));
        },
        ...options,
      });
    const runner = runnerInto(emitted, checkpointPath, { checkpointEveryMs: 0, chunkSize: 50 });
    await runner.start();
    const copies: Array<{ dir: string; emittedBefore: number }> = [];
    const sawDelta: boolean[] = [];
    for (const [i, batch] of batches(60, 200).entries()) {
      await log.append("tx", batch);
      await runner.idle();
      if (i % 6 === 5) {
        // Whatever is on disk now, a background checkpoint possibly half written.
        const copy = await temp.tempDir();
        const emittedBefore = emitted.length;
        await copyFiles(dir, copy);
        const names = await readdir(copy);
        sawDelta.push(
          await Promise.all(
            names.filter((n) => n.endsWith(".delta")).map(async (n) => (await stat(join(copy, n))).size > 0),
          ).then((s) => s.includes(true)),
        );
        copies.push({ dir: copy, emittedBefore });
      }
    }
    await runner.stop();
    assert.ok(sawDelta.filter(Boolean).length >= 3, `checkpoints were deltas on top of a base (${sawDelta})`);

    // The whole input through one operator per partition, in log order.
    const reference: string[] = [];
    for (let p = 0; p < PARTITIONS; p++) {
      const op = new CepOperator(RULE, { onMatch: (m) => reference.push(render(m)) });
      for (const r of await log.read("tx", p, 0, { maxRecords: 100_000 })) {
        const value = JSON.parse(new TextDecoder().decode(r.value)) as MetaEvent;
        value[EVENT_META] = { ts: r.timestamp, id: `${p}:${r.offset}` };
        op.process(r.key, r.timestamp, value);
      }
    }
    assert.ok(reference.length > 50, `the input matches (${reference.length})`);
    assert.deepEqual(new Set(emitted), new Set(reference), "the uninterrupted runner emitted every match");

    for (const copy of copies) {
      const resumed: string[] = [];
      const again = runnerInto(resumed, join(copy.dir, "rule.json"));
      await again.start();
      await again.idle();
      await again.stop();
      const seen = new Set([...emitted.slice(0, copy.emittedBefore), ...resumed]);
      const missing = reference.filter((m) => !seen.has(m));
      assert.deepEqual(missing, [], `restored from the copy taken after ${copy.emittedBefore} matches`);
      const unknown = resumed.filter((m) => !reference.includes(m));
      assert.deepEqual(unknown, [], "and emitted nothing an uninterrupted run would not");
    }
  });
});

describe("rule runner checkpoints across a change of definition", () => {
  const temp = tempLogs("runnel-cep-revision-");

  it("a new revision takes over the positions, not the state; its own checkpoints restore whole", async () => {
    const log = await temp.openLog({ dir: await temp.tempDir() });
    await log.createStream("tx", { partitions: PARTITIONS });
    const checkpointPath = join(await temp.tempDir(), "rule.json");
    const runner = (revision: string, out: string[]) =>
      new RuleRunner({
        log,
        ruleId: "r",
        stream: "tx",
        compiled: RULE,
        checkpointPath,
        revision,
        sink: async (ms) => {
          for (const m of ms) out.push(render(m));
        },
      });
    const input = batches(20, 200);
    const old = runner("a", []);
    await old.start();
    for (const batch of input.slice(0, 10)) await log.append("tx", batch);
    await old.idle();
    assert.ok(old.partialMatches() > 0);
    await old.stop();
    const stoppedAt = await log.endOffsets("tx");

    const emitted: string[] = [];
    const changed = runner("b", emitted);
    await changed.start();
    assert.equal(changed.partialMatches(), 0, "the old definition's state is not taken over");
    for (const batch of input.slice(10)) await log.append("tx", batch);
    await changed.idle();
    assert.ok(emitted.length > 0);
    const positions = emitted.flatMap((m) =>
      [...m.matchAll(/=((\d+):(\d+))/g)].map((g) => [Number(g[2]), Number(g[3])]),
    );
    assert.ok(
      positions.every(([p, o]) => o! >= stoppedAt[p!]!),
      "matches only of events from where the old definition stopped",
    );
    assert.equal(changed.recordsIn, input.slice(10).flat().length, "and every one of those events read");
    const held = changed.partialMatches();
    await changed.stop();

    const restarted = runner("b", []);
    await restarted.start();
    assert.equal(restarted.partialMatches(), held, "its own checkpoint restores its state");
    await restarted.stop();
  });
});
