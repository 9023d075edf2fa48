import { type EventLog, type FencedWriter, type LogRecord, partitionForKey } from "../log/types.js";
import { decodeRecord } from "../stream/codec.js";
import type { StreamEvent } from "../stream/event.js";
import { combineWatermarks } from "../stream/time/watermarks.js";

/**
 * What travels through an exchange stream (./exchange.ts) besides the events: each copy names the
 * event it copies, and watermark markers carry each upstream task's event time to every
 * downstream task, as Flink broadcasts watermarks (and idleness, its WatermarkStatus) to every
 * downstream channel of a keyBy.
 */

/** On a copy: `<partition>:<offset>:<append time>:<key>` of the original event. */
export const HEADER_ORIGIN = "runnel-origin";
/**
 * On a marker: `<channel>:<watermark or empty before any event>:<1 idle | 0 active>`, and on an
 * idle one `:<next input offset>`, where its task had read its input partition up to.
 */
export const HEADER_WATERMARK = "runnel-watermark";

export function originHeader(e: StreamEvent): string {
  return `${e.partition}:${e.offset}:${e.ingestTime}:${e.key}`;
}

/**
 * A copy read from an exchange stream as the event it copies (its key, partition, offset and append
 * time), so a job sees the same event, and derives the same output ids, as if it read the input.
 */
export function decodeCopy(record: LogRecord): StreamEvent {
  const e = decodeRecord(record);
  const origin = record.headers?.[HEADER_ORIGIN];
  if (origin === undefined) return e;
  const a = origin.indexOf(":");
  const b = origin.indexOf(":", a + 1);
  const c = origin.indexOf(":", b + 1);
  return {
    value: e.value,
    key: origin.slice(c + 1),
    timestamp: e.timestamp,
    ingestTime: Number(origin.slice(b + 1, c)),
    partition: Number(origin.slice(0, a)),
    offset: Number(origin.slice(a + 1, b)),
  };
}

export function markerHeader(channel: number, watermark: number, idle: boolean, position?: number): string {
  const head = `${channel}:${Number.isFinite(watermark) ? watermark : ""}`;
  if (!idle) return `${head}:0`;
  return position === undefined ? `${head}:1` : `${head}:1:${position}`;
}

/**
 * One watermark per upstream channel, combined as ./../stream/time/watermarks.ts combines
 * partitions (and as Flink's StatusWatermarkValve combines input channels): the minimum over the
 * channels not idle; when every channel is idle, the largest; never back.
 *
 * An upstream task reports its partition idle after finding nothing to read for a while, but its
 * partition may have taken records since, which that task (scheduled late on a busy machine) has
 * not read yet: counted idle, it would let time pass them, and they would arrive late. So an idle
 * marker says where its task had read to, and a channel counts as idle only while its input
 * partition holds no record from there on (Kafka Streams checks the end offsets of its empty
 * partitions the same way before it processes past them). The driver finds that out (./driver.ts
 * `upstreamStream`); a marker from an older task, or a channel restored from a checkpoint, says no
 * offset and is taken as it says until its next marker.
 */
export class ChannelWatermarks {
  readonly watermarks: number[];
  readonly idle: boolean[];
  /**
   * Per channel, the input offset of the last copy taken. A channel's copies arrive in its input's
   * order, so one at or before it is a second copy of an event taken already: one a stale owner
   * of the upstream task wrote before it learnt it was fenced, as the new owner wrote it again.
   */
  readonly offsets: number[];
  /** Per idle channel, the input offset its task had read to when it said so; -1: not said. */
  private readonly idleOffsets: number[];
  private current = Number.NEGATIVE_INFINITY;

  constructor(channels: number) {
    this.watermarks = new Array<number>(channels).fill(Number.NEGATIVE_INFINITY);
    this.idle = new Array<boolean>(channels).fill(false);
    this.offsets = new Array<number>(channels).fill(-1);
    this.idleOffsets = new Array<number>(channels).fill(-1);
  }

  /** The channels said idle at a known input offset, with that offset: those `update` may be told are not. */
  idleAt(): [channel: number, offset: number][] {
    const out: [number, number][] = [];
    for (let c = 0; c < this.idle.length; c++) {
      const at = this.idleOffsets[c] as number;
      if (this.idle[c] && at >= 0) out.push([c, at]);
    }
    return out;
  }

  /** Hot path: false for a copy of an event already taken (see `offsets`). */
  fresh(channel: number, offset: number): boolean {
    if (offset <= (this.offsets[channel] as number)) return false;
    this.offsets[channel] = offset;
    return true;
  }

  get watermark(): number {
    return this.current;
  }

  restore(
    watermark: number,
    watermarks: readonly (number | null)[],
    idle: readonly boolean[],
    offsets: readonly number[],
  ): void {
    this.current = watermark;
    for (let c = 0; c < this.watermarks.length; c++) {
      this.watermarks[c] = watermarks[c] ?? Number.NEGATIVE_INFINITY;
      this.idle[c] = idle[c] === true;
      this.offsets[c] = offsets[c] ?? -1;
    }
  }

