/**
 * A rule runner's checkpoints in the checkpoint store, as a crash finds them: copies of what the
 * store holds taken at arbitrary moments while the runner works (per partition a full base, then
 * deltas, a new base every so often) each restore to a state from which a new runner, fed the
 * rest of the log, emits every match of an uninterrupted run, none missing (duplicates are replays,
 * which alert ids absorb). A runner whose partition another one claimed stops there (fencing); a
 * checkpoint in the file format of before the store is imported once, and one in the store format of
 * before the task driver is rewritten in the driver's once.
 */
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { describe, it } from "node:test";
import { dropRuleCheckpoints, ruleJob, ruleTask } from "../../src/cep/checkpoint.js";
import { importLegacyCheckpoint, legacyCheckpointPath } from "../../src/cep/legacy-checkpoint.js";
import { type CepMatch, CepOperator, EVENT_META, type MetaEvent } from "../../src/cep/operator.js";
import { compileRule } from "../../src/cep/rule/compile.js";
import { validateRuleSpec } from "../../src/cep/rule/spec.js";
import { RuleRunner, type RuleRunnerOptions } from "../../src/cep/runner.js";
import { type AppendRecord, type EventLog, partitionForKey } from "../../src/log/types.js";
import { MemoryCheckpointStore } from "../../src/runtime/checkpoint/memory.js";
import type { CheckpointStore } from "../../src/runtime/checkpoint/store.js";
import { decodeTaskCheckpoint } from "../../src/runtime/task-checkpoint.js";
import { rng } from "../helpers/rng.js";
import { tempLogs } from "../log/temp-logs.js";
import { appendDelta, writeCheckpoint } from "./legacy-files.js";

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
 * Copies what `from` holds of the rule, one task at a time while the runner goes on writing: each
 * store write is atomic and partitions are independent, so any mix is a state a crash could leave.
 * Returns how many deltas the copy holds.
 */
async function copyStore(from: CheckpointStore, to: CheckpointStore, ruleId: string): Promise<number> {
  let deltas = 0;
  for (const task of await from.list(`${ruleJob(ruleId)}/`)) {
    const held = await from.read(task);
    if (held === undefined) continue;
    const { epoch } = await to.claim(task, "copy");
    await to.write(task, epoch, "base", held.base);
    for (const d of held.deltas) await to.write(task, epoch, "delta", d);
    deltas += held.deltas.length;
  }
  return deltas;
}

/** A match as comparable text: key, timeout, step=log positions. */
function render(m: CepMatch): string {
  const steps = [...m.match].map(([step, evs]) => `${step}=${evs.map((e) => e[EVENT_META]?.id).join("+")}`);
  return `${m.key}${m.timedOut ? ` timeout@${m.timeoutAt}` : ""}: ${steps.join(" ")}`;
}

/** The whole input of `stream` through one operator per partition, in log order, rendered. */
async function referenceMatches(log: EventLog, partitions: number, from: readonly number[] = []): Promise<string[]> {
  const reference: string[] = [];
  for (let p = 0; p < partitions; p++) {
    const op = new CepOperator(RULE, { onMatch: (m) => reference.push(render(m)) });
    for (const r of await log.read("tx", p, from[p] ?? 0, { maxRecords: 100_000 })) {
      const value = JSON.parse(new TextDecoder().decode(r.value)) as MetaEvent;
      value[EVENT_META] = { ts: r.timestamp, id: `${p}:${r.offset}` };
      op.process(r.key, r.timestamp, value);
    }
  }
  return reference;
}

/**
 * A runner of an earlier version, as far as its state goes: one operator per partition fed from
 * the log in offset order (`feedTo` reads on from `positions`), whose captures (`capture`) its
 * checkpoints held.
 */
function earlierRunner(log: EventLog) {
  const before: string[] = [];
  const ops = [0, 1].map(() => new CepOperator(RULE, { onMatch: (m) => before.push(render(m)) }));
  const positions = [0, 0];
  const feedTo = async () => {
    for (let p = 0; p < PARTITIONS; p++) {
      for (const r of await log.read("tx", p, positions[p]!, { maxRecords: 100_000 })) {
        const value = JSON.parse(new TextDecoder().decode(r.value)) as MetaEvent;
        value[EVENT_META] = { ts: r.timestamp, id: `${p}:${r.offset}` };
        ops[p]!.process(r.key, r.timestamp, value);
        positions[p] = r.offset + 1;
      }
    }
  };
  const capture = (p: number, full: boolean): string => {
    const c = full ? ops[p]!.beginCapture() : ops[p]!.beginDeltaCapture();
    c.step(Number.POSITIVE_INFINITY);
    return c.pieces.join("");
  };
  return { before, ops, positions, feedTo, capture };
}

