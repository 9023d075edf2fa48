import type { Clock } from "../../core/clock.js";
import type { DeadLetterSink } from "../../core/dead-letters.js";
import { RunnelError } from "../../core/errors.js";
import type { EventLog, LogRecord } from "../../log/types.js";
import type { CheckpointStore } from "../../runtime/checkpoint/store.js";
import type { Route } from "../../runtime/exchange.js";
import { decodeRecord } from "../codec.js";
import type { Emitted, StreamEvent } from "../event.js";
import { KeyedProcessOperator, type KeyedState } from "../keyed-process.js";
import { CachedLookup, type LookupCacheOptions, type LookupRow, type LookupTable } from "../lookup.js";
import type { Operator } from "../operators.js";
import { type PipelineOptionsInput, parsePipelineOptions } from "../options.js";
import { PipelineRunner, type PipelineStats } from "../runner.js";
import type { CheckpointedOperator } from "../task-operators.js";
import type { AggregateSpec } from "../window/aggregates.js";
import type { KeySelector, WindowedPlan } from "../window/operator.js";
import { checkWindow, type WindowSpec } from "../window/windows.js";
import { type Shard, WindowedPipelineRunner } from "../window-runner.js";

/**
 * The code-first front end: the same operators as streaming SQL, as a typed builder.
 * source stream → filter/map/flatMap → (keyBy → window → aggregate) → sink stream.
 */

type Value = Record<string, unknown>;

/** One step of the stateless chain; returns the values it produces (flatMap may produce several). */
type Step = (value: Value, event: StreamEvent) => Value | Value[] | undefined;

/** An aggregate over values of type T, named by the key it is given in `aggregate({...})`. */
export interface Aggregate<T> {
  readonly kind: AggregateSpec["kind"];
  readonly arg?: (value: T) => unknown;
  readonly by?: (value: T) => unknown;
}

export const count = <T>(): Aggregate<T> => ({ kind: "count_star" });
export const sum = <T>(f: (v: T) => unknown): Aggregate<T> => ({ kind: "sum", arg: f });
export const min = <T>(f: (v: T) => unknown): Aggregate<T> => ({ kind: "min", arg: f });
export const max = <T>(f: (v: T) => unknown): Aggregate<T> => ({ kind: "max", arg: f });
export const avg = <T>(f: (v: T) => unknown): Aggregate<T> => ({ kind: "avg", arg: f });
export const countDistinct = <T>(f: (v: T) => unknown): Aggregate<T> => ({ kind: "count_distinct", arg: f });
/** The value of the earliest event in event time. */
export const first = <T>(f: (v: T) => unknown): Aggregate<T> => ({ kind: "first", arg: f });
/** The value of the latest event in event time. */
export const last = <T>(f: (v: T) => unknown): Aggregate<T> => ({ kind: "last", arg: f });
export const argMin = <T>(f: (v: T) => unknown, by: (v: T) => unknown): Aggregate<T> => ({
  kind: "arg_min",
  arg: f,
  by,
});
export const argMax = <T>(f: (v: T) => unknown, by: (v: T) => unknown): Aggregate<T> => ({
  kind: "arg_max",
  arg: f,
  by,
});

export interface JobOptions {
  /** Name of the job: its consumer group, checkpoints and output ids. Default: the output stream. */
  readonly name?: string;
  readonly startFrom?: "earliest" | "now";
  /** Windowed jobs: event-time options in human units (`{ outOfOrderness: "5s" }`). */
  readonly options?: PipelineOptionsInput;
  /** Windowed jobs: the stream that receives events too late for their window. */
  readonly lateOutput?: string;
  /**
   * Where the job's tasks checkpoint (e.g. `new LocalFileCheckpointStore(dir)`). Default: in
   * memory; a job restarted in a new process then replays its input from `startFrom` (map jobs
   * from their committed offsets), writing each output once all the same.
   */
  readonly checkpoints?: CheckpointStore;
  readonly clock?: Clock;
  /** Where records the job cannot process go (src/core/dead-letters.ts); without it they are counted and skipped. */
  readonly deadLetters?: DeadLetterSink;
}

/** A running (or runnable) job. */
export interface Job {
  start(): Promise<void>;
  /** Stops after the work in flight; windowed jobs take a final checkpoint. */
  stop(): Promise<void>;
  /** Resolves once everything appended so far has been processed. */
  idle(): Promise<void>;
  stats(): PipelineStats;
}

