/** A partial match: a state, a version, a start time and a pointer into the shared buffer (FlinkCEP's ComputationState). */
import { type Dewey, deweyEquals } from "./dewey.js";
import type { BufferedEvent, BufferNode } from "./shared-buffer.js";

export interface ComputationState<V> {
  readonly state: string;
  readonly version: Dewey;
  readonly startTs: number;
  readonly previousTs: number;
  readonly previous: BufferNode<V> | null;
  readonly startEvent: BufferedEvent<V> | null;
}

export function startState<V>(state: string, version: Dewey = [1]): ComputationState<V> {
  return { state, version, startTs: -1, previousTs: -1, previous: null, startEvent: null };
}

/** NFAState.COMPUTATION_STATE_COMPARATOR: by start event (ts, id); start states last. */
export function compareComputationStates<V>(a: ComputationState<V>, b: ComputationState<V>): number {
  const as = a.startEvent;
  const bs = b.startEvent;
  const at = as === null ? Number.MAX_VALUE : as.ts;
  const bt = bs === null ? Number.MAX_VALUE : bs.ts;
  if (at !== bt) return at < bt ? -1 : 1;
  const ai = as === null ? 2147483647 : as.id;
  const bi = bs === null ? 2147483647 : bs.id;
  return ai < bi ? -1 : ai > bi ? 1 : 0;
}

export function computationStatesEqual<V>(a: ComputationState<V>, b: ComputationState<V>): boolean {
  return (
    a === b ||
    (a.state === b.state &&
      a.startTs === b.startTs &&
      a.previousTs === b.previousTs &&
      a.startEvent === b.startEvent &&
      a.previous === b.previous &&
      deweyEquals(a.version, b.version))
  );
}
