/**
 * The NFA runtime, a port of FlinkCEP's NFA (org.apache.flink.cep.nfa.NFA, 1.20) step for step:
 * process() feeds one event to every partial match, advanceTime() times out partial matches past
 * `within` and releases pending notFollowedBy matches, and completed matches are emitted in start
 * order subject to the after-match skip strategy. State lives in NfaKeyState (per key), so one NFA
 * serves every key of a rule.
 */

import {
  type ComputationState,
  compareComputationStates,
  computationStatesEqual,
  startState,
} from "./computation-state.js";
import { EMPTY_MATCH, type MatchContext } from "./context.js";
import { type Dewey, deweyAddStage, deweyIncrease } from "./dewey.js";
import { JavaPriorityQueue } from "./java-priority-queue.js";
import { type BufferedEvent, type BufferNode, type ExtractedMatch, SharedBuffer } from "./shared-buffer.js";
import { type AfterMatchSkipStrategy, prune } from "./skip.js";
import type { NfaState, Transition } from "./state.js";

type Value = Readonly<Record<string, unknown>>;

/** A match (or timed-out partial match): step → events, in the order the steps were first taken. */
export type Match<V> = ReadonlyMap<string, readonly V[]>;

export interface TimedOut<V> {
  readonly match: Match<V>;
  /** first.ts + within, as FlinkCEP reports it. */
  readonly ts: number;
}

/** NFAState plus the key's shared buffer: everything one key needs, and nothing else. */
export class NfaKeyState<V> {
  partialMatches: JavaPriorityQueue<ComputationState<V>>;
  completedMatches: JavaPriorityQueue<ComputationState<V>>;
  readonly buffer = new SharedBuffer<V>();
  /** Set when process() started a new partial match (the operator arms a `within` timer for it). */
  newStartPartialMatch = false;

  constructor(starts: readonly ComputationState<V>[]) {
    this.partialMatches = new JavaPriorityQueue(compareComputationStates);
    for (const s of starts) this.partialMatches.add(s);
    this.completedMatches = new JavaPriorityQueue(compareComputationStates);
  }

  /** Only the start state is left and nothing is pending: the key's state can be dropped. */
  get isIdle(): boolean {
    return this.partialMatches.size <= 1 && this.completedMatches.size === 0 && this.buffer.isEmpty;
  }
}

/** The decision graph of one computation state; one instance per NFA, reset for each (not reentrant). */
class OutgoingEdges<V> {
  readonly edges: Transition[] = [];
  totalTake = 0;
  totalIgnore = 0;
  private current: NfaState | undefined;
  reset(current: NfaState): this {
    this.current = current;
    this.edges.length = 0;
    this.totalTake = 0;
    this.totalIgnore = 0;
    return this;
  }
  add(edge: Transition): void {
    const selfIgnore = edge.action === "ignore" && edge.target.name === this.current?.name;
    if (!selfIgnore) {
      if (edge.action === "ignore") this.totalIgnore++;
      else if (edge.action === "take") this.totalTake++;
    }
    this.edges.push(edge);
  }
  // Keeps V in the class signature for readers; unused at runtime.
  declare readonly _v?: V;
}

/** The lazily read partial match a condition sees (FlinkCEP's ConditionContext). */
class LazyMatch<V extends Value> implements MatchContext {
  private match: ExtractedMatch<V> | undefined;
  private key!: NfaKeyState<V>;
  private cs!: ComputationState<V>;
  constructor(private readonly nfa: Nfa<V>) {}
  /** Points the context at another partial match: one instance per NFA, used while one event is processed. */
  reset(key: NfaKeyState<V>, cs: ComputationState<V>): this {
    this.key = key;
    this.cs = cs;
    this.match = undefined;
    return this;
  }
  private get(): ExtractedMatch<V> {
    if (this.match === undefined) this.match = this.nfa.currentMatch(this.key, this.cs);
    return this.match;
  }
  events(step: string): readonly V[] {
    const list = this.get().get(step);
    return list === undefined ? [] : list.map((e) => e.value);
  }
  first(): V | undefined {
    let best: BufferedEvent<V> | undefined;
    for (const list of this.get().values()) {
      const e = list[0];
      if (e !== undefined && (best === undefined || e.ts < best.ts || (e.ts === best.ts && e.id < best.id))) best = e;
    }
    return best?.value;
  }
  prev(): V | undefined {
    return this.cs.previous?.event.value;
  }
}