/** Lookup steps register how to load their chunk's keys before the chunk is processed. */
const prefetchers = new WeakMap<Step, (records: readonly LogRecord[]) => Promise<void>>();

export interface LookupOptions<N extends string> {
  /** The field the table's row is put in (null when the table has no row for the key). */
  readonly as: N;
  /** The lookup key, from the source event; default the event's key (its user_id). */
  readonly key?: (event: StreamEvent) => string;
  /** "left" (default) keeps events without a row, with `as: null`; "inner" drops them. */
  readonly join?: "left" | "inner";
  /** LRU size, TTL and clock of the cache; ignored when a CachedLookup is given. */
  readonly cache?: LookupCacheOptions;
}

export class DataStream<T extends Value> {
  constructor(
    protected readonly log: EventLog,
    protected readonly source: string,
    protected readonly steps: readonly Step[],
  ) {}

  filter(predicate: (value: T, event: StreamEvent) => boolean): DataStream<T> {
    return this.step((v, e) => (predicate(v as T, e) ? v : undefined));
  }

  map<U extends Value>(f: (value: T, event: StreamEvent) => U): DataStream<U> {
    return this.step((v, e) => f(v as T, e));
  }

  flatMap<U extends Value>(f: (value: T, event: StreamEvent) => Iterable<U>): DataStream<U> {
    return this.step((v, e) => [...f(v as T, e)]);
  }

  /**
   * Enrichment: joins each event with the table's current row for its key, through an LRU+TTL
   * cache (Flink's lookup join). Available before `to()`; a windowed job refuses it.
   */
  lookup<N extends string>(
    table: LookupTable | CachedLookup,
    options: LookupOptions<N>,
  ): DataStream<T & { [K in N]: LookupRow | null }> {
    const cached = table instanceof CachedLookup ? table : new CachedLookup(table, options.cache);
    const keyOf = options.key ?? ((e: StreamEvent) => e.key);
    const inner = options.join === "inner";
    const as = options.as;
    const step: Step = (v, e) => {
      const row = cached.get(keyOf(e)) ?? null;
      if (row === null && inner) return undefined;
      return { ...v, [as]: row };
    };
    prefetchers.set(step, async (records) => {
      // The record key is the event's key: no decode unless a key function needs the event.
      const keys = options.key === undefined ? records.map((r) => r.key) : records.map((r) => keyOf(decodeRecord(r)));
      await cached.prefetch(keys);
    });
    return this.step(step);
  }

  /** Groups by a field (`"user_id"`: results belong to that user) or by a function of the value. */
  keyBy(key: (keyof T & string) | ((value: T) => string)): KeyedStream<T> {
    return new KeyedStream<T>(this.log, this.source, this.steps, key);
  }

  /** Writes every value to `output` (created by the caller with the source's partition count). */
  to(output: string, options: JobOptions = {}): Job {
    const runner = new PipelineRunner({
      log: this.log,
      pipeline: { name: options.name ?? output, sql: "", startFrom: options.startFrom ?? "earliest" },
      compiled: { inputStream: this.source, operator: chainOperator(this.steps) },
      outputStream: output,
      ...(options.checkpoints !== undefined && { checkpoints: options.checkpoints }),
      ...(options.clock !== undefined && { clock: options.clock }),
      ...(options.deadLetters !== undefined && { deadLetters: options.deadLetters }),
    });
    return runner;
  }

  private step<U extends Value>(step: Step): DataStream<U> {
    return new DataStream<U>(this.log, this.source, [...this.steps, step]);
  }
}

export class KeyedStream<T extends Value> {
  constructor(
    private readonly log: EventLog,
    private readonly source: string,
    private readonly steps: readonly Step[],
    private readonly key: (keyof T & string) | ((value: T) => string),
  ) {}

  window(spec: WindowSpec): WindowedStream<T> {
    if (this.steps.some((s) => prefetchers.has(s))) {
      throw new RunnelError(
        "invalid_input",
        "lookup() is not supported before a window yet: enrich the window's output",
      );
    }
    return new WindowedStream<T>(this.log, this.source, this.steps, this.key, checkWindow(spec));
  }

