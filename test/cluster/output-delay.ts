/**
 * How long events waited for their output, per input partition: the output record's append time
 * less its input event's (both the appending process's clock: one machine). Unlike the gap between
 * output records, this does not count a time the input itself was quiet (the load's client waiting
 * on a slow or paused instance), only a time the pipeline held events back.
 */
import type { EventLog, LogRecord } from "../../src/log/types.js";
import { readFrom } from "./load.js";

const decoder = new TextDecoder();

export interface Delay {
  readonly ms: number;
  readonly partition: number;
  /** The event that waited longest (its `id`), or -1 when none was in the window. */
  readonly id: number;
}

/** The ids and append times of a stream's records (the `id` field of their values). */
function appendTimes(records: readonly LogRecord[]): Map<number, LogRecord> {
  const out = new Map<number, LogRecord>();
  for (const r of records) {
    const id = (JSON.parse(decoder.decode(r.value)) as { id: number }).id;
    if (!out.has(id)) out.set(id, r);
  }
  return out;
}

/**
 * The longest an event of `partitions` appended to `input` within [from, to] waited for its record
 * in `output` (only the events `passes` keeps); an event with no output by `to` waited until `to`.
 */
export async function longestDelay(
  log: EventLog,
  input: string,
  output: string,
  partitions: readonly number[],
  from: number,
  to: number,
  passes: (value: { id: number; n: number }) => boolean,
): Promise<Delay> {
  const outputs = appendTimes(await readFrom(log, output));
  let worst: Delay = { ms: 0, partition: -1, id: -1 };
  for (const r of await readFrom(log, input)) {
    if (!partitions.includes(r.partition) || r.ingestTime < from || r.ingestTime > to) continue;
    const value = JSON.parse(decoder.decode(r.value)) as { id: number; n: number };
    if (!passes(value)) continue;
    const out = outputs.get(value.id);
    const ms = (out === undefined ? to : out.ingestTime) - r.ingestTime;
    if (ms > worst.ms) worst = { ms, partition: r.partition, id: value.id };
  }
  return worst;
}

/**
 * The longest time within [from, to] that any of `partitions` of `input` took no new event (the
 * load's client waiting on a slow or paused instance stops the input of every partition).
 */
export async function longestInputGap(
  log: EventLog,
  input: string,
  partitions: readonly number[],
  from: number,
  to: number,
): Promise<{ ms: number; partition: number }> {
  const last = new Map<number, number>(partitions.map((p) => [p, from]));
  let worst = { ms: 0, partition: -1 };
  const records = (await readFrom(log, input)).filter((r) => r.ingestTime >= from && r.ingestTime <= to);
  records.sort((x, y) => x.ingestTime - y.ingestTime);
  const gap = (partition: number, at: number) => {
    const ms = at - (last.get(partition) as number);
    if (ms > worst.ms) worst = { ms, partition };
    last.set(partition, at);
  };
  for (const r of records) if (last.has(r.partition)) gap(r.partition, r.ingestTime);
  for (const p of partitions) gap(p, to);
  return worst;
}
