/**
 * A Produce request (v9, Kafka 2.8 and later) carrying record batches encoded beforehand
 * (record-batch.ts), sent on a connection of the client's network layer; the response is parsed,
 * and its errors raised, by the client's own Produce v9 parser, so they reach errors.ts as any
 * client error does.
 */
import type { Connection, Writer as WriterType } from "@platformatic/kafka";
import { createAPI, ProduceAcks, produceV9, Writer } from "@platformatic/kafka";

export interface PartitionBatch {
  readonly partition: number;
  /** One record batch (the broker takes exactly one per partition and request). */
  readonly batch: Buffer;
}

export interface TopicBatches {
  readonly topic: string;
  readonly partitions: readonly PartitionBatch[];
}

/** Base offset the broker gave each partition's batch, by topic then partition. */
export type BaseOffsets = Map<string, Map<number, number>>;

/*
  Produce Request (Version: 9) => transactional_id acks timeout_ms [topic_data] TAG_BUFFER
    topic_data => name [partition_data] TAG_BUFFER
      partition_data => index records TAG_BUFFER (records: COMPACT_RECORDS)
*/
function createRequest(transactionalId: string | null, timeoutMs: number, topics: readonly TopicBatches[]): WriterType {
  return Writer.create()
    .appendString(transactionalId)
    .appendInt16(ProduceAcks.ALL)
    .appendInt32(timeoutMs)
    .appendArray([...topics], (w, t) => {
      w.appendString(t.topic).appendArray([...t.partitions], (w, p) => {
        w.appendInt32(p.partition)
          .appendUnsignedVarInt(p.batch.length + 1)
          .append(p.batch);
      });
    })
    .appendTaggedFields();
}

const produceBatches = createAPI<[string | null, number, readonly TopicBatches[]], produceV9.ProduceResponse>(
  0,
  9,
  createRequest,
  produceV9.parseResponse,
);

/** Sends the batches with acks=all and resolves with each partition's base offset. */
export async function produce(
  connection: Connection,
  transactionalId: string | null,
  timeoutMs: number,
  topics: readonly TopicBatches[],
): Promise<BaseOffsets> {
  const response = await produceBatches.async(connection, transactionalId, timeoutMs, topics);
  const out: BaseOffsets = new Map();
  for (const t of response.responses) {
    const partitions = new Map<number, number>();
    for (const p of t.partitionResponses) partitions.set(p.index, Number(p.baseOffset));
    out.set(t.name, partitions);
  }
  return out;
}