  /**
   * Flink's KeyedProcessFunction with a ValueState and TTL: `process` runs once per value with the
   * state of the value's key (`state.value()`, `state.update(v)`, `state.clear()`) and emits
   * outputs with `out(o)`. State not updated for `ttlMs` of event time (record timestamps) reads
   * as undefined. State is checkpointed with the input offsets (as window state) and restored
   * after a restart. State values must be JSON. See docs/stream-processing.md, keyed state.
   */
  process<S, Out extends Value>(fn: ProcessFunction<T, S, Out>): ProcessedStream {
    if (this.steps.some((s) => prefetchers.has(s))) {
      throw new RunnelError("invalid_input", "lookup() is not supported before process() yet: enrich its output");
    }
    if (!(Number.isFinite(fn.ttlMs) && fn.ttlMs > 0)) {
      throw new RunnelError("invalid_input", "process(): ttlMs must be a positive number of milliseconds");
    }
    const keyFn = keyFunction<T>(this.key);
    const steps = this.steps;
    const user = fn.process;
    const plan = {
      ttlMs: fn.ttlMs,
      values: (e: StreamEvent) => runSteps(steps, e),
      keyOf: (v: Record<string, unknown>) => keyFn(v as T),
      process: (v: Record<string, unknown>, state: KeyedState<S>, out: (o: Out) => void, e: StreamEvent) =>
        user(v as T, state, out, e),
    };
    return new ProcessedStream(
      this.log,
      this.source,
      (pipeline, shard) => new KeyedProcessOperator<S, Out>(plan, { pipeline, ...(shard !== undefined && { shard }) }),
      (e) => {
        const values = plan.values(e);
        return values.length === 1 ? plan.keyOf(values[0] as Record<string, unknown>) : values.map(plan.keyOf);
      },
      // Only without a chain before keyBy: a map could change user_id.
      this.key === "user_id" && steps.length === 0,
    );
  }
}

/** A keyed process function: per value, with its key's state; `out` emits an output. */
export interface ProcessFunction<T, S, Out> {
  /** State not updated for this long, in event time, expires. */
  readonly ttlMs: number;
  process(value: T, state: KeyedState<S>, out: (output: Out) => void, event: StreamEvent): void;
}

/** The outputs of a process function, ready to be written to a stream. */
export class ProcessedStream {
  constructor(
    private readonly log: EventLog,
    private readonly source: string,
    private readonly operator: (pipeline: string, shard?: Shard) => CheckpointedOperator,
    /** The key (or keys) of an event's values: its route through the exchange. */
    private readonly route: Route,
    /** Keyed by user_id as ingested: the job's tasks read their partitions directly. */
    private readonly byPartitionKey: boolean,
  ) {}

  /**
   * Writes the outputs to `output` (keyed and timed like their input event), exactly once: the
   * windowed runner checkpoints the keyed state with the input offsets.
   */
  to(output: string, options: JobOptions = {}): Job {
    const name = options.name ?? output;
    return new WindowedPipelineRunner({
      log: this.log,
      name,
      inputStream: this.source,
      createOperator: (shard) => this.operator(name, shard),
      route: this.route,
      byPartitionKey: this.byPartitionKey,
      outputStream: output,
      startFrom: options.startFrom ?? "earliest",
      options: parsePipelineOptions(options.options),
      ...(options.checkpoints !== undefined && { checkpoints: options.checkpoints }),
      ...(options.clock !== undefined && { clock: options.clock }),
      ...(options.deadLetters !== undefined && { deadLetters: options.deadLetters }),
    });
  }
}

function keyFunction<T extends Value>(key: (keyof T & string) | ((value: T) => string)): (value: T) => string {
  if (typeof key === "function") return key;
  return (v: T) => {
    const k = v[key];
    return k === undefined || k === null ? "" : String(k);
  };
}

/** The stateless chain over one event: the values it produces, in order. */
function runSteps(steps: readonly Step[], event: StreamEvent): Value[] {
  let values: Value[] = [event.value as Value];
  for (const step of steps) {
    const next: Value[] = [];
    for (const v of values) {
      const r = step(v, event);
      if (r === undefined) continue;
      if (Array.isArray(r)) next.push(...r);
      else next.push(r);
    }
    values = next;
    if (values.length === 0) break;
  }
  return values;
}

/** A window result: the key, the window bounds (epoch ms) and one field per aggregate. */
export type WindowRow<A> = { key: string; window_start: string; window_end: string } & { [K in keyof A]: unknown };

export class WindowedStream<T extends Value> {
  constructor(
    private readonly log: EventLog,
    private readonly source: string,
    private readonly steps: readonly Step[],
    private readonly key: (keyof T & string) | ((value: T) => string),
    private readonly spec: WindowSpec,
  ) {}

  aggregate(aggregates: Record<string, Aggregate<T>>): AggregatedStream {
    return new AggregatedStream(this.log, this.source, this.plan(aggregates));
  }

