import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_HOT_MS, hotWindowOf } from "../../src/archive/hot-window.js";
import { parseStreamSpec } from "../../src/catalog/stream-spec.js";
import { RunnelError } from "../../src/core/errors.js";

function refused(body: unknown, message: RegExp): void {
  assert.throws(
    () => parseStreamSpec(body, 4),
    (e: unknown) => e instanceof RunnelError && e.code === "invalid_input" && message.test(e.message),
  );
}

describe("the analytics option of a stream", () => {
  it("true or absent: indexed with the default hot window; false: log only", () => {
    for (const analytics of [undefined, true, {}]) {
      const spec = parseStreamSpec({ name: "s", analytics }, 4);
      assert.equal(spec.analytics, undefined);
      assert.equal(spec.hotMs, undefined);
      assert.equal(hotWindowOf(spec), DEFAULT_HOT_MS);
    }
    assert.equal(parseStreamSpec({ name: "s", analytics: false }, 4).analytics, false);
  });

  it('{"hot": duration} sets the hot window', () => {
    assert.equal(parseStreamSpec({ name: "s", analytics: { hot: "7d" } }, 4).hotMs, 7 * 86_400_000);
    assert.equal(parseStreamSpec({ name: "s", analytics: { hot: "90m" } }, 4).hotMs, 90 * 60_000);
    assert.equal(hotWindowOf(parseStreamSpec({ name: "s", analytics: { hot: "36h" } }, 4)), 36 * 3_600_000);
  });

  it('{"archive": duration} sets the archive tier\'s retention, longer than the hot window', () => {
    const spec = parseStreamSpec({ name: "s", analytics: { hot: "2d", archive: "365d" } }, 4);
    assert.equal(spec.hotMs, 2 * 86_400_000);
    assert.equal(spec.archiveRetentionMs, 365 * 86_400_000);
    assert.equal(parseStreamSpec({ name: "s", analytics: { archive: "8d" } }, 4).archiveRetentionMs, 8 * 86_400_000);
    refused(
      { name: "s", analytics: { archive: "7d" } },
      /analytics.archive must be a duration longer than analytics.hot/,
    );
    refused({ name: "s", analytics: { hot: "30d", archive: "20d" } }, /analytics.archive must be/);
    refused({ name: "s", analytics: { archive: 365 } }, /analytics.archive must be/);
  });

  it("refuses anything else, naming the field", () => {
    refused({ name: "s", analytics: "no" }, /analytics must be true or false, or an object such as \{"hot": "7d"\}/);
    refused({ name: "s", analytics: [] }, /^analytics must be/);
    refused({ name: "s", analytics: { cold: "1d" } }, /unknown field "analytics.cold"/);
    refused({ name: "s", analytics: { hot: 7 } }, /analytics.hot must be a duration from "1m" to "3650d"/);
    refused({ name: "s", analytics: { hot: "soon" } }, /analytics.hot must be a duration/);
    refused({ name: "s", analytics: { hot: "10s" } }, /analytics.hot must be a duration from "1m"/);
    refused({ name: "s", analytics: { hot: "3651d" } }, /analytics.hot must be a duration/);
  });
});
