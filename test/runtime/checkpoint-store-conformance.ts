/**
 * The one suite every CheckpointStore passes (src/runtime/checkpoint/store.ts): the memory store,
 * local files, PostgreSQL and PGlite run it through a harness that opens stores over one storage.
 */
import assert from "node:assert/strict";
import { randomFillSync } from "node:crypto";
import { describe, it } from "node:test";
import {
  CheckpointFencedError,
  type CheckpointKind,
  CheckpointNoBaseError,
  type CheckpointStore,
  type StoredTaskCheckpoint,
} from "../../src/runtime/checkpoint/store.js";

/**
 * Has `store` write a checkpoint and tears that write the way a crash would; resolves once the
 * storage is left as the crash would leave it (whether the write's promise failed or not).
 */
export type TearWrite = (
  store: CheckpointStore,
  task: string,
  epoch: number,
  kind: CheckpointKind,
  data: Uint8Array,
) => Promise<void>;

export interface CheckpointStoreHarness {
  /** Another store over the same storage: another process, as far as claims and fencing go. */
  open(): Promise<CheckpointStore>;
  /** Ways a write can be torn on this store, by name; none for a store with nothing to tear. */
  readonly tears?: Readonly<Record<string, TearWrite>>;
  /** Closes what open() opened and removes the storage. */
  destroy(): Promise<void>;
}

export interface ConformanceOptions {
  /** Size of the large state round trip (100 MB by default, as issue 16 asks). */
  readonly largeStateBytes?: number;
  /** Size of the data a tear writes, so a write is in flight long enough to be killed. */
  readonly tearBytes?: number;
}

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

/** Bytes compared as bytes, whatever view (Buffer, Uint8Array) a store returns. */
function assertBytes(actual: Uint8Array | undefined, expected: Uint8Array, what: string): void {
  assert.ok(actual !== undefined, `${what} is missing`);
  const a = Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength);
  const e = Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength);
  if (a.byteLength < 256 && e.byteLength < 256) assert.equal(a.toString("hex"), e.toString("hex"), what);
  else assert.ok(a.equals(e), `${what}: ${a.byteLength} bytes differ from the ${e.byteLength} written`);
}

function assertCheckpoint(
  actual: StoredTaskCheckpoint | undefined,
  expected: { epoch: number; base: Uint8Array; deltas: Uint8Array[] },
): void {
  assert.ok(actual !== undefined, "no checkpoint read back");
  assert.equal(actual.epoch, expected.epoch, "epoch of the newest part");
  assertBytes(actual.base, expected.base, "base");
  assert.equal(actual.deltas.length, expected.deltas.length, "number of deltas");
  expected.deltas.forEach((d, i) => {
    assertBytes(actual.deltas[i], d, `delta ${i}`);
  });
}

function random(size: number): Uint8Array {
  const data = new Uint8Array(size);
  // randomFillSync refuses more than 2^31-1 bytes at once and is slow on huge buffers: fill 1 MiB
  // of noise and repeat it with a changing first byte per MiB, so a misplaced chunk shows.
  const mib = 1024 * 1024;
  const noise = randomFillSync(new Uint8Array(Math.min(size, mib)));
  for (let at = 0, n = 0; at < size; at += mib, n++) {
    data.set(noise.subarray(0, Math.min(mib, size - at)), at);
    data[at] = n & 0xff;
  }
  return data;
}

const isFenced = (e: unknown) => e instanceof CheckpointFencedError && e.code === "checkpoint_fenced";

