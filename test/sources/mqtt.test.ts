/**
 * The MQTT source against a real Mosquitto: topic → stream mapping with fields from topic levels,
 * malformed payloads to the dead-letter stream, and QoS 1 messages published while Runnel is down
 * delivered after it starts again (persistent session; PUBACK only after durability).
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import mqtt, { type MqttClient } from "mqtt";
import { tempDataDir } from "../helpers/server-process.js";
import { type Instance, mqttUrl, startInstance, waitFor } from "./helpers.js";

const url = mqttUrl();
const prefix = `t${randomUUID().slice(0, 8)}`;
let data: Awaited<ReturnType<typeof tempDataDir>>;
let publisher: MqttClient;
let sourcesFile: string;

before(async () => {
  data = await tempDataDir();
  sourcesFile = join(data.dir, "sources.yaml");
  await writeFile(
    sourcesFile,
    `sources:
  - name: devices
    type: mqtt
    url: ${url}
    clientId: runnel-${prefix}
    topics:
      - filter: ${prefix}/devices/+/telemetry
        stream: telemetry
        fields: { device_id: 2 }
`,
  );
  publisher = await mqtt.connectAsync(url, { protocolVersion: 4 });
});
after(async () => {
  await publisher.endAsync();
  await data.remove();
});

async function start(): Promise<Instance> {
  return startInstance(data.dir, { RUNNEL_SOURCES_FILE: sourcesFile });
}

async function publish(device: string, payload: string): Promise<void> {
  await publisher.publishAsync(`${prefix}/devices/${device}/telemetry`, payload, { qos: 1 });
}

test("messages land in the mapped stream with the device id; malformed ones in the dead-letter stream", async () => {
  const r = await start();
  try {
    const created = await r.call("POST", "/api/v1/streams", { name: "telemetry", partitions: 2 });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const running = await waitFor(
      async () => (await r.call("GET", "/api/v1/sources/devices")).body,
      (s) => s.state === "running",
    );
    assert.equal(running.state, "running", JSON.stringify(running));
    await publish("d1", JSON.stringify({ user_id: "ann", temp: 21.5 }));
    await publish("d2", JSON.stringify({ user_id: "bob", temp: 19 }));
    await publish("d3", "not json at all");
    await publish("d4", JSON.stringify({ temp: 1 }));
    assert.equal(await r.countUntil("SELECT count(*) FROM telemetry", 2), 2);
    assert.equal(await r.count("SELECT count(*) FROM telemetry WHERE device_id = 'd1' AND user_id = 'ann'"), 1);
    assert.equal(await r.countUntil("SELECT count(*) FROM telemetry_dead_letter", 2), 2);
    const dl = await r.call("POST", "/api/v1/query", {
      sql: "SELECT topic, reason, payload FROM telemetry_dead_letter ORDER BY topic",
    });
    const rows = dl.body.rows as string[][];
    assert.equal(rows[0]![0], `${prefix}/devices/d3/telemetry`);
    assert.match(rows[0]![1]!, /not JSON/);
    assert.equal(rows[0]![2], "not json at all");
    assert.match(rows[1]![1]!, /user_id is required/);
    const list = (await r.call("GET", "/api/v1/sources")).body.sources as {
      name: string;
      metrics: { accepted: number; deadLettered: number };
    }[];
    const devices = list.find((s) => s.name === "devices")!;
    assert.equal(devices.metrics.accepted, 2);
    assert.equal(devices.metrics.deadLettered, 2);
  } finally {
    await r.runnel.stop();
  }
});

test("QoS 1 messages published while Runnel is down arrive after it starts again", async () => {
  for (let i = 0; i < 5; i++) await publish("d9", JSON.stringify({ user_id: "cy", n: i }));
  const r = await start();
  try {
    assert.equal(await r.countUntil("SELECT count(*) FROM telemetry WHERE device_id = 'd9'", 5), 5);
  } finally {
    await r.runnel.stop();
  }
});
