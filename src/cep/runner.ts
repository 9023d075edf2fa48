/**
 * Runs one rule against its stream: per partition a CepOperator fed from the log in offset order
 * (event time = the record's timestamp, watermark per partition), matches handed to the sink
 * (which stores each alert under an id derived from the match, idempotently) before the
 * checkpoint that covers them is written. Wakes on `log.onAppend`; it never polls.
 */
import type { EventLog, LogRecord } from "../log/types.js";
import { type RuleCheckpoint, readCheckpoint, writeCheckpoint } from "./checkpoint.js";
import { type CepMatch, CepOperator, EVENT_META, type MetaEvent } from "./operator.js";
import type { CompiledRule } from "./rule/compile.js";

export interface RuleRunnerOptions {
  readonly log: EventLog;
  readonly ruleId: string;
  readonly stream: string;
  readonly compiled: CompiledRule;
  readonly checkpointPath: string;
  readonly sink: (matches: readonly CepMatch[]) => Promise<void>;
  readonly chunkSize?: number;
  /** Minimum time between checkpoints, ms (every chunk's matches are stored before it anyway). */
  readonly checkpointEveryMs?: number;
  readonly retryDelayMs?: number;
}

const decoder = new TextDecoder();

export class RuleRunner {
  private positions: number[] = [];
  private operators: CepOperator[] = [];
  private collected: CepMatch[] = [];
  private unsubscribe: (() => void) | undefined;
  private pending = false;
  private draining: Promise<void> | undefined;
  private stopped = false;
  private lastCheckpoint = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  recordsIn = 0;
  matches = 0;
  failures = 0;
  lastError: string | undefined;

  constructor(private readonly options: RuleRunnerOptions) {}

  /** Restores the checkpoint, or starts at the end of the stream (a new rule sees what arrives after it). */
  async start(): Promise<void> {
    const { log, stream, compiled, checkpointPath } = this.options;
    const partitions = log.partitionCount(stream);
    const cp = await readCheckpoint(checkpointPath);
    this.operators = Array.from(
      { length: partitions },
      () => new CepOperator(compiled, { onMatch: (m) => this.collected.push(m) }),
    );
    if (cp !== undefined && cp.positions.length === partitions) {
      this.positions = cp.positions.slice();
      for (const [p, s] of cp.operators.entries()) this.operators[p]?.restore(s);
    } else {
      this.positions = await log.endOffsets(stream);
      await this.checkpoint();
    }
    this.unsubscribe = log.onAppend(stream, () => this.wake());
    this.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    await this.draining;
    await this.checkpoint().catch(() => {});
  }

  async idle(): Promise<void> {
    while (this.draining !== undefined) await this.draining;
  }

  partialMatches(): number {
    return this.operators.reduce((n, op) => n + op.partialMatchCount(), 0);
  }

  /** Keys holding partial matches, over all partitions. */
  activeKeys(): number {
    return this.operators.reduce((n, op) => n + op.activeKeys, 0);
  }

  private wake(): void {
    this.pending = true;
    if (this.draining !== undefined || this.stopped) return;
    this.draining = this.drain().finally(() => {
      this.draining = undefined;
      if (this.pending && !this.stopped) this.wake();
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending && !this.stopped) {
        this.pending = false;
        if (await this.round()) this.pending = true;
      }
      if (Date.now() - this.lastCheckpoint >= (this.options.checkpointEveryMs ?? 1000)) await this.checkpoint();
    } catch (e) {
      this.failures++;
      this.lastError = e instanceof Error ? e.message : String(e);
      if (!this.stopped) {
        this.retryTimer = setTimeout(() => this.wake(), this.options.retryDelayMs ?? 1000);
        this.retryTimer.unref();
      }
    }
  }

  private async round(): Promise<boolean> {
    const { log, stream } = this.options;
    let any = false;
    for (let p = 0; p < this.positions.length && !this.stopped; p++) {
      const records = await log.read(stream, p, this.positions[p] ?? 0, { maxRecords: this.options.chunkSize ?? 1000 });
      if (records.length === 0) continue;
      any = true;
      const op = this.operators[p] as CepOperator;
      for (const r of records) this.feed(op, p, r);
      const batch = this.collected;
      this.collected = [];
      this.matches += batch.length;
      // Matches are stored before the position moves past their events: a crash replays them.
      if (batch.length > 0) await this.options.sink(batch);
      this.positions[p] = (records[records.length - 1] as LogRecord).offset + 1;
      this.recordsIn += records.length;
    }
    return any;
  }

  private feed(op: CepOperator, partition: number, r: LogRecord): void {
    let value: MetaEvent;
    try {
      value = JSON.parse(decoder.decode(r.value)) as MetaEvent;
    } catch {
      return;
    }
    const keyField = this.options.compiled.key;
    const key = keyField === "user_id" ? r.key : value[keyField];
    if (key === undefined || key === null) return;
    (value as { [EVENT_META]?: { ts: number; id: string } })[EVENT_META] = {
      ts: r.timestamp,
      id: `${partition}:${r.offset}`,
    };
    op.process(String(key), r.timestamp, value);
  }

  private async checkpoint(): Promise<void> {
    const cp: RuleCheckpoint = {
      version: 1,
      positions: this.positions.slice(),
      operators: this.operators.map((o) => o.snapshot()),
    };
    this.lastCheckpoint = Date.now();
    await writeCheckpoint(this.options.checkpointPath, cp);
  }
}
