import type { LogRecord } from "../log/types.js";
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
/** On a marker: `<channel>:<watermark or empty before any event>:<1 idle | 0 active>`. */
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

export function markerHeader(channel: number, watermark: number, idle: boolean): string {
  return `${channel}:${Number.isFinite(watermark) ? watermark : ""}:${idle ? 1 : 0}`;
}

/**
 * One watermark per upstream channel, combined as ./../stream/time/watermarks.ts combines
 * partitions (and as Flink's StatusWatermarkValve combines input channels): the minimum over the
 * channels not idle; when every channel is idle, the largest; never back.
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
  private current = Number.NEGATIVE_INFINITY;

  constructor(channels: number) {
    this.watermarks = new Array<number>(channels).fill(Number.NEGATIVE_INFINITY);
    this.idle = new Array<boolean>(channels).fill(false);
    this.offsets = new Array<number>(channels).fill(-1);
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
    this.idle[channel] = header.slice(b + 1) === "1";
  }

  update(): number {
    const next = combineWatermarks(this.watermarks, this.idle, 0);
    if (next > this.current) this.current = next;
    return this.current;
  }
}