/** The event being processed, put in the shared buffer only once a TAKE edge needs it. */
class EventSlot<V> {
  registered: BufferedEvent<V> | undefined;
  private buffer!: SharedBuffer<V>;
  private value!: V;
  private ts = 0;
  /** One instance per NFA, reset for each event (process() is not reentrant). */
  reset(buffer: SharedBuffer<V>, value: V, ts: number): this {
    this.buffer = buffer;
    this.value = value;
    this.ts = ts;
    this.registered = undefined;
    return this;
  }
  get(): BufferedEvent<V> {
    if (this.registered === undefined) this.registered = this.buffer.registerEvent(this.value, this.ts);
    return this.registered;
  }
}

function calculateIncreasingSelfState(ignoreBranches: number, takeBranches: number): number {
  return takeBranches === 0 && ignoreBranches === 0 ? 0 : ignoreBranches + Math.max(1, takeBranches);
}

export class Nfa<V extends Value> {
  private readonly states = new Map<string, NfaState>();
  private readonly starts: NfaState[] = [];
  // Per-event scratch objects, reused: processing one event allocates only what it keeps.
  private readonly slot = new EventSlot<V>();
  private readonly lazy = new LazyMatch<V>(this);
  private readonly outgoing = new OutgoingEdges<V>();
  private readonly graphStack: NfaState[] = [];
  private readonly proceedStack: NfaState[] = [];

  constructor(
    states: readonly NfaState[],
    /** `within` in ms; 0 means none. */
    readonly windowTime: number,
    readonly handleTimeout: boolean,
  ) {
    for (const s of states) {
      this.states.set(s.name, s);
      if (s.isStart) this.starts.push(s);
    }
  }

  createKeyState(): NfaKeyState<V> {
    return new NfaKeyState(this.starts.map((s) => startState<V>(s.name)));
  }

  /**
   * Whether `value` would start a partial match in a key that has none. When it would not, the
   * key's state after the event equals a fresh one (and is dropped as idle), so the operator need
   * not create it: most events of a key without partial matches cost one condition.
   */
  startsMatch(value: V): boolean {
    for (const s of this.starts) if (this.createDecisionGraph(EMPTY_MATCH, s, value).totalTake > 0) return true;
    return false;
  }

  private state(cs: ComputationState<V>): NfaState {
    const s = this.states.get(cs.state);
    if (s === undefined) throw new Error(`state ${cs.state} does not exist in the NFA`);
    return s;
  }

  /** Feeds one event; returns the matches it completed. */
  process(key: NfaKeyState<V>, value: V, ts: number, skip: AfterMatchSkipStrategy): readonly Match<V>[] {
    const slot = this.slot.reset(key.buffer, value, ts);
    try {
      return this.doProcess(key, value, ts, slot, skip);
    } finally {
      if (slot.registered !== undefined) key.buffer.releaseEvent(slot.registered);
    }
  }

  advanceTime(
    key: NfaKeyState<V>,
    ts: number,
    skip: AfterMatchSkipStrategy,
  ): { readonly matches: readonly Match<V>[]; readonly timedOut: readonly TimedOut<V>[] } {
    // Fast path (most calls): nothing times out and no completed match waits, so the rebuilt queue
    // would be the same heap array (re-adding a heap's items in array order never sifts) and the
    // skip strategy has nothing to emit; only the buffer's per-timestamp counters move.
    if (key.completedMatches.size === 0 && !this.anyTimedOut(key, ts)) {
      key.buffer.advanceTime(ts);
      return NOTHING_ADVANCED;
    }
    const matches: Match<V>[] = [];
    const timedOut: TimedOut<V>[] = [];
    const newPartial = new JavaPriorityQueue<ComputationState<V>>(compareComputationStates);
    const potential = new JavaPriorityQueue<ComputationState<V>>(compareComputationStates);
    const buffer = key.buffer;
    for (const cs of key.partialMatches.items) {
      // Per-step `within` (WithinType.PREVIOUS_AND_CURRENT) is not part of the rule language.
      if (this.isTimedOut(cs, ts)) {
        if (this.state(cs).isPending) {
          potential.add(cs);
          continue;
        }
        if (this.handleTimeout) {
          timedOut.push({ match: materialize(this.currentMatch(key, cs)), ts: cs.startTs + this.windowTime });
        }
        if (cs.previous !== null) buffer.releaseNode(cs.previous, cs.version);
      } else {
        newPartial.add(cs);
      }
    }
    this.processMatchesAccordingToSkipStrategy(key, skip, potential.items, newPartial, matches);
    key.partialMatches = newPartial;
    buffer.advanceTime(ts);
    return { matches, timedOut };
  }

