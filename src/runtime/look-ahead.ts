/**
 * A read's records decoded a slice at a time, each slice handed to the operator's lookAhead before
 * its events are processed one by one (see WindowOperator.lookAhead: the state lookups of a slice
 * overlap instead of each waiting on the one before). Decoding is the same as per record; what
 * decoding a record throws is thrown again when the record's turn comes, so it is dead-lettered
 * in order as before.
 */
import { checkRecordDepth } from "../core/record-fault.js";
import type { LogRecord } from "../log/types.js";
import { decodeRecord } from "../stream/codec.js";
import type { StreamEvent } from "../stream/event.js";
import { LOOK_AHEAD_EVENTS, type TaskOperator } from "./operator.js";

/** An operator that looks ahead: the driver decodes its reads with a LookAheadDecoder. */
export type LooksAhead = TaskOperator & Required<Pick<TaskOperator, "lookAhead">>;

export function looksAhead(operator: TaskOperator): operator is LooksAhead {
  return operator.lookAhead !== undefined;
}

export class LookAheadDecoder {
  private readonly events: (StreamEvent | undefined)[] = new Array(LOOK_AHEAD_EVENTS).fill(undefined);
  private readonly errors: unknown[] = new Array(LOOK_AHEAD_EVENTS).fill(undefined);
  private readonly decoded: StreamEvent[] = [];
  private start = 0;

  /** The event of `records[at]`, decoding (and looking ahead over) the slice it starts. */
  take(records: readonly LogRecord[], at: number, operator: LooksAhead): StreamEvent {
    if (at % LOOK_AHEAD_EVENTS === 0) this.fill(records, at, operator);
    const i = at - this.start;
    const e = this.events[i];
    if (e === undefined) throw this.errors[i];
    return e;
  }

  private fill(records: readonly LogRecord[], at: number, operator: LooksAhead): void {
    this.start = at;
    const decoded = this.decoded;
    decoded.length = 0;
    const end = Math.min(records.length, at + LOOK_AHEAD_EVENTS);
    for (let r = at; r < end; r++) {
      const record = records[r] as LogRecord;
      let e: StreamEvent | undefined;
      try {
        checkRecordDepth(record.value);
        e = decodeRecord(record);
        decoded.push(e);
        this.errors[r - at] = undefined;
      } catch (err) {
        this.errors[r - at] = err;
      }
      this.events[r - at] = e;
    }
    operator.lookAhead(decoded, 0, decoded.length);
  }
}
