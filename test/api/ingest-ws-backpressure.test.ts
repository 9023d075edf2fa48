/**
 * WebSocket ingest pushes back on a producer through TCP when the log is slow to acknowledge:
 * with a log whose appends are held, the server takes at most MAX_IN_FLIGHT batches, stops
 * reading the socket, and the producer's unsent bytes pile up on its side; once the log answers,
 * reading resumes and every batch is acknowledged, in order, none lost.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fastifyWebsocket from "@fastify/websocket";
import Fastify from "fastify";
import WebSocket from "ws";
import { checkRouteAccess } from "../../src/api/auth/access.js";
import { MAX_IN_FLIGHT, registerWebSocketIngest } from "../../src/api/routes/ws.js";
import { loadConfig } from "../../src/config/config.js";
import type { StreamDefinition } from "../../src/control/types.js";
import { StreamIngestor } from "../../src/ingest/ingestor.js";
import type { AppendRecord, RecordPosition } from "../../src/log/types.js";
import { createMetrics } from "../../src/monitoring/metrics.js";
import { FakeLog } from "../helpers/fake-log.js";

/** The in-memory log with appends that wait until `release()`. */
class HeldLog extends FakeLog {
  appends = 0;
  private held: (() => void)[] | undefined = [];

  override async append(stream: string, records: readonly AppendRecord[]): Promise<RecordPosition[]> {
    this.appends++;
    if (this.held !== undefined) await new Promise<void>((resolve) => this.held!.push(resolve));
    return super.append(stream, records);
  }

  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const go of held) go();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

test("a held log stops the server reading: batches taken stay bounded and the producer's bytes back up", async (t) => {
  const log = new HeldLog();
  await log.createStream("ticks", { partitions: 2 });
  const stream: StreamDefinition = { name: "ticks", partitions: 2, timestampField: "timestamp", createdAt: "" };
  const metrics = createMetrics();
  const ingestor = new StreamIngestor({
    log,
    streams: { getStream: async (name) => (name === "ticks" ? stream : undefined) },
    clock: { now: () => Date.now() },
    metrics,
    maxEventBytes: 1 << 20,
  });
  const app = Fastify();
  checkRouteAccess(app, {
    authenticate: async () => ({ userId: "svc", username: "svc", role: "service", credential: "api_key" }),
  });
  await app.register(fastifyWebsocket, { options: { maxPayload: 1 << 20 } });
  registerWebSocketIngest(app, {
    ingestor,
    metrics,
    streams: { get: async (name: string) => (name === "ticks" ? stream : undefined) },
    config: loadConfig({}, {}),
  });
  const url = await app.listen({ host: "127.0.0.1", port: 0 });
  t.after(() => app.close());

  // 128 batches of 1000 events, ~100 KiB each: 12.8 MiB, far more than loopback socket buffers
  // hold while nobody reads.
  const frame = Buffer.from(
    `${Array.from({ length: 1000 }, (_, i) => JSON.stringify({ user_id: `u${i % 10}`, v: i, pad: "x".repeat(60) })).join("\n")}\n`,
  );
  const FRAMES = 128;
  const ws = new WebSocket(`${url.replace(/^http/, "ws")}/streams/ticks/ws`, {
    headers: { authorization: "Bearer k" },
  });
  t.after(() => ws.terminate());
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  const acks: number[] = [];
  ws.on("message", (data) => {
    const answer = JSON.parse(String(data)) as { type: string; seq: number; accepted?: number };
    assert.equal(answer.type, "ack", String(data));
    assert.equal(answer.accepted, 1000);
    acks.push(answer.seq);
  });
  for (let i = 0; i < FRAMES; i++) ws.send(frame);

  await until(() => log.appends >= MAX_IN_FLIGHT, "the first batches to reach the log");
  await sleep(500);
  const total = frame.byteLength * FRAMES;
  assert.equal(log.appends, MAX_IN_FLIGHT, "no batch past the in-flight bound is taken while the log holds");
  assert.equal(acks.length, 0);
  // What the server has not read stays with the producer: most of the 12.8 MiB is still unsent.
  assert.ok(ws.bufferedAmount > total / 2, `bufferedAmount ${ws.bufferedAmount} of ${total}`);
  const stuck = ws.bufferedAmount;
  await sleep(300);
  assert.equal(ws.bufferedAmount, stuck, "the producer's queue does not drain while the server is paused");

  log.release();
  await until(() => acks.length === FRAMES, "every batch to be acknowledged", 30_000);
  assert.deepEqual(
    acks,
    Array.from({ length: FRAMES }, (_, i) => i + 1),
  );
  assert.equal(ws.bufferedAmount, 0);
  const ends = await log.endOffsets("ticks");
  assert.equal(
    ends.reduce((a, b) => a + b, 0),
    FRAMES * 1000,
  );
});