/** A runner of RULE on `log` and `checkpoints` whose matches, rendered, go to `out`. */
function runnerOf(
  log: EventLog,
  checkpoints: CheckpointStore,
  out: string[],
  options: Partial<RuleRunnerOptions> = {},
): RuleRunner {
  return new RuleRunner({
    log,
    ruleId: "r",
    stream: "tx",
    compiled: RULE,
    checkpoints,
    owner: "test",
    sink: async (ms) => {
      for (const m of ms) out.push(render(m));
    },
    ...options,
  });
}

describe("rule runner checkpoints", () => {
  const temp = tempLogs("runnel-cep-runner-");

  it("restore from any moment's store and, fed the rest, miss no match", async () => {
    const log = await temp.openLog({ dir: await temp.tempDir() });
    await log.createStream("tx", { partitions: PARTITIONS });
    const store = new MemoryCheckpointStore();
    const emitted: string[] = [];
    const runner = runnerOf(log, store, emitted, { checkpointEveryMs: 0, chunkSize: 50 });
    await runner.start();
    const copies: Array<{ store: CheckpointStore; emittedBefore: number }> = [];
    const deltas: number[] = [];
    for (const [i, batch] of batches(60, 200).entries()) {
      await log.append("tx", batch);
      await runner.idle();
      if (i % 6 === 5) {
        // Whatever the store holds now, a background checkpoint possibly half written.
        const copy = new MemoryCheckpointStore();
        const emittedBefore = emitted.length;
        deltas.push(await copyStore(store, copy, "r"));
        copies.push({ store: copy, emittedBefore });
      }
    }
    await runner.stop();
    assert.ok(deltas.filter((n) => n > 0).length >= 3, `checkpoints were deltas on top of a base (${deltas})`);
    assert.deepEqual(await store.list("rule/r/"), [ruleTask("r", 0), ruleTask("r", 1)], "one task per partition");

    const reference = await referenceMatches(log, PARTITIONS);
    assert.ok(reference.length > 50, `the input matches (${reference.length})`);
    assert.deepEqual(new Set(emitted), new Set(reference), "the uninterrupted runner emitted every match");

    for (const copy of copies) {
      const resumed: string[] = [];
      const again = runnerOf(log, copy.store, resumed);
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

  it("writes nothing for a partition that read nothing since its last checkpoint", async () => {
    const log = await temp.openLog({ dir: await temp.tempDir() });
    await log.createStream("tx", { partitions: PARTITIONS });
    const store = new MemoryCheckpointStore();
    const writes: string[] = [];
    const counting: CheckpointStore = Object.assign(Object.create(store) as MemoryCheckpointStore, {
      write: (task: string, epoch: number, kind: "base" | "delta", data: Uint8Array) => {
        writes.push(`${task} ${kind}`);
        return store.write(task, epoch, kind, data);
      },
    });
    const runner = runnerOf(log, counting, [], { checkpointEveryMs: 0 });
    await runner.start();
    assert.deepEqual(writes.sort(), ["rule/r/0 base", "rule/r/1 base"], "where each partition starts");
    writes.length = 0;
    // Only partition 0's keys.
    const only0 = batches(1, 400)[0]!.filter((r) => partitionForKey(r.key, PARTITIONS) === 0);
    await log.append("tx", only0);
    await runner.idle();
    await runner.stop();
    assert.ok(writes.length > 0);
    assert.deepEqual([...new Set(writes)], ["rule/r/0 delta"]);
  });
});

describe("rule runner checkpoints across a change of definition", () => {
  const temp = tempLogs("runnel-cep-revision-");

  it("a new revision takes over the positions, not the state; its own checkpoints restore whole", async () => {
    const log = await temp.openLog({ dir: await temp.tempDir() });
    await log.createStream("tx", { partitions: PARTITIONS });
    const store = new MemoryCheckpointStore();
    const runner = (revision: string, out: string[]) => runnerOf(log, store, out, { revision });
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

describe("rule runner fencing", () => {
  const temp = tempLogs("runnel-cep-fencing-");

  it("a runner whose partitions another one claimed emits and checkpoints nothing more; the new owner goes on", async () => {
    const log = await temp.openLog({ dir: await temp.tempDir() });
    await log.createStream("tx", { partitions: PARTITIONS });
    const store = new MemoryCheckpointStore();
    const input = batches(20, 200);
    const fromA: string[] = [];
    const a = runnerOf(log, store, fromA, { checkpointEveryMs: 0 });
    await a.start();
    for (const batch of input.slice(0, 10)) await log.append("tx", batch);
    await a.idle();

    const fromB: string[] = [];
    const b = runnerOf(log, store, fromB, { checkpointEveryMs: 0, owner: "b" });
    await b.start();
    assert.equal(b.partialMatches(), a.partialMatches(), "B took A's state over");
    // A learns of B at its next checkpoint write.
    await log.append("tx", input[10]!);
    for (let i = 0; i < 200 && a.fencedPartitions().length < PARTITIONS; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.deepEqual(a.fencedPartitions(), [0, 1]);
    assert.equal(a.takenOver(), true);
    assert.equal(b.takenOver(), false);
    assert.match(a.lastError ?? "", /taken over/);
    const aHad = fromA.length;
    const aRead = a.recordsIn;
    const stored = await Promise.all([0, 1].map((p) => store.read(ruleTask("r", p))));

    for (const batch of input.slice(11)) await log.append("tx", batch);
    await a.idle();
    await b.idle();
    await a.stop();
    assert.equal(fromA.length, aHad, "A emitted nothing more");
    assert.equal(a.recordsIn, aRead, "nor read anything more");
    assert.deepEqual(
      await Promise.all([0, 1].map((p) => store.read(ruleTask("r", p)))).then((s) => s.map((c) => c?.epoch)),
      stored.map(() => 2),
      "every checkpoint since is B's (epoch 2)",
    );
    const held = b.partialMatches();
    await b.stop();

    const reference = await referenceMatches(log, PARTITIONS);
    const seen = new Set([...fromA, ...fromB]);
    assert.deepEqual(
      reference.filter((m) => !seen.has(m)),
      [],
      "between them, every match",
    );
    const c = runnerOf(log, store, [], { owner: "c" });
    await c.start();
    assert.equal(c.partialMatches(), held, "the store holds B's state, not A's");
    await c.stop();
  });

  it("dropping a rule's checkpoints fences its runner and leaves nothing to restore", async () => {
    const log = await temp.openLog({ dir: await temp.tempDir() });
    await log.createStream("tx", { partitions: PARTITIONS });
    const store = new MemoryCheckpointStore();
    const runner = runnerOf(log, store, [], { checkpointEveryMs: 0 });
    await runner.start();
    await log.append("tx", batches(1, 200)[0]!);
    await runner.idle();
    await dropRuleCheckpoints(store, "r", "admin");
    assert.deepEqual(await Promise.all([0, 1].map((p) => store.read(ruleTask("r", p)))), [undefined, undefined]);
    await log.append("tx", batches(2, 200)[1]!);
    await runner.idle();
    await runner.stop();
    assert.deepEqual(runner.fencedPartitions(), [0, 1]);
    assert.deepEqual(await Promise.all([0, 1].map((p) => store.read(ruleTask("r", p)))), [undefined, undefined]);
  });
});

describe("rule checkpoints of before the checkpoint store", () => {
  const temp = tempLogs("runnel-cep-legacy-");

  it("are imported once, then the files are gone and the runner resumes from them", async () => {
    const log = await temp.openLog({ dir: await temp.tempDir() });
    await log.createStream("tx", { partitions: PARTITIONS });
    const input = batches(20, 200);
    // The runner of that time: one operator per partition, a base after 5 batches, a delta after 10.
    const { before, ops, positions, feedTo, capture } = earlierRunner(log);
    const pieces = (full: boolean) => ops.map((_, p) => capture(p, full));
    const dir = await temp.tempDir();
    const path = legacyCheckpointPath(dir, "r");
    for (const batch of input.slice(0, 5)) await log.append("tx", batch);
    await feedTo();
    // Written before rules could change: no revision, no stream.
    await writeCheckpoint(path, 1, [
      `{"version":1,"generation":1,"positions":${JSON.stringify(positions)},"operators":[${pieces(true).join(",")}]}`,
    ]);
    for (const batch of input.slice(5, 10)) await log.append("tx", batch);
    await feedTo();
    await appendDelta(path, 1, [`{"positions":${JSON.stringify(positions)},"operators":[${pieces(false).join(",")}]}`]);
    const held = ops.reduce((n, op) => n + op.partialMatchCount(), 0);

    const store = new MemoryCheckpointStore();
    const legacy = { store, ruleId: "r", path, owner: "test", revision: "", stream: "tx" };
    assert.equal(await importLegacyCheckpoint(legacy), true);
    assert.deepEqual(await readdir(dir), [], "the files are removed");
    assert.equal(await importLegacyCheckpoint(legacy), false, "once");

    for (const batch of input.slice(10)) await log.append("tx", batch);
    const resumed: string[] = [];
    const runner = runnerOf(log, store, resumed);
    await runner.start();
    assert.equal(runner.partialMatches() > 0, true);
    await runner.idle();
    await runner.stop();
    const reference = await referenceMatches(log, PARTITIONS);
    assert.deepEqual([...before, ...resumed].sort(), reference.sort(), "every match once, none replayed");
    assert.ok(held > 0);

    // Files a crash left after the import: the store has them already and has moved on.
    const moved = await store.read(ruleTask("r", 0));
    await writeCheckpoint(path, 1, [`{"version":1,"generation":1,"positions":[0,0],"operators":[]}`]);
    assert.equal(await importLegacyCheckpoint(legacy), false);
    assert.deepEqual(await readdir(dir), []);
    assert.deepEqual(await store.read(ruleTask("r", 0)), moved, "the store is left as it was");
  });
});

describe("rule checkpoints in the store format of before the task driver", () => {
  const temp = tempLogs("runnel-cep-predriver-");

  /**
   * What the runner of before the driver left in the store after `upTo` batches: per partition a
   * base (its position beside the operator's snapshot, as one JSON document) after the first half
   * and a delta after the rest. Returns the matches it emitted and the partial matches it held.
   */
  async function writtenBefore(
    log: EventLog,
    store: CheckpointStore,
    input: readonly AppendRecord[][],
    upTo: number,
    stream = "tx",
  ): Promise<{ before: string[]; held: number }> {
    const { before, ops, positions, feedTo, capture: pieces } = earlierRunner(log);
    const epochs = await Promise.all([0, 1].map((p) => store.claim(ruleTask("r", p), "old").then((c) => c.epoch)));
    const encoder = new TextEncoder();
    for (const batch of input.slice(0, upTo / 2)) await log.append("tx", batch);
    await feedTo();
    for (let p = 0; p < PARTITIONS; p++) {
      const base = `{"version":2,"revision":"","stream":"${stream}","partitions":${PARTITIONS},"position":${positions[p]},"operator":${pieces(p, true)}}`;
      await store.write(ruleTask("r", p), epochs[p]!, "base", encoder.encode(base));
    }
    for (const batch of input.slice(upTo / 2, upTo)) await log.append("tx", batch);
    await feedTo();
    for (let p = 0; p < PARTITIONS; p++) {
      const delta = `{"position":${positions[p]},"operator":${pieces(p, false)}}`;
      await store.write(ruleTask("r", p), epochs[p]!, "delta", encoder.encode(delta));
    }
    return { before, held: ops.reduce((n, op) => n + op.partialMatchCount(), 0) };
  }

  it("are rewritten in the driver's format once, and the runner resumes from them with their partial matches", async () => {
    const log = await temp.openLog({ dir: await temp.tempDir() });
    await log.createStream("tx", { partitions: PARTITIONS });
    const store = new MemoryCheckpointStore();
    const input = batches(20, 200);
    const { before, held } = await writtenBefore(log, store, input, 10);
    assert.ok(held > 0, "the old runner held partial matches");

    const resumed: string[] = [];
    const runner = runnerOf(log, store, resumed);
    await runner.start();
    // Counted before the rest is appended: a runner reading from the log's in-memory tail would
    // otherwise have moved its partial matches on before the count.
    assert.equal(runner.partialMatches(), held, "every partial match taken over");
    for (const batch of input.slice(10)) await log.append("tx", batch);
    for (const p of [0, 1]) {
      const stored = (await store.read(ruleTask("r", p)))!;
      const cp = decodeTaskCheckpoint(ruleTask("r", p), stored.base, stored.deltas);
      assert.deepEqual(cp.header.partitions, [p], "the store holds the driver's format now");
    }
    await runner.idle();
    await runner.stop();
    const reference = await referenceMatches(log, PARTITIONS);
    assert.deepEqual([...before, ...resumed].sort(), reference.sort(), "every match once, none replayed");

    // Started again, it restores its own checkpoint (no second upgrade: the state moved on).
    const again = runnerOf(log, store, []);
    await again.start();
    assert.equal(again.partialMatches(), runner.partialMatches());
    await again.stop();
  });

  it("one of another stream is dropped: the rule starts at the stream's end", async () => {
    const log = await temp.openLog({ dir: await temp.tempDir() });
    await log.createStream("tx", { partitions: PARTITIONS });
    const store = new MemoryCheckpointStore();
    const input = batches(12, 200);
    await writtenBefore(log, store, input, 10, "other");
    const end = await log.endOffsets("tx");
    const resumed: string[] = [];
    const runner = runnerOf(log, store, resumed);
    await runner.start();
    assert.equal(runner.partialMatches(), 0);
    for (const batch of input.slice(10)) await log.append("tx", batch);
    await runner.idle();
    await runner.stop();
    assert.equal(runner.recordsIn, input.slice(10).flat().length, "only what arrived after its start");
    assert.deepEqual(
      await referenceMatches(log, PARTITIONS, end).then((r) => r.sort()),
      resumed.sort(),
      "and its matches are those of that part alone",
    );
  });
});
