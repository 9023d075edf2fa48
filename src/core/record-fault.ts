/**
 * Telling a record's fault from the system's. A consumer that retries a record whose content makes
 * it fail wedges for good; one that dead-letters a record because storage was briefly away loses
 * it. So a consumer dead-letters only what is deterministic in the record:
 * - anything thrown while it computes on the record synchronously (decoding, expressions, the
 *   operator): the same record fails the same way every time;
 * - a PoisonRecordError, from anywhere (a store that finds a value no longer fits its column);
 * - a stack overflow, also when it comes back from a worker thread as a message only;
 * - a record nested deeper than MAX_RECORD_DEPTH, refused before it is parsed (below);
 * and retries everything else with back-off.
 */
import { PoisonRecordError } from "./poison.js";

/**
 * Deepest JSON nesting a consumer takes. Far above what ingest lets through and what any event
 * needs; far below the depth at which the recursive code that handles a value (JSON.stringify,
 * structured clone to the analytics worker, row flattening) runs out of stack (about 8 000 on
 * Node's default stack).
 */
export const MAX_RECORD_DEPTH = 1000;

/**
 * A JSON text of n bytes nests at most n / 2 levels (`[` and `]` per level), so shorter records are
 * never scanned: the check costs one comparison for every ordinary event.
 */
const SCAN_FROM_BYTES = 2 * MAX_RECORD_DEPTH;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/** Throws PoisonRecordError when the JSON text `value` nests deeper than MAX_RECORD_DEPTH. */
export function checkRecordDepth(value: Uint8Array): void {
  if (value.length <= SCAN_FROM_BYTES) return;
  // Fewer opening brackets than the limit cannot nest deeper: counted with native searches, so
  // a large ordinary record costs a few of them instead of a walk over every byte.
  if (openingsAtMost(value, MAX_RECORD_DEPTH)) return;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as number;
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > MAX_RECORD_DEPTH) {
        throw new PoisonRecordError(`the record nests deeper than ${MAX_RECORD_DEPTH} levels`);
      }
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
  }
}

function openingsAtMost(value: Uint8Array, limit: number): boolean {
  // A Buffer view (no copy) searches with memchr; a Uint8Array's indexOf walks element by element.
  const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  let n = 0;
  for (let i = bytes.indexOf(OPEN_BRACE); i >= 0; i = bytes.indexOf(OPEN_BRACE, i + 1)) if (++n > limit) return false;
  for (let i = bytes.indexOf(OPEN_BRACKET); i >= 0; i = bytes.indexOf(OPEN_BRACKET, i + 1))
    if (++n > limit) return false;
  return true;
}

const STACK_OVERFLOW = "Maximum call stack size exceeded";

/**
 * Whether an error from asynchronous work on records (a store's apply) is the records' fault. Work
 * that crossed a thread keeps only the message of a stack overflow.
 */
export function isRecordFault(e: unknown): boolean {
  if (e instanceof PoisonRecordError) return true;
  if (!(e instanceof Error)) return false;
  return e.name === "PoisonRecordError" || e.message.includes(STACK_OVERFLOW);
}

/** One line for an error (dead letters, stats, readiness). */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
