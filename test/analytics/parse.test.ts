/**
 * DuckDB's parse of a query (src/analytics/sql/parse.ts) is kept by the query's text: asked again,
 * the same text gives the same tree, as a copy no earlier caller can have changed, and the same
 * refusal.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type ParseNode, parseSelects, renderExpression } from "../../src/analytics/sql/parse.js";
import { isRunnelError } from "../../src/core/errors.js";

describe("parseSelects", () => {
  it("answers a text asked again with an equal tree of its own", async () => {
    const sql = "SELECT sum(data) FROM clicks WHERE _time > now() - INTERVAL 24 HOUR";
    const [first] = await parseSelects(sql);
    const copy = structuredClone(first);
    (first as { [key: string]: unknown }).from_table = "changed by a caller";
    const [second] = await parseSelects(sql);
    assert.deepEqual(second, copy);
    assert.notEqual(second, first);
    // A different text is parsed anew.
    const [other] = await parseSelects("SELECT 1");
    assert.notDeepEqual(other, copy);
  });

  it("refuses a text again as it did the first time", async () => {
    for (let i = 0; i < 2; i++) {
      await assert.rejects(parseSelects("SELEC 1"), (e: unknown) => isRunnelError(e) && e.code === "invalid_query");
      await assert.rejects(
        parseSelects("DELETE FROM clicks"),
        (e: unknown) => isRunnelError(e) && e.code === "query_forbidden",
      );
    }
  });

  it("renders an expression the same way each time", async () => {
    const [statement] = await parseSelects("SELECT now() - INTERVAL 2 HOUR");
    const expression = (statement!.select_list as ParseNode[])[0]!;
    const once = await renderExpression(expression);
    assert.match(once, /now\(\)/);
    assert.equal(await renderExpression(expression), once);
  });
});