  /** Takes a marker's header; throws on one that is not a marker of a known channel. */
  observe(header: string): void {
    const a = header.indexOf(":");
    const b = header.indexOf(":", a + 1);
    const channel = Number(header.slice(0, a));
    const raw = header.slice(a + 1, b);
    const watermark = raw === "" ? Number.NEGATIVE_INFINITY : Number(raw);
    if (!(channel >= 0 && channel < this.watermarks.length) || Number.isNaN(watermark) || b < 0) {
      throw new Error(`not a watermark marker of ${this.watermarks.length} channels: ${header}`);
    }
    // Markers of one channel arrive in order, but a replay upstream may repeat an older one: ignored.
    if (watermark < (this.watermarks[channel] as number)) return;
    this.watermarks[channel] = watermark;
    const c = header.indexOf(":", b + 1);
    this.idle[channel] = header.slice(b + 1, c < 0 ? undefined : c) === "1";
    const at = c < 0 ? -1 : Number(header.slice(c + 1));
    this.idleOffsets[channel] = this.idle[channel] && Number.isSafeInteger(at) && at >= 0 ? at : -1;
  }

  /**
   * The combined watermark. `unread`: channels said idle (see idleAt()) whose input partitions
   * hold records from that offset on, which are not idle then; null: that could not be found out,
   * so no such channel counts as idle. Undefined: idleness as the markers say.
   */
  update(unread?: ReadonlySet<number> | null): number {
    let idle: readonly boolean[] = this.idle;
    if (unread !== undefined) {
      idle = this.idle.map(
        (said, c) => said && ((this.idleOffsets[c] as number) < 0 || (unread !== null && !unread.has(c))),
      );
    }
    const next = combineWatermarks(this.watermarks, idle, 0);
    if (next > this.current) this.current = next;
    return this.current;
  }
}

/** The marker stream of a job whose tasks share event time (SharedWatermarks). */
export function markerStream(job: string): string {
  return `__watermarks_${job.replace(/[^A-Za-z0-9_.-]/g, "_")}`;
}

/** For each partition of an `n`-partition stream, a key the log places there (markers are addressed with them). */
export function partitionKeys(n: number): string[] {
  const keys = new Array<string>(n);
  let found = 0;
  for (let i = 0; found < n; i++) {
    const key = `~${i}`;
    const p = partitionForKey(key, n);
    if (keys[p] === undefined) {
      keys[p] = key;
      found++;
    }
  }
  return keys;
}

const EMPTY_VALUE = new TextEncoder().encode("{}");

/**
 * Event time shared by the tasks of a job that read their input partitions directly (a window
 * grouped by the partition key: no key spans partitions, so no exchange), through a small stream
 * of watermark markers with as many partitions as the input: each task broadcasts its partition's
 * watermark and idleness into every partition of it when they change, and reads its own partition
 * of it for the others'. A task's event time is then the minimum over every input partition, as
 * when one task read them all, and as an exchange would give; only the markers cross.
 */
export class SharedWatermarks {
  readonly channels: ChannelWatermarks;
  /** Next offset to read in the task's partition of the marker stream. */
  position = 0;
  private sent: string | undefined;
  private readonly keys: readonly string[];
  private readonly prefix: string;

  constructor(
    private readonly log: EventLog,
    readonly stream: string,
    private readonly own: number,
    channels: number,
    /** Appends the markers when given (the task's fenced writer): a stale owner's are refused. */
    private readonly writer?: FencedWriter,
  ) {
    this.channels = new ChannelWatermarks(channels);
    this.keys = partitionKeys(channels);
    this.prefix = `${own}:`;
  }

  /** Takes in the markers of the other partitions written since the last read; how many were read. */
  async read(maxRecords: number): Promise<number> {
    const records = await this.log.read(this.stream, this.own, this.position, { maxRecords });
    for (const r of records) {
      const header = r.headers?.[HEADER_WATERMARK];
      // Its own partition's time is taken live, not from its own markers.
      if (header !== undefined && !header.startsWith(this.prefix)) this.channels.observe(header);
    }
    const last = records[records.length - 1];
    if (last !== undefined) this.position = last.offset + 1;
    return records.length;
  }

  /** The task's watermark, given its own partition's. Hot path: once per event. */
  combine(own: number, idle: boolean): number {
    this.channels.watermarks[this.own] = own;
    this.channels.idle[this.own] = idle;
    return this.channels.update();
  }

  /** Tells the other tasks the own partition's watermark and idleness, when they changed. */
  async send(own: number, idle: boolean): Promise<void> {
    const header = markerHeader(this.own, own, idle);
    if (header === this.sent) return;
    const timestamp = Number.isFinite(own) ? own : 0;
    await (this.writer ?? this.log).append(
      this.stream,
      this.keys.map((key) => ({ key, timestamp, value: EMPTY_VALUE, headers: { [HEADER_WATERMARK]: header } })),
    );
    this.sent = header;
  }
}
