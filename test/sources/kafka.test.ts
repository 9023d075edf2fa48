/**
 * The Kafka topic source against the real broker of scripts/kafka.sh: JSON values land in the
 * stream, malformed ones in the dead-letter stream, and the group's committed offsets move only
 * past what is durable, so a restart neither loses nor repeats records.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Admin, Producer, stringSerializers } from "@platformatic/kafka";
import { tempDataDir } from "../helpers/server-process.js";
import { type Instance, startInstance, waitFor } from "./helpers.js";

function brokers(): string[] {
  const fromEnv = process.env.RUNNEL_TEST_KAFKA_BROKERS;
  const root = new URL("../..", import.meta.url).pathname;
  const address =
    fromEnv !== undefined && fromEnv !== ""
      ? fromEnv
      : execFileSync("bash", [`${root}scripts/kafka.sh`], {
          encoding: "utf8",
          stdio: ["ignore", "pipe", "inherit"],
        }).trim();
  return address.split(",");
}

const BROKERS = brokers();
const TOPIC = `runnel-source-test-${randomBytes(4).toString("hex")}`;
let data: Awaited<ReturnType<typeof tempDataDir>>;
let sourcesFile: string;
let producer: Producer<string, string, string, string>;
let admin: Admin;

before(async () => {
  data = await tempDataDir();
  admin = new Admin({ clientId: "runnel-source-test-admin", bootstrapBrokers: BROKERS });
  await admin.createTopics({ topics: [TOPIC], partitions: 2, replicas: 1 });
  producer = new Producer({
    clientId: "runnel-source-test",
    bootstrapBrokers: BROKERS,
    serializers: stringSerializers,
  });
  sourcesFile = join(data.dir, "sources.yaml");
  await writeFile(
    sourcesFile,
    `sources:
  - name: orders
    type: kafka
    brokers: [${BROKERS.join(", ")}]
    topic: ${TOPIC}
    stream: orders
`,
  );
});
after(async () => {
  await producer.close();
  await admin.deleteTopics({ topics: [TOPIC] }).catch(() => undefined);
  await admin.close();
  await data.remove();
});

async function produce(values: string[]): Promise<void> {
  await producer.send({ messages: values.map((value, i) => ({ topic: TOPIC, key: `k${i}`, value })) });
}

async function start(): Promise<Instance> {
  const r = await startInstance(data.dir, { RUNNEL_SOURCES_FILE: sourcesFile });
  const res = await r.call("POST", "/api/v1/streams", { name: "orders", partitions: 2 });
  assert.ok(res.status === 201 || res.status === 409, JSON.stringify(res.body));
  return r;
}

test("JSON values land in the stream; malformed ones in the dead-letter stream", { timeout: 120_000 }, async () => {
  await produce([
    ...Array.from({ length: 20 }, (_, n) => JSON.stringify({ user_id: `u${n % 3}`, n })),
    "{not json",
    JSON.stringify([1, 2]),
  ]);
  const r = await start();
  try {
    assert.equal(await r.countUntil("SELECT count(*) FROM orders", 20, 60_000), 20);
    assert.equal(await r.countUntil("SELECT count(*) FROM orders_dead_letter", 2, 30_000), 2);
    const status = await waitFor(
      async () => (await r.call("GET", "/api/v1/sources/orders")).body,
      (s) => (s.metrics as { accepted: number }).accepted === 20,
    );
    assert.equal(status.state, "running", JSON.stringify(status));
    // Instances added later share the group without stopping the others' partitions.
    const group = (await admin.describeGroups({ groups: ["runnel-source-orders"] })).get("runnel-source-orders");
    assert.equal(group?.protocol, "cooperative-sticky");
  } finally {
    await r.runnel.stop();
  }
});

test("after a restart the group resumes past what was durable: nothing lost, nothing repeated", {
  timeout: 120_000,
}, async () => {
  await produce(Array.from({ length: 10 }, (_, n) => JSON.stringify({ user_id: "late", n: 100 + n })));
  const r = await start();
  try {
    assert.equal(await r.countUntil("SELECT count(*) FROM orders", 30, 60_000), 30);
    // Give a wrongly re-delivered batch time to show up before checking for duplicates.
    await new Promise((res) => setTimeout(res, 1000));
    assert.equal(await r.count("SELECT count(*) FROM orders"), 30);
    assert.equal(await r.count("SELECT count(DISTINCT n) FROM orders"), 30);
  } finally {
    await r.runnel.stop();
  }
});
