import { CheckpointCorruptError } from "./checkpoint/store.js";
import type { StateBytes } from "./operator.js";
import type { TimerSnapshot } from "./timers.js";

/**
 * The one checkpoint format of every task (issue 16): a header with where the task stands, and
 * the operator's state as the operator's own bytes. One buffer, so the checkpoint store writes the
 * state, the input positions and the output ends atomically:
 *
 *   [u32 big-endian header length][header as UTF-8 JSON][operator state bytes]
 *
 * A delta (incremental checkpoint) has the same layout: its header replaces the base's (positions
 * only move forward), its state bytes are the operator's delta.
 */
export interface TaskCheckpointHeader {
  readonly v: 2;
  /** The input partitions of the task; the arrays below are indexed like it. */
  readonly partitions: readonly number[];
  /** Next offset to read, per task partition. */
  readonly positions: readonly number[];
  /** Per task partition, the largest event-time progress seen (src/stream/time/watermarks.ts). */
  readonly maxTimestamps: readonly (number | null)[];
  /** The task's watermark, or null before any event. */
  readonly watermark: number | null;
  /** End offsets of the output and late streams, per output partition, when the checkpoint was taken. */
  readonly outputEnds: readonly number[];
  readonly lateEnds: readonly number[];
  readonly timers: TimerSnapshot<string, string>;
  readonly takenAt: number;
  /** A task reading an exchange stream: each upstream channel's watermark (null before any) and which are idle. */
  readonly channels?: readonly (number | null)[];
  readonly idleChannels?: readonly boolean[];
  /** Per upstream channel, the input offset of the last copy taken (src/runtime/channels.ts). */
  readonly channelOffsets?: readonly number[];
  /** A task sharing event time through a marker stream: the next offset to read in it. */
  readonly markerPosition?: number;
}

/** A checkpoint as the driver restores it: the newest header, the base state and the deltas after it. */
export interface TaskCheckpoint {
  readonly header: TaskCheckpointHeader;
  readonly state: Uint8Array;
  readonly deltas: readonly Uint8Array[];
}

const decoder = new TextDecoder();

/** The bytes a store keeps: the header's length (4 bytes, big-endian), the header as JSON, then the state. */
export function encodeTaskCheckpoint(header: TaskCheckpointHeader, state: StateBytes): Uint8Array {
  const head = JSON.stringify(header);
  const headLength = Buffer.byteLength(head);
  const bytes = new Uint8Array(4 + headLength + stateLength(state));
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  buffer.writeUInt32BE(headLength, 0);
  buffer.write(head, 4);
  writeState(state, buffer, 4 + headLength);
  return bytes;
}

/** A state given in parts as one array of bytes. */
export function joinState(state: StateBytes): Uint8Array {
  if (state instanceof Uint8Array) return state;
  const bytes = new Uint8Array(stateLength(state));
  writeState(state, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), 0);
  return bytes;
}

function stateLength(state: StateBytes): number {
  if (state instanceof Uint8Array) return state.length;
  let length = 0;
  for (const part of state) length += typeof part === "string" ? Buffer.byteLength(part) : part.length;
  return length;
}

function writeState(state: StateBytes, into: Buffer, at: number): void {
  if (state instanceof Uint8Array) {
    into.set(state, at);
    return;
  }
  for (const part of state) {
    if (typeof part === "string") {
      at += into.write(part, at);
    } else {
      into.set(part, at);
      at += part.length;
    }
  }
}

function split(task: string, bytes: Uint8Array): { header: TaskCheckpointHeader; state: Uint8Array } {
  if (bytes.length < 4) throw new CheckpointCorruptError(task, "shorter than its header length");
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
  if (4 + length > bytes.length) throw new CheckpointCorruptError(task, "header runs past the end");
  let header: TaskCheckpointHeader;
  try {
    header = JSON.parse(decoder.decode(bytes.subarray(4, 4 + length))) as TaskCheckpointHeader;
  } catch (e) {
    throw new CheckpointCorruptError(task, `header is not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (header.v !== 2 || !Array.isArray(header.positions)) {
    throw new CheckpointCorruptError(task, `unknown header version ${String(header.v)}`);
  }
  return { header, state: bytes.subarray(4 + length) };
}

/** The restorable checkpoint from a store's base and deltas; throws CheckpointCorruptError. */
export function decodeTaskCheckpoint(task: string, base: Uint8Array, deltas: readonly Uint8Array[]): TaskCheckpoint {
  const first = split(task, base);
  let header = first.header;
  const deltaStates: Uint8Array[] = [];
  for (const d of deltas) {
    const part = split(task, d);
    header = part.header;
    deltaStates.push(part.state);
  }
  return { header, state: first.state, deltas: deltaStates };
}
