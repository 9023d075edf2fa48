/**
 * A rule on several instances (issue 19): two rule runners over one local log, each owning half
 * the slots, find together exactly the matches one runner finds alone, also when a slot moves
 * from one to the other mid-stream (a replayed match is the same alert: ids absorb it); a runner
 * past its lease hands no match to the sink until it is valid again.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { ruleJob } from "../../src/cep/checkpoint.js";
import { type CepMatch, EVENT_META } from "../../src/cep/operator.js";
import { type CompiledRule, compileRule } from "../../src/cep/rule/compile.js";
import { validateRuleSpec } from "../../src/cep/rule/spec.js";
import { RuleRunner } from "../../src/cep/runner.js";
import { SlotOwnership } from "../../src/cluster/ownership.js";
import type { LocalEventLog } from "../../src/log/local/index.js";
import { type AppendRecord, partitionForKey } from "../../src/log/types.js";
import { MemoryCheckpointStore } from "../../src/runtime/checkpoint/memory.js";
import type { CheckpointStore } from "../../src/runtime/checkpoint/store.js";
import { Repartitioner } from "../../src/runtime/repartition.js";
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
const PARTITIONS = 4;
const encoder = new TextEncoder();

function batches(count: number, size: number): AppendRecord[][] {
  const r = rng(7);
  let ts = 1_700_000_000_000;
  return Array.from({ length: count }, () =>
    Array.from({ length: size }, () => {
      // Strictly rising: the repartition stage orders copies by time, and equal times by arrival.
      ts += 1 + Math.floor(r() * 200);
      const user = `u${Math.floor(r() * 200)}`;
      return {
        key: user,
        timestamp: ts,
        value: encoder.encode(
          JSON.stringify({ user_id: user, device: `d${Math.floor(r() * 40)}`, amount: Math.round(r() * 1000), ts }),
        ),
      };
    }),
  );
}

/**
 * A match as its alert's identity: key, timeout and the matched events' log positions (behind the
 * repartition stage, whose copies' positions vary with the interleaving, their unique times).
 */
function render(m: CepMatch): string {
  const steps = [...m.match].map(
    ([step, evs]) => `${step}=${evs.map((e) => (m.key.startsWith("d") ? e.ts : e[EVENT_META]?.id)).join("+")}`,
  );
  return `${m.key}${m.timedOut ? ` timeout@${m.timeoutAt}` : ""}: ${steps.join(" ")}`;
}

/** A runner whose sink keeps what it was handed (a set, as alert ids keep one alert per match). */
function runner(
  log: LocalEventLog,
  checkpoints: CheckpointStore,
  ownership?: SlotOwnership,
  on: { stream: string; compiled: CompiledRule } = { stream: "tx", compiled: RULE },
) {
  const seen = new Set<string>();
  const partitions = new Set<number>();
  const rule = new RuleRunner({
    log,
    ruleId: "burst",
    stream: on.stream,
    compiled: on.compiled,
    checkpoints,
    owner: "test",
    sink: async (matches) => {
      for (const m of matches) {
        seen.add(render(m));
        partitions.add(partitionForKey(m.key, PARTITIONS));
      }
    },
    checkpointEveryMs: 0,
    retryDelayMs: 10,
    ...(ownership !== undefined && { ownership }),
  });
  return { rule, seen, partitions };
}