  private anyTimedOut(key: NfaKeyState<V>, ts: number): boolean {
    if (this.windowTime <= 0) return false;
    // The queue's head started first (start states, which never time out, sort last): if it has
    // not timed out, nothing has. Only then is every partial match looked at.
    const head = key.partialMatches.peek();
    if (head === undefined || (head.startEvent !== null && ts - head.startTs < this.windowTime)) return false;
    for (const cs of key.partialMatches.items) if (this.isTimedOut(cs, ts)) return true;
    return false;
  }

  private isTimedOut(cs: ComputationState<V>, ts: number): boolean {
    return this.windowTime > 0 && !this.state(cs).isStart && ts - cs.startTs >= this.windowTime;
  }

  private doProcess(
    key: NfaKeyState<V>,
    value: V,
    ts: number,
    slot: EventSlot<V>,
    skip: AfterMatchSkipStrategy,
  ): readonly Match<V>[] {
    const buffer = key.buffer;
    // The queue object is kept and refilled: only its array is new.
    const newPartial = key.partialMatches;
    const current = newPartial.items;
    newPartial.items = [];
    let potential: JavaPriorityQueue<ComputationState<V>> | undefined;
    key.newStartPartialMatch = false;
    for (const cs of current) {
      const next = this.computeNextStates(key, cs, value, ts, slot);
      const fromStart = this.state(cs).isStart;
      let discardPath = false;
      for (const n of next) {
        if (fromStart && n.startTs > 0) key.newStartPartialMatch = true;
        if (this.state(n).isStop) discardPath = true;
      }
      for (const n of next) {
        const s = this.state(n);
        if (s.isFinal) {
          potential ??= new JavaPriorityQueue<ComputationState<V>>(compareComputationStates);
          potential.add(n);
        } else if (s.isStop || discardPath) {
          if (n.previous !== null) buffer.releaseNode(n.previous, n.version);
        } else newPartial.add(n);
      }
    }
    if (potential === undefined && key.completedMatches.size === 0) return NO_MATCHES;
    const result: Match<V>[] = [];
    this.processMatchesAccordingToSkipStrategy(key, skip, potential?.items ?? NO_STATES, newPartial, result);
    return result;
  }

  private processMatchesAccordingToSkipStrategy(
    key: NfaKeyState<V>,
    skip: AfterMatchSkipStrategy,
    potential: readonly ComputationState<V>[],
    partial: JavaPriorityQueue<ComputationState<V>>,
    result: Match<V>[],
  ): void {
    const completed = key.completedMatches;
    completed.addAll(potential);
    const buffer = key.buffer;
    for (;;) {
      const earliest = completed.peek();
      if (earliest === undefined) break;
      if (skip.isSkipStrategy) {
        const earliestPartial = partial.peek();
        if (earliestPartial !== undefined && compareComputationStates(earliest, earliestPartial) > 0) break;
      }
      completed.poll();
      const matched = earliest.previous === null ? [] : buffer.extractPatterns(earliest.previous, earliest.version);
      prune(skip, partial, matched, buffer);
      prune(skip, completed, matched, buffer);
      const first = matched[0];
      if (first !== undefined) result.push(materialize(first));
      if (earliest.previous !== null) buffer.releaseNode(earliest.previous, earliest.version);
    }
  }

  /** extractCurrentMatches: the single path of a computation state (empty for the start state). */
  currentMatch(key: NfaKeyState<V>, cs: ComputationState<V>): ExtractedMatch<V> {
    if (cs.previous === null) return new Map();
    const paths = key.buffer.extractPatterns(cs.previous, cs.version);
    return paths[0] ?? new Map();
  }

