/**
 * A key's NFA state as plain JSON-able data and back: the shared-buffer graph with numbered events
 * and nodes, the partial and completed matches in their heap order (so a restored key behaves
 * exactly as it would have), and the per-timestamp event counters.
 */
import type { ComputationState } from "./computation-state.js";
import type { Dewey } from "./dewey.js";
import { NfaKeyState } from "./nfa.js";
import type { BufferEdge, BufferedEvent, BufferNode } from "./shared-buffer.js";

type CsSnapshot = [
  state: string,
  version: Dewey,
  startTs: number,
  previousTs: number,
  node: number,
  startEvent: number,
];

export interface KeyStateSnapshot {
  readonly events: Array<[id: number, ts: number, refs: number, value: unknown]>;
  readonly nodes: Array<
    [event: number, page: string, refs: number, edges: Array<[target: number, version: Dewey, refs: number]>]
  >;
  readonly partial: CsSnapshot[];
  readonly completed: CsSnapshot[];
  readonly counts: Array<[ts: number, count: number]>;
}

export function snapshotKeyState<V>(key: NfaKeyState<V>, encode: (v: V) => unknown): KeyStateSnapshot {
  const w = new SnapshotWriter(encode);
  const partial = key.partialMatches.items.map((c) => w.cs(c));
  const completed = key.completedMatches.items.map((c) => w.cs(c));
  return { events: w.events, nodes: w.nodes, partial, completed, counts: key.buffer.counts };
}

/**
 * Numbers a key's events and nodes as they are reached. A class rather than closures inside
 * snapshotKeyState: checkpoints call this for every changed key, and per-call closures cost
 * allocations (and, under tsx, a naming call each).
 */
class SnapshotWriter<V> {
  private readonly eventIds = new Map<BufferedEvent<V>, number>();
  private readonly nodeIds = new Map<BufferNode<V>, number>();
  readonly events: KeyStateSnapshot["events"] = [];
  readonly nodes: KeyStateSnapshot["nodes"] = [];

  constructor(private readonly encode: (v: V) => unknown) {}

  cs(c: ComputationState<V>): CsSnapshot {
    return [
      c.state,
      c.version,
      c.startTs,
      c.previousTs,
      c.previous === null ? -1 : this.nodeId(c.previous),
      c.startEvent === null ? -1 : this.eventId(c.startEvent),
    ];
  }

  private eventId(e: BufferedEvent<V>): number {
    let id = this.eventIds.get(e);
    if (id === undefined) {
      id = this.events.length;
      this.eventIds.set(e, id);
      this.events.push([e.id, e.ts, e.refs, this.encode(e.value)]);
    }
    return id;
  }

  private nodeId(n: BufferNode<V>): number {
    const nodeIds = this.nodeIds;
    const known = nodeIds.get(n);
    if (known !== undefined) return known;
    // Iterative walk: chains are as long as the longest partial match.
    const stack: BufferNode<V>[] = [n];
    while (stack.length > 0) {
      const cur = stack[stack.length - 1] as BufferNode<V>;
      if (nodeIds.has(cur)) {
        stack.pop();
        continue;
      }
      const missing = cur.edges.find((e) => e.target !== null && !nodeIds.has(e.target));
      if (missing?.target) {
        stack.push(missing.target);
        continue;
      }
      stack.pop();
      nodeIds.set(cur, this.nodes.length);
      this.nodes.push([
        this.eventId(cur.event),
        cur.page,
        cur.refs,
        cur.edges.map((e) => [e.target === null ? -1 : (nodeIds.get(e.target) as number), e.version, e.refs]),
      ]);
    }
    return nodeIds.get(n) as number;
  }
}

export function restoreKeyState<V>(s: KeyStateSnapshot, decode: (x: unknown) => V): NfaKeyState<V> {
  const key = new NfaKeyState<V>([]);
  const events: BufferedEvent<V>[] = s.events.map(([id, ts, refs, value]) => ({
    id,
    ts,
    refs,
    value: decode(value),
    nodes: undefined,
  }));
  const nodes: BufferNode<V>[] = [];
  for (const [ev, page, refs, edges] of s.nodes) {
    const event = events[ev] as BufferedEvent<V>;
    const node: BufferNode<V> = {
      event,
      page,
      refs,
      live: true,
      edges: edges.map(
        ([t, version, r]): BufferEdge<V> => ({ target: t < 0 ? null : (nodes[t] as BufferNode<V>), version, refs: r }),
      ),
    };
    nodes.push(node);
    if (event.nodes === undefined) event.nodes = [node];
    else event.nodes.push(node);
  }
  const cs = ([state, version, startTs, previousTs, node, start]: CsSnapshot): ComputationState<V> => ({
    state,
    version,
    startTs,
    previousTs,
    previous: node < 0 ? null : (nodes[node] as BufferNode<V>),
    startEvent: start < 0 ? null : (events[start] as BufferedEvent<V>),
  });
  // Heap arrays are restored as they were: same order, so the same iteration and tie-breaking.
  key.partialMatches.items = s.partial.map(cs);
  key.completedMatches.items = s.completed.map(cs);
  key.buffer.counts = s.counts;
  key.buffer.liveNodes = nodes.length;
  key.buffer.liveEvents = events.filter((e) => e.refs > 0).length;
  return key;
}
