/**
 * Kafka topic source: consumes an external topic (JSON values) into a stream with a consumer
 * group of its own. Offsets are committed only after the batch is durable in Runnel's log, so a
 * crash re-delivers at most the last uncommitted batch and loses nothing.
 */
import { COOPERATIVE_STICKY_ASSIGNOR, Consumer, type Message, type MessagesStream } from "@platformatic/kafka";
import type { JsonLimits } from "../ingest/json-limits.js";
import type { Candidate, Delivery } from "./deliver.js";
import { parseJsonObject } from "./parsers.js";
import type { KafkaSourceSpec, RunningSource, SourceCounters } from "./types.js";

const MAX_BATCH = 1000;
const RETRY_MS = 500;

type RawMessage = Message<Buffer, Buffer, Buffer, Buffer>;

export class KafkaSource implements RunningSource {
  private consumer: Consumer<Buffer, Buffer, Buffer, Buffer> | undefined;
  private stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
  private loop: Promise<void> | undefined;
  private stopping = false;
  private trouble: string | undefined;

  constructor(
    private readonly spec: KafkaSourceSpec,
    private readonly deps: { delivery: Delivery; counters: SourceCounters; jsonLimits: JsonLimits },
  ) {}

  async start(): Promise<void> {
    const spec = this.spec;
    this.consumer = new Consumer({
      clientId: `runnel-source-${spec.name}`,
      bootstrapBrokers: [...spec.brokers],
      groupId: spec.group ?? `runnel-source-${spec.name}`,
      autocommit: false,
      // Cooperative rebalancing (KIP-429): when another instance joins or leaves the group, only
      // the partitions that move pause; the rest keep flowing, with no stop-the-world revoke.
      protocols: [{ name: COOPERATIVE_STICKY_ASSIGNOR, version: 3 }],
    });
    this.stream = await this.consumer.consume({
      topics: [spec.topic],
      mode: "committed",
      fallbackMode: spec.startAt ?? "earliest",
    });
    this.stream.on("error", (e: Error) => {
      this.trouble = `consumer: ${e.message}`;
    });
    this.loop = this.run(this.stream);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.stream?.close().catch(() => undefined);
    await this.loop?.catch(() => undefined);
    await this.consumer?.close().catch(() => undefined);
    this.consumer = undefined;
  }

  health(): { state: "running" | "lagging" | "failed"; reason?: string } {
    return this.trouble === undefined ? { state: "running" } : { state: "lagging", reason: this.trouble };
  }

  private async run(stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>): Promise<void> {
    let batch: RawMessage[] = [];
    for await (const message of stream) {
      batch.push(message as RawMessage);
      // Deliver what has arrived once the stream has nothing more buffered, or a full batch.
      if (batch.length >= MAX_BATCH || stream.readableLength === 0) {
        await this.flush(batch);
        batch = [];
      }
      if (this.stopping) return;
    }
  }

  private async flush(batch: readonly RawMessage[]): Promise<void> {
    const candidates = batch.map((m) => this.toCandidate(m));
    for (;;) {
      if (this.stopping) return;
      try {
        await this.deps.delivery.deliver(this.spec.stream, candidates);
        break;
      } catch (e) {
        this.trouble = `append to ${this.spec.stream} failed: ${(e as Error).message}; retrying`;
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
    this.trouble = undefined;
    // The last message of each partition commits everything before it in that partition.
    const last = new Map<number, RawMessage>();
    for (const m of batch) last.set(m.partition, m);
    await Promise.all([...last.values()].map((m) => m.commit()));
  }

  private toCandidate(m: RawMessage): Candidate {
    const payload = m.value === undefined || m.value === null ? "" : m.value.toString("utf8");
    const origin = { topic: m.topic, partition: m.partition, offset: Number(m.offset) };
    const parsed = parseJsonObject(payload, this.deps.jsonLimits, "value");
    if ("error" in parsed) return { payload, origin, error: parsed.error };
    const event = parsed.event;
    if (this.spec.userId !== undefined && event.user_id === undefined) event.user_id = this.spec.userId;
    return { payload, origin, event };
  }
}