  private computeNextStates(
    key: NfaKeyState<V>,
    cs: ComputationState<V>,
    value: V,
    ts: number,
    slot: EventSlot<V>,
  ): ComputationState<V>[] {
    const buffer = key.buffer;
    const ctx: MatchContext = cs.previous === null ? EMPTY_MATCH : this.lazy.reset(key, cs);
    const current = this.state(cs);
    const outgoing = this.createDecisionGraph(ctx, current, value);
    const edges = outgoing.edges;
    let takeBranchesToVisit = Math.max(0, outgoing.totalTake - 1);
    let ignoreBranchesToVisit = outgoing.totalIgnore;
    const totalTakeToSkip = Math.max(0, outgoing.totalTake - 1);
    const isStart = current.isStart;
    const result: ComputationState<V>[] = [];
    /** The version `cs` carries on with when it only ignores the event (set once the edges are walked). */
    let kept: Dewey | undefined;

    for (const edge of edges) {
      if (edge.action === "ignore") {
        if (isStart) continue;
        let version: Dewey;
        if (edge.target.name === current.name) {
          version = deweyIncrease(cs.version, calculateIncreasingSelfState(outgoing.totalIgnore, outgoing.totalTake));
          if (kept === undefined) {
            // The run stays in its state under a new version: `cs` itself carries on (nothing
            // else holds it) instead of a copy. A copy outlives the young generation until the
            // key's next event, seconds later, so the GC promoted one per run per event.
            kept = version;
            result.push(cs);
            if (cs.previous !== null) buffer.lockNode(cs.previous, version);
            continue;
          }
        } else {
          version = deweyAddStage(deweyIncrease(cs.version, totalTakeToSkip + ignoreBranchesToVisit));
          ignoreBranchesToVisit--;
        }
        this.addComputationState(
          buffer,
          result,
          edge.target,
          cs.previous,
          version,
          cs.startTs,
          cs.previousTs,
          cs.startEvent,
        );
      } else if (edge.action === "take") {
        const currentVersion = deweyIncrease(cs.version, takeBranchesToVisit);
        const nextVersion = deweyAddStage(currentVersion);
        takeBranchesToVisit--;
        const event = slot.get();
        const newEntry = buffer.put(edge.source.name, event, cs.previous, currentVersion);
        const startTs = isStart ? ts : cs.startTs;
        const startEvent = isStart ? event : cs.startEvent;
        this.addComputationState(buffer, result, edge.target, newEntry, nextVersion, startTs, ts, startEvent);
        const finalState = this.findFinalStateAfterProceed(ctx, edge.target, value);
        if (finalState !== null) {
          this.addComputationState(buffer, result, finalState, newEntry, nextVersion, startTs, ts, startEvent);
        }
      }
    }

    if (isStart) {
      const total = calculateIncreasingSelfState(outgoing.totalIgnore, outgoing.totalTake);
      // Computation states are immutable: an unchanged start state is kept, not rebuilt.
      result.push(total === 0 ? cs : startState(cs.state, deweyIncrease(cs.version, total)));
    }
    if (cs.previous !== null) buffer.releaseNode(cs.previous, cs.version);
    // Only now: the edges above and their conditions (through `ctx`) read the version it had.
    if (kept !== undefined) (cs as { version: Dewey }).version = kept;
    return result;
  }

  private addComputationState(
    buffer: SharedBuffer<V>,
    out: ComputationState<V>[],
    state: NfaState,
    previous: BufferNode<V> | null,
    version: Dewey,
    startTs: number,
    previousTs: number,
    startEvent: BufferedEvent<V> | null,
  ): void {
    out.push({ state: state.name, version, startTs, previousTs, previous, startEvent });
    if (previous !== null) buffer.lockNode(previous, version);
  }

  private findFinalStateAfterProceed(ctx: MatchContext, state: NfaState, value: V): NfaState | null {
    const stack = this.proceedStack;
    stack.length = 0;
    stack.push(state);
    while (stack.length > 0) {
      const current = stack.pop() as NfaState;
      for (const t of current.transitions) {
        if (t.action === "proceed" && t.condition(value, ctx)) {
          if (t.target.isFinal) return t.target;
          stack.push(t.target);
        }
      }
    }
    return null;
  }

  private createDecisionGraph(ctx: MatchContext, state: NfaState, value: V): OutgoingEdges<V> {
    const outgoing = this.outgoing.reset(state);
    const stack = this.graphStack;
    stack.length = 0;
    stack.push(state);
    while (stack.length > 0) {
      const current = stack.pop() as NfaState;
      for (const t of current.transitions) {
        if (!t.condition(value, ctx)) continue;
        if (t.action === "proceed") stack.push(t.target);
        else outgoing.add(t);
      }
    }
    return outgoing;
  }

  /** Number of partial matches of a key, the start state excluded (for metrics). */
  static partialCount<V>(key: NfaKeyState<V>): number {
    let n = 0;
    for (const cs of key.partialMatches.items) if (cs.startEvent !== null) n++;
    return n;
  }
}

const NO_MATCHES: readonly Match<never>[] = Object.freeze([]);
const NO_STATES: readonly ComputationState<never>[] = [];

const NOTHING_ADVANCED: { readonly matches: readonly never[]; readonly timedOut: readonly never[] } = Object.freeze({
  matches: Object.freeze([]),
  timedOut: Object.freeze([]),
});

function materialize<V>(m: ExtractedMatch<V>): Match<V> {
  const out = new Map<string, V[]>();
  for (const [step, events] of m) {
    out.set(
      step,
      events.map((e) => e.value),
    );
  }
  return out;
}

export { computationStatesEqual };
