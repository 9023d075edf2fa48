/**
 * Ingest's column-type check against the real catalogue (ColumnCatalog over PGlite): races between
 * requests typing one new field, and two instances sharing one control database.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ColumnCatalog } from "../../src/catalog/columns.js";
import { createPgliteControlStore } from "../../src/control/index.js";
import type { ControlStore } from "../../src/control/types.js";
import { RunnelError } from "../../src/core/errors.js";
import { ColumnCheck } from "../../src/ingest/column-check.js";

let control: ControlStore;
let n = 0;

before(async () => {
  control = createPgliteControlStore();
  await control.open();
});
after(() => control.close());

async function stream(): Promise<{ name: string }> {
  const name = `s${++n}`;
  await control.createStream({ name, partitions: 1, timestampField: "timestamp" });
  return { name };
}

async function ingest(catalog: ColumnCatalog, target: { name: string }, events: Record<string, unknown>[]) {
  const check = (await ColumnCheck.begin(catalog, target))!;
  events.forEach((e, i) => {
    check.check(e, i);
  });
  await check.settle(events);
}

function refusedWith(code: string, pattern: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof RunnelError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  };
}

test("two requests giving a new field different first types: one is registered, the other refused", async () => {
  const catalog = new ColumnCatalog({ control, maxColumns: 100 });
  const target = await stream();
  const results = await Promise.allSettled([
    ingest(catalog, target, [{ x: 1 }]),
    ingest(catalog, target, [{ x: "one" }]),
  ]);
  assert.deepEqual(results.map((r) => r.status).sort(), ["fulfilled", "rejected"]);
  const refused = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
  assert.ok(
    refused.reason instanceof RunnelError && refused.reason.code === "column_type_mismatch",
    String(refused.reason),
  );
  assert.equal((await control.listStreamColumns(target.name)).length, 1);
});

test("within one request the first value types a new field, and a later misfit refuses the request, registering nothing", async () => {
  const catalog = new ColumnCatalog({ control, maxColumns: 100 });
  const target = await stream();
  await assert.rejects(
    ingest(catalog, target, [{ y: true }, { y: 2 }]),
    refusedWith("column_type_mismatch", /"y" is an integer, which does not fit its column of type BOOLEAN/),
  );
  assert.deepEqual(await control.listStreamColumns(target.name), []);
  // Integers then a fraction in one request: DOUBLE from the start.
  await ingest(catalog, target, [{ z: 1 }, { z: 1.5 }]);
  assert.deepEqual(await control.listStreamColumns(target.name), [{ name: "z", type: "DOUBLE" }]);
});

test("a widening made through another instance is seen at the first refusal it would lift", async () => {
  const here = new ColumnCatalog({ control, maxColumns: 100, refreshMs: 0 });
  const there = new ColumnCatalog({ control, maxColumns: 100 });
  const target = await stream();
  await ingest(here, target, [{ amount: 5 }]);
  await there.widen(target.name, { amount: "VARCHAR" });
  await ingest(here, target, [{ amount: "lots" }]);
  assert.deepEqual(await control.listStreamColumns(target.name), [{ name: "amount", type: "VARCHAR" }]);
});

test("the column bound names the event and the limit; base columns never count", async () => {
  const catalog = new ColumnCatalog({ control, maxColumns: 2 });
  const target = await stream();
  await ingest(catalog, target, [{ user_id: "u", _time: 1, a: 1 }]);
  await assert.rejects(
    ingest(catalog, target, [{ a: 2 }, { b: 1, c: 1 }]),
    refusedWith("too_many_columns", /"c" would be a new column past the limit of 2 columns/),
  );
  assert.deepEqual(await control.listStreamColumns(target.name), [{ name: "a", type: "BIGINT" }]);
});
