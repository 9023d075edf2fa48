/**
 * FlinkCEP's SharedBuffer for one key: every event is stored once, every (event, step) pair is one
 * node, and partial matches are pointers into this graph whose edges are labelled with Dewey
 * versions. Reference counts on events, nodes and edges (Flink's Lockable) free what no partial
 * match can reach any more, so memory follows the live partial matches, not the input.
 *
 * Nodes and events are linked by object reference instead of Flink's (EventId, page) keys in
 * state maps: the graph is the same, lookups cost nothing, and snapshot.ts gives it plain ids.
 */
import { type Dewey, deweyCompatible } from "./dewey.js";
import { stepOf } from "./state.js";

export interface BufferedEvent<V> {
  /** EventId: (ts, id) with id counting events of the same timestamp, as Flink's eventsCount. */
  readonly id: number;
  readonly ts: number;
  readonly value: V;
  refs: number;
  /** Nodes of this event, one per step it was taken by. */
  nodes: BufferNode<V>[] | undefined;
}

export interface BufferEdge<V> {
  readonly target: BufferNode<V> | null;
  readonly version: Dewey;
  refs: number;
}

export interface BufferNode<V> {
  readonly event: BufferedEvent<V>;
  /** The step (original pattern name) the event was taken by. */
  readonly page: string;
  refs: number;
  readonly edges: BufferEdge<V>[];
  live: boolean;
}

/** One (partial) match read out of the buffer: step → events, in first-taken order. */
export type ExtractedMatch<V> = Map<string, BufferedEvent<V>[]>;

export function compareEvents<V>(a: BufferedEvent<V>, b: BufferedEvent<V>): number {
  return a.ts !== b.ts ? (a.ts < b.ts ? -1 : 1) : a.id - b.id;
}

/** Lockable.release: true when no lock is left. */
function release(x: { refs: number }): boolean {
  if (x.refs <= 0) return true;
  x.refs -= 1;
  return x.refs === 0;
}

export class SharedBuffer<V> {
  /**
   * Flink's eventsCount (next id per timestamp, forgotten once time passes it) reduced to the one
   * timestamp that can still receive events: the operator feeds a key in timestamp order and
   * advances its time before each new timestamp, so Flink's map never holds two live entries.
   * Two numbers instead of a Map per key.
   */
  private countTs = Number.NaN;
  private count = 0;
  liveEvents = 0;
  liveNodes = 0;

  registerEvent(value: V, ts: number): BufferedEvent<V> {
    if (ts !== this.countTs) {
      this.countTs = ts;
      this.count = 0;
    }
    const id = this.count++;
    this.liveEvents++;
    return { id, ts, value, refs: 1, nodes: undefined };
  }

  /** The eventsCount entries, as Flink's map would list them. */
  get counts(): Array<[ts: number, count: number]> {
    return this.count > 0 ? [[this.countTs, this.count]] : [];
  }

  set counts(entries: ReadonlyArray<readonly [ts: number, count: number]>) {
    this.countTs = Number.NaN;
    this.count = 0;
    for (const [ts, count] of entries) {
      if (!(ts < this.countTs)) {
        this.countTs = ts;
        this.count = count;
      }
    }
  }

  put(stateName: string, event: BufferedEvent<V>, previous: BufferNode<V> | null, version: Dewey): BufferNode<V> {
    if (previous !== null) this.lockNode(previous, version);
    const page = stepOf(stateName);
    let node: BufferNode<V> | undefined;
    if (event.nodes !== undefined) {
      for (const n of event.nodes) if (n.page === page) node = n;
    }
    if (node === undefined) {
      node = { event, page, refs: 0, edges: [], live: true };
      if (event.nodes === undefined) event.nodes = [node];
      else event.nodes.push(node);
      this.liveNodes++;
      event.refs++;
    }
    node.edges.push({ target: previous, version, refs: 0 });
    return node;
  }

  lockNode(node: BufferNode<V>, version: Dewey): void {
    if (!node.live) return;
    node.refs++;
    for (const edge of node.edges) if (deweyCompatible(version, edge.version)) edge.refs++;
  }

  releaseNode(node: BufferNode<V>, version: Dewey): void {
    const nodes: BufferNode<V>[] = [node];
    const versions: Dewey[] = [version];
    while (nodes.length > 0) {
      const cur = nodes.pop() as BufferNode<V>;
      if (!cur.live) break;
      const v = versions.pop() as Dewey;
      const edges = cur.edges;
      let w = 0;
      for (let r = 0; r < edges.length; r++) {
        const edge = edges[r] as BufferEdge<V>;
        if (deweyCompatible(v, edge.version) && release(edge)) {
          if (edge.target !== null) {
            nodes.push(edge.target);
            versions.push(edge.version);
          }
          continue;
        }
        edges[w++] = edge;
      }
      edges.length = w;
      if (release(cur)) this.removeNode(cur);
    }
  }

  releaseEvent(event: BufferedEvent<V>): void {
    if (release(event)) this.liveEvents--;
  }

  /** SharedBufferAccessor.extractPatterns: every path from `node` back to a start, compatible with `version`. */
  extractPatterns(node: BufferNode<V>, version: Dewey): ExtractedMatch<V>[] {
    const result: ExtractedMatch<V>[] = [];
    if (!node.live) return result;
    type Extraction = { entry: BufferNode<V> | null; version: Dewey; path: BufferNode<V>[] };
    const stack: Extraction[] = [{ entry: node, version, path: [] }];
    while (stack.length > 0) {
      const { entry, version: v, path } = stack.pop() as Extraction;
      if (entry === null) {
        const complete: ExtractedMatch<V> = new Map();
        for (let i = path.length - 1; i >= 0; i--) {
          const n = path[i] as BufferNode<V>;
          const list = complete.get(n.page);
          if (list === undefined) complete.set(n.page, [n.event]);
          else list.push(n.event);
        }
        result.push(complete);
        continue;
      }
      path.push(entry);
      let firstMatch = true;
      for (const edge of entry.edges) {
        if (!deweyCompatible(v, edge.version)) continue;
        let newPath: BufferNode<V>[];
        if (firstMatch) {
          newPath = path;
          firstMatch = false;
        } else {
          newPath = path.slice();
        }
        stack.push({ entry: edge.target, version: edge.version, path: newPath });
      }
    }
    return result;
  }

  advanceTime(ts: number): void {
    if (this.countTs < ts) {
      this.countTs = Number.NaN;
      this.count = 0;
    }
  }

  get isEmpty(): boolean {
    return this.liveNodes === 0;
  }

  private removeNode(node: BufferNode<V>): void {
    node.live = false;
    this.liveNodes--;
    const siblings = node.event.nodes;
    if (siblings !== undefined) {
      const i = siblings.indexOf(node);
      if (i >= 0) siblings.splice(i, 1);
      if (siblings.length === 0) node.event.nodes = undefined;
    }
    this.releaseEvent(node.event);
  }
}
