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
  const eventIds = new Map<BufferedEvent<V>, number>();
  const nodeIds = new Map<BufferNode<V>, number>();
  const events: KeyStateSnapshot["events"] = [];
  const nodes: KeyStateSnapshot["nodes"] = [];
  const eventId = (e: BufferedEvent<V>): number => {
    let id = eventIds.get(e);
    if (id === undefined) {
      id = events.length;
      eventIds.set(e, id);
      events.push([e.id, e.ts, e.refs, encode(e.value)]);
    }
    return id;
  };
  const nodeId = (n: BufferNode<V>): number => {
    let id = nodeIds.get(n);
    if (id !== undefined) return id;
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
      nodeIds.set(cur, nodes.length);
      nodes.push([
        eventId(cur.event),
        cur.page,
        cur.refs,
        cur.edges.map((e) => [e.target === null ? -1 : (nodeIds.get(e.target) as number), e.version, e.refs]),
      ]);
    }
    id = nodeIds.get(n) as number;
    return id;
  };
  const cs = (c: ComputationState<V>): CsSnapshot => [
    c.state,
    c.version,
    c.startTs,
    c.previousTs,
    c.previous === null ? -1 : nodeId(c.previous),
    c.startEvent === null ? -1 : eventId(c.startEvent),
  ];
  const partial = key.partialMatches.items.map(cs);
  const completed = key.completedMatches.items.map(cs);
  return { events, nodes, partial, completed, counts: key.buffer.counts };
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
