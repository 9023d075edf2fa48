/** The shape checks on raw JSON text: depth, members per object, duplicate names. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { JsonShapeError, parseShaped, parseShapedText, scanShape } from "../../src/ingest/json-limits.js";

const limits = { maxDepth: 4, maxFields: 3 };
const parse = (text: string, arrayOfItems = false) => {
  const bytes = Buffer.from(text);
  return parseShaped(bytes, 0, bytes.byteLength, text, limits, arrayOfItems);
};
const refused = (text: string, message: RegExp, item?: number, arrayOfItems = false) =>
  assert.throws(
    () => parse(text, arrayOfItems),
    (e: unknown) => e instanceof JsonShapeError && message.test(e.message) && e.item === item,
    text,
  );

test("depth: the limit is accepted, one more level refused naming the setting", () => {
  assert.deepEqual(parse('{"a":{"b":[{"c":1}]}}'), { a: { b: [{ c: 1 }] } });
  refused('{"a":{"b":[{"c":[1]}]}}', /deeper than 4 levels \(RUNNEL_MAX_JSON_DEPTH\)/);
});

test("depth: a million levels are refused at once, without recursion", () => {
  const text = `${"[".repeat(1_000_000)}${"]".repeat(1_000_000)}`;
  refused(text, /deeper than 4 levels/);
});

test("fields: members per object, at any depth, refused naming the setting", () => {
  assert.deepEqual(parse('{"a":1,"b":2,"c":{"x":1,"y":2,"z":3}}'), { a: 1, b: 2, c: { x: 1, y: 2, z: 3 } });
  refused('{"a":1,"b":2,"c":3,"d":4}', /more than 3 fields \(RUNNEL_MAX_JSON_FIELDS\)/);
  refused('{"a":{"w":1,"x":1,"y":2,"z":3}}', /more than 3 fields/);
});

test("braces, colons and escaped quotes inside strings are text, not structure", () => {
  assert.deepEqual(parse('{"a":"{{{{[[[[:::","b\\\\":"\\"}:{"}'), { a: "{{{{[[[[:::", "b\\": '"}:{' });
});

test("duplicate names are refused and named, at any depth, also when escaped differently", () => {
  refused('{"user_id":"alice","user_id":"bob"}', /duplicate field "user_id"/);
  refused('{"a":{"k":1,"k":2}}', /duplicate field "k"/);
  refused('{"a":[{"k":1},{"j":1,"j":2}]}', /duplicate field "j"/);
  refused('{"a":1,"\\u0061":2}', /duplicate field "a"/);
  // The same name in different objects is no duplicate.
  assert.deepEqual(parse('{"k":{"k":1},"j":[{"k":2},{"k":3}]}'), { k: { k: 1 }, j: [{ k: 2 }, { k: 3 }] });
});

test("a top-level array of items: each element measured alone, a refusal names its index", () => {
  assert.deepEqual(parse('[{"a":{"b":[{"c":1}]}},{"d":1}]', true), [{ a: { b: [{ c: 1 }] } }, { d: 1 }]);
  refused('[{"a":1},{"a":{"b":[{"c":[1]}]}}]', /deeper than 4/, 1, true);
  refused('[{"a":1},{"b":1},{"c":1,"c":2}]', /duplicate field "c"/, 2, true);
  refused('[{"a":1},{"a":1,"b":2,"c":3,"d":4}]', /more than 3 fields/, 1, true);
});

test("text that is not JSON is left to JSON.parse to refuse", () => {
  assert.throws(() => parse('{"a":1'), SyntaxError);
  assert.throws(() => parse("}}}]]]"), SyntaxError);
  // Not one value: parseNdjson then parses the line alone, so its error names it.
  for (const text of ['"unterminated', "}{", '{"a":1},{"b":2}', '{"a":[1']) {
    assert.equal(scanShape(Buffer.from(text), 0, text.length, limits), -1, text);
  }
});

test("records that arrive as strings (sources) are checked the same way, multi-byte text included", () => {
  assert.deepEqual(parseShapedText('{"é":"💥","a":"{"}', limits), { é: "💥", a: "{" });
  assert.throws(() => parseShapedText('{"é":1,"é":2}', limits), /duplicate field "é"/);
});