export function runCheckpointStoreConformance(
  name: string,
  makeHarness: () => Promise<CheckpointStoreHarness>,
  options: ConformanceOptions = {},
): void {
  /** Runs `fn` with a fresh harness and one store over it, destroyed afterwards. */
  const withStore = async (fn: (store: CheckpointStore, harness: CheckpointStoreHarness) => Promise<void>) => {
    const harness = await makeHarness();
    try {
      await fn(await harness.open(), harness);
    } finally {
      await harness.destroy();
    }
  };

  describe(`checkpoint store conformance: ${name}`, () => {
    it("claims return an epoch greater than every earlier claim of the task", () =>
      withStore(async (store) => {
        const epochs: number[] = [];
        for (let i = 0; i < 5; i++) epochs.push((await store.claim("job/0", `owner-${i}`)).epoch);
        for (let i = 1; i < epochs.length; i++) assert.ok(epochs[i]! > epochs[i - 1]!, `epochs ${epochs}`);
        assert.ok(epochs[0]! >= 1);
        const other = await store.claim("job/1", "owner");
        assert.equal(other.task, "job/1");
        assert.ok(other.epoch >= 1);
      }));

    it("reads nothing for a task never written, claimed or not", () =>
      withStore(async (store) => {
        assert.equal(await store.read("job/0"), undefined);
        await store.claim("job/0", "a");
        assert.equal(await store.read("job/0"), undefined);
      }));

    it("reads back what it wrote: a base, then deltas in order, empty ones included", () =>
      withStore(async (store) => {
        const { epoch } = await store.claim("job/0", "a");
        // A view into a larger buffer: only its own bytes are the checkpoint.
        const backing = bytes("xxbase-1yy");
        const base = backing.subarray(2, 8);
        await store.write("job/0", epoch, "base", base);
        assertCheckpoint(await store.read("job/0"), { epoch, base: bytes("base-1"), deltas: [] });
        await store.write("job/0", epoch, "delta", bytes("d1"));
        await store.write("job/0", epoch, "delta", new Uint8Array(0));
        await store.write("job/0", epoch, "delta", bytes("d3"));
        assertCheckpoint(await store.read("job/0"), {
          epoch,
          base: bytes("base-1"),
          deltas: [bytes("d1"), new Uint8Array(0), bytes("d3")],
        });
      }));

    it("a second store over the same storage reads what the first wrote", () =>
      withStore(async (store, harness) => {
        const { epoch } = await store.claim("job/0", "a");
        await store.write("job/0", epoch, "base", bytes("shared"));
        await store.write("job/0", epoch, "delta", bytes("d"));
        const other = await harness.open();
        assertCheckpoint(await other.read("job/0"), { epoch, base: bytes("shared"), deltas: [bytes("d")] });
      }));

    it("refuses a delta with no base before it, and after a drop", () =>
      withStore(async (store) => {
        const { epoch } = await store.claim("job/0", "a");
        await assert.rejects(store.write("job/0", epoch, "delta", bytes("d")), CheckpointNoBaseError);
        assert.equal(await store.read("job/0"), undefined);
        await store.write("job/0", epoch, "base", bytes("b"));
        await store.drop("job/0", epoch);
        assert.equal(await store.read("job/0"), undefined);
        await assert.rejects(
          store.write("job/0", epoch, "delta", bytes("d")),
          (e: unknown) => e instanceof CheckpointNoBaseError && e.code === "checkpoint_no_base",
        );
        // A dropped task starts again from a new base.
        await store.write("job/0", epoch, "base", bytes("again"));
        assertCheckpoint(await store.read("job/0"), { epoch, base: bytes("again"), deltas: [] });
      }));

    it("a new base retires the deltas before it", () =>
      withStore(async (store) => {
        const { epoch } = await store.claim("job/0", "a");
        await store.write("job/0", epoch, "base", bytes("b1"));
        await store.write("job/0", epoch, "delta", bytes("d1"));
        await store.write("job/0", epoch, "delta", bytes("d2"));
        await store.write("job/0", epoch, "base", bytes("b2"));
        assertCheckpoint(await store.read("job/0"), { epoch, base: bytes("b2"), deltas: [] });
        await store.write("job/0", epoch, "delta", bytes("d3"));
        assertCheckpoint(await store.read("job/0"), { epoch, base: bytes("b2"), deltas: [bytes("d3")] });
      }));

    it("fences: an older epoch cannot write or drop once a newer one is claimed", () =>
      withStore(async (store, harness) => {
        const old = await store.claim("job/0", "a");
        await store.write("job/0", old.epoch, "base", bytes("a-base"));
        await store.write("job/0", old.epoch, "delta", bytes("a-delta"));
        const other = await harness.open();
        const next = await other.claim("job/0", "b");
        assert.ok(next.epoch > old.epoch);
        // Claiming changes no state: the new owner reads what the old one wrote, with its epoch.
        const before = { epoch: old.epoch, base: bytes("a-base"), deltas: [bytes("a-delta")] };
        assertCheckpoint(await other.read("job/0"), before);

        await assert.rejects(store.write("job/0", old.epoch, "delta", bytes("stale")), isFenced);
        await assert.rejects(store.write("job/0", old.epoch, "base", bytes("stale")), isFenced);
        await assert.rejects(store.drop("job/0", old.epoch), (e: unknown) => {
          assert.ok(isFenced(e));
          const fenced = e as CheckpointFencedError;
          assert.equal(fenced.task, "job/0");
          assert.equal(fenced.epoch, old.epoch);
          assert.equal(fenced.currentEpoch, next.epoch);
          return true;
        });
        assertCheckpoint(await store.read("job/0"), before);

        await other.write("job/0", next.epoch, "delta", bytes("b-delta"));
        assertCheckpoint(await store.read("job/0"), {
          epoch: next.epoch,
          base: bytes("a-base"),
          deltas: [bytes("a-delta"), bytes("b-delta")],
        });
      }));

    it("fences: an epoch never claimed cannot write or drop, nor can any epoch of a task never claimed", () =>
      withStore(async (store) => {
        await assert.rejects(store.write("job/9", 1, "base", bytes("x")), isFenced);
        await assert.rejects(store.drop("job/9", 1), isFenced);
        const { epoch } = await store.claim("job/0", "a");
        await store.write("job/0", epoch, "base", bytes("kept"));
        await assert.rejects(store.write("job/0", epoch + 1, "base", bytes("future")), isFenced);
        await assert.rejects(store.drop("job/0", epoch + 1), isFenced);
        assertCheckpoint(await store.read("job/0"), { epoch, base: bytes("kept"), deltas: [] });
        assert.equal(await store.read("job/9"), undefined);
      }));

    it("concurrent claims from two stores get distinct epochs, each newer than the last", () =>
      withStore(async (store, harness) => {
        const other = await harness.open();
        const first = await store.claim("job/0", "start");
        const claims = await Promise.all(
          Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? store : other).claim("job/0", `owner-${i}`)),
        );
        const epochs = claims.map((c) => c.epoch);
        assert.equal(new Set(epochs).size, epochs.length, `duplicate epochs: ${epochs}`);
        for (const e of epochs) assert.ok(e > first.epoch);
        // The newest claim wins: every other epoch is fenced.
        const newest = Math.max(...epochs);
        await (newest % 2 === 0 ? store : other).write("job/0", newest, "base", bytes("winner"));
        for (const e of epochs.filter((x) => x !== newest).slice(0, 4)) {
          await assert.rejects(store.write("job/0", e, "base", bytes("loser")), isFenced);
        }
        assertCheckpoint(await other.read("job/0"), { epoch: newest, base: bytes("winner"), deltas: [] });
      }));

    it("a claim racing an owner's writes: the new owner reads the old owner's last acknowledged write", () =>
      withStore(async (store, harness) => {
        const other = await harness.open();
        const old = await store.claim("job/0", "a");
        await store.write("job/0", old.epoch, "base", bytes("w-0"));
        let lastAcknowledged = "w-0";
        let fenced: unknown;
        let claiming: Promise<{ epoch: number }> | undefined;
        // The old owner writes on while the claim runs, until it is refused.
        for (let i = 1; i < 100_000; i++) {
          if (i === 4) claiming = other.claim("job/0", "b");
          try {
            await store.write("job/0", old.epoch, i % 5 === 0 ? "base" : "delta", bytes(`w-${i}`));
          } catch (e) {
            fenced = e;
            break;
          }
          lastAcknowledged = `w-${i}`;
        }
        const next = await claiming!;
        assert.ok(isFenced(fenced), `the old owner's writes go on after the claim: ${fenced}`);
        const read = await other.read("job/0");
        assert.ok(read !== undefined);
        const newest = read.deltas.at(-1) ?? read.base;
        assert.equal(Buffer.from(newest).toString(), lastAcknowledged);
        assert.equal(read.epoch, old.epoch);
        await other.write("job/0", next.epoch, "delta", bytes("b-1"));
      }));

    it("drop removes the checkpoints; the claim stays, so the task is still listed", () =>
      withStore(async (store) => {
        const { epoch } = await store.claim("job/0", "a");
        await store.write("job/0", epoch, "base", bytes("b"));
        await store.write("job/0", epoch, "delta", bytes("d"));
        await store.drop("job/0", epoch);
        assert.equal(await store.read("job/0"), undefined);
        assert.deepEqual(await store.list("job/"), ["job/0"]);
        const again = await store.claim("job/0", "b");
        assert.ok(again.epoch > epoch);
        assert.equal(await store.read("job/0"), undefined);
      }));

    it("lists the tasks with a claim or a checkpoint under a prefix, sorted", () =>
      withStore(async (store) => {
        const tasks = ["orders/1", "orders/0", "orders-eu/0", "Fraud.Rule ä/3", "orders/10"];
        for (const task of tasks) {
          const { epoch } = await store.claim(task, "a");
          if (task !== "orders/10") await store.write(task, epoch, "base", bytes(task));
        }
        assert.deepEqual(await store.list("orders/"), ["orders/0", "orders/1", "orders/10"]);
        assert.deepEqual(await store.list("Fraud.Rule ä/"), ["Fraud.Rule ä/3"]);
        assert.deepEqual(await store.list("nothing/"), []);
        assert.deepEqual(await store.list(""), [...tasks].sort());
        const { base } = (await store.read("Fraud.Rule ä/3"))!;
        assertBytes(base, bytes("Fraud.Rule ä/3"), "base of a task with a non-ASCII name");
      }));

    it(`round-trips a large state (${((options.largeStateBytes ?? 100e6) / 1e6).toFixed(0)} MB) and a delta on it`, () =>
      withStore(async (store, harness) => {
        const large = random(options.largeStateBytes ?? 100_000_000);
        const { epoch } = await store.claim("big/0", "a");
        await store.write("big/0", epoch, "base", large);
        await store.write("big/0", epoch, "delta", bytes("after"));
        const read = await (await harness.open()).read("big/0");
        assertCheckpoint(read, { epoch, base: large, deltas: [bytes("after")] });
      }));
  });

  describe(`checkpoint store conformance: ${name}, torn writes`, () => {
    const tearBytes = options.tearBytes ?? 4 * 1024 * 1024;
    for (const kind of ["base", "delta"] as const) {
      it(`a torn ${kind} leaves the state before it; a new owner continues from there`, async (t) => {
        const harness = await makeHarness();
        try {
          const tears = Object.entries(harness.tears ?? {});
          if (tears.length === 0) {
            t.skip("this store has no writes to tear");
            return;
          }
          for (const [tearName, tear] of tears) {
            const task = `torn-${kind}/${tearName}`;
            const store = await harness.open();
            const first = await store.claim(task, "a");
            await store.write(task, first.epoch, "base", bytes("base-0"));
            await store.write(task, first.epoch, "delta", bytes("delta-1"));
            const before = { epoch: first.epoch, base: bytes("base-0"), deltas: [bytes("delta-1")] };
            await tear(store, task, first.epoch, kind, random(tearBytes));
            assertCheckpoint(await store.read(task), before);
            // The crashed owner's successor restores that state and writes on top of it.
            const successor = await harness.open();
            const next = await successor.claim(task, "b");
            assertCheckpoint(await successor.read(task), before);
            await successor.write(task, next.epoch, "delta", bytes("delta-2"));
            assertCheckpoint(await (await harness.open()).read(task), {
              epoch: next.epoch,
              base: bytes("base-0"),
              deltas: [bytes("delta-1"), bytes("delta-2")],
            });
          }
        } finally {
          await harness.destroy();
        }
      });
    }
  });
}
