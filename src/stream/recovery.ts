import type { EventLog } from "../log/types.js";
import { encodeValue } from "./codec.js";
import { sourceOffsetOf } from "./headers.js";
import type { Operator } from "./operators.js";
import { processChunk } from "./process.js";

/**
 * Where to resume input partition `p` after a restart, given the committed input offset.
 *
 * The runner appends a chunk's outputs (one atomic batch) and then commits the input offsets, so a
 * crash can leave at most one chunk of outputs whose inputs are not committed. Because output
 * partition p receives only outputs of input partition p, in order (same key, same partition
 * count), those outputs are the tail of output partition p:
 *  - with record headers, the tail's last record names its source offset: resume after it;
 *  - without them, replay the chunk from the committed offset (processing is deterministic) and
 *    skip the longest prefix of the replay that equals the tail. This errs towards skipping: an
 *    output byte-identical to the ones just before it at the crash point could be mistaken for
 *    already written (never written twice).
 */
export async function recoverPosition(args: {
  readonly log: EventLog;
  readonly pipeline: string;
  readonly operator: Operator;
  readonly inputStream: string;
  readonly outputStream: string;
  readonly partition: number;
  readonly committed: number;
  readonly chunkSize: number;
}): Promise<number> {
  const { log, partition: p, committed } = args;
  const outStart = (await log.startOffsets(args.outputStream))[p] ?? 0;
  const outEnd = (await log.endOffsets(args.outputStream))[p] ?? 0;
  if (outEnd <= outStart) return committed;
  const [last] = await log.read(args.outputStream, p, outEnd - 1, { maxRecords: 1 });
  if (last === undefined) return committed;
  const source = sourceOffsetOf(last);
  if (source !== undefined) return Math.max(committed, source + 1);

  const inputs = await log.read(args.inputStream, p, committed, { maxRecords: args.chunkSize });
  const replay = processChunk(args.pipeline, args.operator, inputs).outputs;
  if (replay.length === 0) return committed;
  const tailLength = Math.min(replay.length, outEnd - outStart);
  const tail = await log.read(args.outputStream, p, outEnd - tailLength, { maxRecords: tailLength });
  for (let k = Math.min(tail.length, replay.length); k > 0; k--) {
    const next = replay[k];
    // Outputs of one input are appended together, so a prefix must end on an input boundary.
    const last = replay[k - 1];
    if (last === undefined || (next !== undefined && next.source.offset === last.source.offset)) continue;
    if (matches(tail.slice(tail.length - k), replay.slice(0, k))) return last.source.offset + 1;
  }
  return committed;
}

function matches(
  written: readonly { key: string; timestamp: number; value: Uint8Array }[],
  replayed: readonly { key: string; timestamp: number; value: Record<string, unknown> }[],
): boolean {
  for (let i = 0; i < written.length; i++) {
    const w = written[i];
    const r = replayed[i];
    if (w === undefined || r === undefined || w.key !== r.key || w.timestamp !== r.timestamp) return false;
    if (!bytesEqual(w.value, encodeValue(r.value))) return false;
  }
  return true;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