describe("a rule on two instances", () => {
  const temp = tempLogs("runnel-cep-owners-");
  const input = batches(8, 400);
  let expected: string[] = [];

  async function openLog(): Promise<LocalEventLog> {
    const log = await temp.openLog({ dir: await temp.tempDir() });
    await log.createStream("tx", { partitions: PARTITIONS });
    return log;
  }

  it("one runner alone (the reference)", async () => {
    const log = await openLog();
    const alone = runner(log, new MemoryCheckpointStore());
    await alone.rule.start();
    for (const batch of input) await log.append("tx", batch);
    await alone.rule.idle();
    await alone.rule.stop();
    expected = [...alone.seen].sort();
    assert.ok(expected.length > 50, `matches: ${expected.length}`);
  });

  it("two runners owning half the slots each find, together, the same matches", async () => {
    const log = await openLog();
    const store = new MemoryCheckpointStore();
    const a = runner(log, store, new SlotOwnership(2, [0]));
    const b = runner(log, store, new SlotOwnership(2, [1]));
    await Promise.all([a.rule.start(), b.rule.start()]);
    assert.deepEqual(
      b.rule.tasks().map((t) => [t.task, t.restored]),
      [
        ["rule/burst/1", true],
        ["rule/burst/3", true],
      ],
    );
    for (const batch of input) await log.append("tx", batch);
    await Promise.all([a.rule.idle(), b.rule.idle()]);
    assert.deepEqual([...a.partitions].sort(), [0, 2]);
    assert.deepEqual([...b.partitions].sort(), [1, 3]);
    assert.deepEqual([...new Set([...a.seen, ...b.seen])].sort(), expected);
    assert.equal(a.seen.size + b.seen.size, expected.length, "no match found on both");
    await Promise.all([a.rule.stop(), b.rule.stop()]);
  });

  it("a slot moved mid-stream, and a runner past its lease: the same matches, none missing", async () => {
    const log = await openLog();
    const store = new MemoryCheckpointStore();
    const slotsA = new SlotOwnership(2, [0]);
    const slotsB = new SlotOwnership(2, [1]);
    const a = runner(log, store, slotsA);
    const b = runner(log, store, slotsB);
    await Promise.all([a.rule.start(), b.rule.start()]);
    for (const batch of input.slice(0, 3)) await log.append("tx", batch);
    await Promise.all([a.rule.idle(), b.rule.idle()]);
    // B pauses past its session while its partitions' events arrive: it hands the sink nothing.
    slotsB.setValidUntil(Date.now() - 1);
    const before = b.seen.size;
    for (const batch of input.slice(3, 5)) await log.append("tx", batch);
    await sleep(200);
    assert.equal(b.seen.size, before, "nothing handed over past the lease");
    await slotsA.set([0, 1]);
    await slotsB.set([]);
    assert.deepEqual(b.rule.tasks(), []);
    assert.equal(a.rule.tasks().length, PARTITIONS);
    for (const batch of input.slice(5)) await log.append("tx", batch);
    await a.rule.idle();
    assert.equal(b.seen.size, before);
    assert.deepEqual([...new Set([...a.seen, ...b.seen])].sort(), expected);
    await Promise.all([a.rule.stop(), b.rule.stop()]);
  });
});

const BY_DEVICE = compileRule(
  validateRuleSpec({
    name: "device_burst",
    stream: "tx",
    key: "device",
    pattern: [{ name: "large", where: "amount > 500", times: { exactly: 3 } }],
    within: "2m",
    skip: "past_last_event",
  }),
);

describe("a rule keyed by another field on two instances (through the repartition stage)", () => {
  const temp = tempLogs("runnel-cep-owners-rp-");
  const input = batches(6, 300);

  /** One instance: the repartition stage, then the rule over its stream, both following `ownership`. */
  async function instance(log: LocalEventLog, checkpoints: CheckpointStore, ownership?: SlotOwnership) {
    const stage = new Repartitioner({
      log,
      job: ruleJob("burst"),
      inputStream: "tx",
      keyField: "device",
      startFrom: "now",
      checkpoints,
      owner: "test",
      consumer: "rule/device_burst",
      // No input partition turns idle during the test: copies go out in time order only, so
      // which events a match holds does not depend on how rounds interleave.
      idleTimeoutMs: 60_000,
      ...(ownership !== undefined && { ownership }),
    });
    await stage.start();
    const r = runner(log, checkpoints, ownership, { stream: stage.stream, compiled: BY_DEVICE });
    await r.rule.start();
    return { ...r, stage };
  }

  async function settle(...instances: { stage: Repartitioner; rule: RuleRunner }[]): Promise<void> {
    // Copies are held until every input partition's time lets them out; markers cross the log.
    for (let i = 0; i < 3; i++) {
      await sleep(100);
      for (const x of instances) await x.stage.idle();
      for (const x of instances) await x.rule.idle();
    }
  }

  it("two instances find, together, the matches of one, across a moved slot", async () => {
    const reference = await temp.openLog({ dir: await temp.tempDir() });
    await reference.createStream("tx", { partitions: PARTITIONS });
    const alone = await instance(reference, new MemoryCheckpointStore());
    for (const batch of input) await reference.append("tx", batch);
    await settle(alone);
    const expected = [...alone.seen].sort();
    assert.ok(expected.length > 20, `matches: ${expected.length}`);
    await alone.stage.stop();
    await alone.rule.stop();

    const log = await temp.openLog({ dir: await temp.tempDir() });
    await log.createStream("tx", { partitions: PARTITIONS });
    const store = new MemoryCheckpointStore();
    const slotsA = new SlotOwnership(2, [0]);
    const slotsB = new SlotOwnership(2, [1]);
    const a = await instance(log, store, slotsA);
    const b = await instance(log, store, slotsB);
    assert.deepEqual(
      b.stage.tasks().map((t) => t.task),
      [
        "rule/burst/repartition/exchange/1",
        "rule/burst/repartition/exchange/3",
        "rule/burst/repartition/1",
        "rule/burst/repartition/3",
      ],
    );
    for (const batch of input.slice(0, 3)) await log.append("tx", batch);
    await settle(a, b);
    await slotsB.set([]);
    await slotsA.set([0, 1]);
    for (const batch of input.slice(3)) await log.append("tx", batch);
    await settle(a, b);
    assert.deepEqual([...new Set([...a.seen, ...b.seen])].sort(), expected);
    for (const x of [a, b]) {
      await x.stage.stop();
      await x.rule.stop();
    }
  });
});