  private plan(aggregates: Record<string, Aggregate<T>>): WindowedPlan {
    const names = Object.keys(aggregates);
    const specs: AggregateSpec[] = names.map((n) => {
      const a = aggregates[n] as Aggregate<T>;
      const arg = a.arg;
      const by = a.by;
      return {
        kind: a.kind,
        ...(arg !== undefined && { arg: (e: StreamEvent) => arg(e.value as T) }),
        ...(by !== undefined && { by: (e: StreamEvent) => by(e.value as T) }),
      };
    });
    const keyFn =
      typeof this.key === "function"
        ? (this.key as (v: T) => string)
        : ((field: string) => (v: T) => {
            const k = v[field];
            return k === undefined || k === null ? "" : String(k);
          })(this.key);
    const byUser = this.key === "user_id";
    const key: KeySelector = {
      keyOf: (e) => keyFn(e.value as T),
      valuesOf: (e) => [keyFn(e.value as T)],
      keyOfValues: (values) => String(values[0] ?? ""),
      ownerOf: (values) => (byUser ? String(values[0] ?? "") : ""),
      // Only without a chain before keyBy: a map could change user_id.
      byPartitionKey: byUser && this.steps.length === 0,
    };
    const steps = this.steps;
    const prepare =
      steps.length === 0
        ? undefined
        : (e: StreamEvent): StreamEvent | undefined => {
            let value: Value = e.value as Value;
            for (const step of steps) {
              const next = step(value, e);
              if (next === undefined) return undefined;
              if (Array.isArray(next)) {
                throw new RunnelError("invalid_input", "flatMap before a window is not supported: use map or filter");
              }
              value = next;
            }
            return value === e.value ? e : { ...e, value };
          };
    return {
      window: this.spec,
      key,
      aggregates: specs,
      project: (r) => {
        const row: Value = {
          key: r.keyValues[0] ?? "",
          window_start: new Date(r.start).toISOString(),
          window_end: new Date(r.end).toISOString(),
        };
        for (let i = 0; i < names.length; i++) row[names[i] as string] = r.aggregates[i] ?? null;
        return row;
      },
      ...(prepare !== undefined && { prepare }),
    };
  }
}

/** Window results, ready to be written to a stream; each row is a `WindowRow` of the aggregates. */
export class AggregatedStream {
  constructor(
    private readonly log: EventLog,
    private readonly source: string,
    readonly plan: WindowedPlan,
  ) {}

  /** Writes window results to `output` (and too-late events to `lateOutput`), exactly once. */
  to(output: string, options: JobOptions = {}): Job {
    return new WindowedPipelineRunner({
      log: this.log,
      name: options.name ?? output,
      inputStream: this.source,
      plan: this.plan,
      outputStream: output,
      ...(options.lateOutput !== undefined && { lateStream: options.lateOutput }),
      startFrom: options.startFrom ?? "earliest",
      options: parsePipelineOptions(options.options),
      ...(options.checkpoints !== undefined && { checkpoints: options.checkpoints }),
      ...(options.clock !== undefined && { clock: options.clock }),
      ...(options.deadLetters !== undefined && { deadLetters: options.deadLetters }),
    });
  }
}

function chainOperator(steps: readonly Step[]): Operator {
  const prefetch = steps.flatMap((s) => {
    const p = prefetchers.get(s);
    return p === undefined ? [] : [p];
  });
  return {
    ...(prefetch.length > 0 && {
      prepare: async (records: readonly LogRecord[]) => {
        for (const p of prefetch) await p(records);
      },
    }),
    process(event: StreamEvent, out: Emitted[]): void {
      const values = runSteps(steps, event);
      for (const value of values) out.push({ key: event.key, timestamp: event.timestamp, value });
    },
  };
}

/**
 * Starts a job from a stream of the log.
 *
 * @example
 * import { stream, tumbling, count, sum } from "runnel";
 * const job = stream<{ user_id: string; amount: number }>(log, "transactions")
 *   .filter((t) => t.amount > 0)
 *   .keyBy("user_id")
 *   .window(tumbling(60_000))
 *   .aggregate({ n: count(), total: sum((t) => t.amount) })
 *   .to("per_minute", { lateOutput: "per_minute_late", options: { outOfOrderness: "5s" } });
 * await job.start();
 */
export function stream<T extends Value = Value>(log: EventLog, name: string): DataStream<T> {
  return new DataStream<T>(log, name, []);
}
