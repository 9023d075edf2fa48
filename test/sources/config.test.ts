/** The sources file and API bodies: valid specs pass; each mistake is refused naming the field. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseSourceSpec, parseSourcesText } from "../../src/sources/config.js";
import { parseLogfmt } from "../../src/sources/parsers.js";
import { topicMatches } from "../../src/sources/topics.js";

const YAML = `
sources:
  - name: devices
    type: mqtt
    url: mqtt://127.0.0.1:1883
    topics:
      - filter: devices/+/telemetry
        stream: telemetry
        fields: { device_id: 1 }
  - name: app-log
    type: file
    path: /var/log/app.log
    stream: app_logs
    format: lines
    parser: logfmt
  - name: orders
    type: kafka
    brokers: [127.0.0.1:9092]
    topic: orders
    stream: orders
`;

test("a valid YAML file parses into specs", () => {
  const specs = parseSourcesText(YAML, "sources.yaml");
  assert.deepEqual(
    specs.map((s) => [s.name, s.type]),
    [
      ["devices", "mqtt"],
      ["app-log", "file"],
      ["orders", "kafka"],
    ],
  );
});

test("JSON works too, as a bare list", () => {
  const specs = parseSourcesText(
    JSON.stringify([{ name: "a", type: "file", path: "/tmp/x", stream: "x" }]),
    "sources.json",
  );
  assert.equal(specs[0]!.name, "a");
});

const cases: [string, unknown, RegExp][] = [
  ["unknown type", { name: "a", type: "ftp" }, /body\.type must be one of mqtt, file, kafka/],
  ["missing field", { name: "a", type: "file", stream: "x" }, /body\.path is required/],
  ["unknown field", { name: "a", type: "file", path: "/x", stream: "x", speed: 1 }, /body: unknown field "speed"/],
  [
    "bad nested stream",
    { name: "a", type: "mqtt", url: "mqtt://h:1", topics: [{ filter: "a/#", stream: "Bad-Name" }] },
    /body\.topics\[0\]\.stream must be 1–64/,
  ],
  [
    "bad topic field level",
    { name: "a", type: "mqtt", url: "mqtt://h:1", topics: [{ filter: "a/#", stream: "s", fields: { d: -1 } }] },
    /body\.topics\[0\]\.fields\.d must be >= 0/,
  ],
  [
    "bad url",
    { name: "a", type: "mqtt", url: "http://h", topics: [{ filter: "a", stream: "s" }] },
    /body\.url must match/,
  ],
  [
    "bad regex",
    { name: "a", type: "file", path: "/x", stream: "x", format: "lines", parser: { regex: "(" } },
    /body\.parser\.regex is not a valid regular expression/,
  ],
  ["bad poll interval", { name: "a", type: "file", path: "/x", stream: "x", pollInterval: "soon" }, /pollInterval/],
  ["bad broker", { name: "a", type: "kafka", brokers: ["nohost"], topic: "t", stream: "s" }, /body\.brokers\[0\]/],
  ["bad name", { name: "A B", type: "file", path: "/x", stream: "x" }, /body\.name must be 1–64/],
];

for (const [what, spec, message] of cases) {
  test(`refused: ${what}`, () => {
    assert.throws(
      () => parseSourceSpec(spec, "body"),
      (e: Error) => message.test(e.message) || assert.fail(e.message),
    );
  });
}

test("file errors name the entry: sources[1]…", () => {
  assert.throws(
    () =>
      parseSourcesText(
        "sources:\n  - {name: a, type: file, path: /x, stream: x}\n  - {name: b, type: file}\n",
        "s.yaml",
      ),
    /sources\[1\]\.path is required/,
  );
  assert.throws(() => parseSourcesText("sources: [", "s.yaml"), /not valid YAML/);
  assert.throws(
    () =>
      parseSourcesText(
        "- {name: a, type: file, path: /x, stream: x}\n- {name: a, type: file, path: /y, stream: y}",
        "s.yaml",
      ),
    /sources\[1\]\.name "a" is used twice/,
  );
});

test("logfmt: bare keys, quoted values with escapes", () => {
  assert.deepEqual(parseLogfmt('level=info msg="disk \\"sda\\" full" took=12ms debug', 1000), {
    event: { level: "info", msg: 'disk "sda" full', took: "12ms", debug: true },
  });
  assert.ok("error" in parseLogfmt('msg="open', 1000));
});

test("MQTT topic filters", () => {
  assert.ok(topicMatches("devices/+/telemetry", "devices/d1/telemetry"));
  assert.ok(!topicMatches("devices/+/telemetry", "devices/d1/x/telemetry"));
  assert.ok(topicMatches("devices/#", "devices/d1/x"));
  assert.ok(topicMatches("devices/#", "devices"));
  assert.ok(!topicMatches("devices/+", "devices"));
  assert.ok(topicMatches("#", "a/b"));
});
