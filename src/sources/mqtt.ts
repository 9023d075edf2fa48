/**
 * MQTT source: subscribes to topic filters on a broker and appends each message to the stream
 * its filter maps to, with fields taken from topic levels (`devices/+/telemetry` with
 * `{device_id: 1}`). With QoS 1 the PUBACK leaves only after the event is durable: mqtt.js sends
 * it when `handleMessage`'s callback runs, so the append happens inside handleMessage, and a
 * persistent session (fixed client id, clean: false) makes the broker redeliver whatever Runnel
 * had not acknowledged when it stopped or crashed.
 *
 * mqtt.js hands over one message at a time and waits for its callback, so each message is one
 * durable append; concurrent appends from other sources still share the log's fsync.
 */
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from "mqtt";
import type { JsonLimits } from "../ingest/json-limits.js";
import type { Candidate, Delivery } from "./deliver.js";
import { parseJsonObject } from "./parsers.js";
import { topicMatches } from "./topics.js";
import type { MqttSourceSpec, MqttTopicSpec, RunningSource } from "./types.js";

const RETRY_MS = 500;
const CONNECT_TIMEOUT_MS = 10_000;

export class MqttSource implements RunningSource {
  private client: MqttClient | undefined;
  private stopping = false;
  private trouble: string | undefined;

  constructor(
    private readonly spec: MqttSourceSpec,
    private readonly delivery: Delivery,
    private readonly limits: JsonLimits,
  ) {}

  async start(): Promise<void> {
    const spec = this.spec;
    const protocolVersion = spec.protocolVersion ?? 5;
    const options: IClientOptions = {
      protocolVersion,
      clientId: spec.clientId ?? `runnel-${spec.name}`,
      clean: false,
      reconnectPeriod: 1000,
      connectTimeout: CONNECT_TIMEOUT_MS,
      ...(protocolVersion === 5 && { properties: { sessionExpiryInterval: 7 * 24 * 3600 } }),
      ...(spec.username !== undefined && { username: spec.username }),
      ...(spec.password !== undefined && { password: spec.password }),
    };
    const client = mqtt.connect(spec.url, options);
    this.client = client;
    client.handleMessage = (packet, callback) => {
      this.onMessage(packet as IPublishPacket).then(
        () => callback(),
        // Only reached when stopping: leave the message unacknowledged for the next session.
        () => undefined,
      );
    };
    client.on("error", (e) => {
      this.trouble = `broker: ${e.message}`;
    });
    client.on("offline", () => {
      this.trouble ??= "disconnected from the broker; reconnecting";
    });
    client.on("connect", () => {
      this.trouble = undefined;
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => fail(new Error(`no answer from ${spec.url} in ${CONNECT_TIMEOUT_MS} ms`)),
        CONNECT_TIMEOUT_MS,
      );
      const fail = (e: Error): void => {
        clearTimeout(timer);
        client.removeListener("connect", ok);
        client.end(true);
        reject(e);
      };
      const ok = (): void => {
        clearTimeout(timer);
        client.removeListener("error", fail);
        resolve();
      };
      client.once("connect", ok);
      client.once("error", fail);
    });
    const qos = spec.qos ?? 1;
    const granted = await client.subscribeAsync(
      spec.topics.map((t) => t.filter),
      { qos },
    );
    const refused = granted.find((g) => g.qos === 128 || g.qos > 2);
    if (refused) throw new Error(`the broker refused the subscription to "${refused.topic}"`);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const client = this.client;
    this.client = undefined;
    if (client) await client.endAsync(true);
  }

  health(): { state: "running" | "lagging" | "failed"; reason?: string } {
    return this.trouble === undefined ? { state: "running" } : { state: "lagging", reason: this.trouble };
  }

  private async onMessage(packet: IPublishPacket): Promise<void> {
    const topic = packet.topic;
    const mapping = this.spec.topics.find((t) => topicMatches(t.filter, topic));
    if (mapping === undefined) return;
    const candidate = toCandidate(packet, mapping, this.spec.userId, this.limits);
    for (;;) {
      if (this.stopping) throw new Error("stopping");
      try {
        await this.delivery.deliver(mapping.stream, [candidate]);
        if (this.trouble?.startsWith("append")) this.trouble = undefined;
        return;
      } catch (e) {
        this.trouble = `append to ${mapping.stream} failed: ${(e as Error).message}; retrying`;
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  }
}

function toCandidate(
  packet: IPublishPacket,
  mapping: MqttTopicSpec,
  userId: string | undefined,
  limits: JsonLimits,
): Candidate {
  const payload = typeof packet.payload === "string" ? packet.payload : Buffer.from(packet.payload).toString("utf8");
  const origin = { topic: packet.topic };
  const parsed = parseJsonObject(payload, limits, "payload");
  if ("error" in parsed) return { payload, origin, error: parsed.error };
  const event = parsed.event;
  if (mapping.fields !== undefined) {
    const levels = packet.topic.split("/");
    for (const [field, level] of Object.entries(mapping.fields)) {
      if (levels[level] !== undefined) event[field] = levels[level];
    }
  }
  if (userId !== undefined && event.user_id === undefined) event.user_id = userId;
  return { payload, origin, event };
}
