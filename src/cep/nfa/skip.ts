/**
 * After-match skip strategies as named objects (FlinkCEP's nfa/aftermatch): after a match is
 * emitted, which partial and completed matches are discarded. The pruning event is computed from
 * the match; partial matches that started at or before it (or strictly before it, for the
 * skip-to-element strategies) go.
 */
import type { ComputationState } from "./computation-state.js";
import { computationStatesEqual } from "./computation-state.js";
import type { JavaPriorityQueue } from "./java-priority-queue.js";
import { type BufferedEvent, compareEvents, type ExtractedMatch, type SharedBuffer } from "./shared-buffer.js";

export interface AfterMatchSkipStrategy {
  /** As written in a rule: `no_skip`, `to_next`, `past_last_event`, `to_first:<step>`, `to_last:<step>`. */
  readonly name: string;
  readonly isSkipStrategy: boolean;
  /** The step a skip-to-element strategy refers to. */
  readonly step?: string;
  pruningEvent<V>(matches: readonly ExtractedMatch<V>[]): BufferedEvent<V> | null;
  shouldPrune<V>(start: BufferedEvent<V>, pruning: BufferedEvent<V>): boolean;
}

function max<V>(a: BufferedEvent<V> | null, b: BufferedEvent<V> | undefined): BufferedEvent<V> | null {
  if (b === undefined) return a;
  if (a === null) return b;
  return compareEvents(a, b) >= 0 ? a : b;
}

function min<V>(a: BufferedEvent<V> | null, b: BufferedEvent<V> | undefined): BufferedEvent<V> | null {
  if (b === undefined) return a;
  if (a === null) return b;
  return compareEvents(a, b) <= 0 ? a : b;
}

export const noSkip: AfterMatchSkipStrategy = {
  name: "no_skip",
  isSkipStrategy: false,
  pruningEvent: () => null,
  shouldPrune: () => false,
};

export const skipToNext: AfterMatchSkipStrategy = {
  name: "to_next",
  isSkipStrategy: true,
  pruningEvent(matches) {
    let id = null;
    for (const m of matches) for (const events of m.values()) id = min(id, events[0]);
    return id;
  },
  shouldPrune: (start, pruning) => compareEvents(start, pruning) <= 0,
};

export const skipPastLastEvent: AfterMatchSkipStrategy = {
  name: "past_last_event",
  isSkipStrategy: true,
  pruningEvent(matches) {
    let id = null;
    for (const m of matches) for (const events of m.values()) id = max(id, events[events.length - 1]);
    return id;
  },
  shouldPrune: (start, pruning) => compareEvents(start, pruning) <= 0,
};

function skipToElement(step: string, last: boolean): AfterMatchSkipStrategy {
  return {
    name: `${last ? "to_last" : "to_first"}:${step}`,
    isSkipStrategy: true,
    step,
    pruningEvent(matches) {
      let id = null;
      for (const m of matches) {
        const events = m.get(step);
        if (events !== undefined && events.length > 0) id = max(id, events[last ? events.length - 1 : 0]);
      }
      return id;
    },
    shouldPrune: (start, pruning) => compareEvents(start, pruning) < 0,
  };
}

export function skipToFirst(step: string): AfterMatchSkipStrategy {
  return skipToElement(step, false);
}

export function skipToLast(step: string): AfterMatchSkipStrategy {
  return skipToElement(step, true);
}

/** AfterMatchSkipStrategy.prune: discards (and releases) the matches the strategy skips past. */
export function prune<V>(
  strategy: AfterMatchSkipStrategy,
  queue: JavaPriorityQueue<ComputationState<V>>,
  matched: readonly ExtractedMatch<V>[],
  buffer: SharedBuffer<V>,
): void {
  if (!strategy.isSkipStrategy) return;
  const pruning = strategy.pruningEvent(matched);
  if (pruning === null) return;
  const discard: ComputationState<V>[] = [];
  for (const cs of queue.items) {
    if (cs.startEvent !== null && strategy.shouldPrune(cs.startEvent, pruning)) {
      if (cs.previous !== null) buffer.releaseNode(cs.previous, cs.version);
      discard.push(cs);
    }
  }
  if (discard.length > 0) queue.removeIf((x) => discard.some((d) => computationStatesEqual(d, x)));
}
