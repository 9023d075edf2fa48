/**
 * Steady ingest for the cluster tests (cluster-mode, scenario): batches of events with unique ids,
 * posted round robin to the instances that are up by one or more clients, each acknowledged id
 * remembered, each refusal and answer time recorded; and a stream's records read back from the log.
 */
import type { EventLog, LogRecord } from "../../src/log/types.js";
import type { Instance } from "./instances.js";
import { sleep } from "./instances.js";

export interface Refusal {
  readonly at: number;
  readonly instance: string;
  /** The HTTP status, or `timeout` / `error` when no answer came. */
  readonly status: number | string;
  /** The answer's `error` code, if it had one. */
  readonly code?: string;
  /** The answer's Retry-After header, if it had one. */
  readonly retryAfter?: string;
}

/** The events of one batch, given their ids (the load's default: `{user_id, id, n}`, 60 users). */
export type MakeEvents = (ids: readonly number[]) => Record<string, unknown>[];

export interface LoadOptions {
  /** Events per request (default 20). */
  readonly batch?: number;
  /** Between a lane's answer and its next request (default 100 ms). */
  readonly pauseMs?: number;
  readonly makeEvents?: MakeEvents;
  /** How long a client waits for an answer before it counts the batch as `timeout` (default 3 s). */
  readonly timeoutMs?: number;
  /** Clients sending at once, each one request at a time (default 1). */
  readonly lanes?: number;
}

const defaultEvents: MakeEvents = (ids) => ids.map((id) => ({ user_id: `u${id % 60}`, id, n: id }));

export class SteadyLoad {
  /** Ids of events whose batch was acknowledged (200). */
  readonly acked = new Set<number>();
  /** Ids of events posted, acknowledged or not (a batch cut by a kill may still have been appended). */
  readonly sent = new Set<number>();
  readonly refusals: Refusal[] = [];
  /** Every request: when its answer (or failure) came, and how long it took. */
  readonly answers: { at: number; ms: number }[] = [];
  private next = 0;
  private turn = 0;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly batch: number;
  private readonly pauseMs: number;
  private readonly makeEvents: MakeEvents;
  private readonly timeoutMs: number;
  private readonly lanes: number;

  constructor(
    private readonly targets: () => readonly Instance[],
    private readonly token: string,
    private readonly stream: string,
    options: LoadOptions = {},
  ) {
    this.batch = options.batch ?? 20;
    this.pauseMs = options.pauseMs ?? 100;
    this.makeEvents = options.makeEvents ?? defaultEvents;
    this.timeoutMs = options.timeoutMs ?? 3_000;
    this.lanes = options.lanes ?? 1;
  }

  start(): void {
    this.loop = Promise.all(Array.from({ length: this.lanes }, () => this.run())).then(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const up = this.targets();
      const target = up[this.turn++ % Math.max(1, up.length)];
      if (target === undefined) {
        await sleep(this.pauseMs);
        continue;
      }
      const ids = Array.from({ length: this.batch }, () => this.next++);
      for (const id of ids) this.sent.add(id);
      const events = this.makeEvents(ids);
      const sentAt = Date.now();
      try {
        const res = await fetch(`${target.url}/api/v1/streams/${this.stream}/events`, {
          method: "POST",
          headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
          body: JSON.stringify(events),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        const text = await res.text();
        if (res.status === 200) for (const id of ids) this.acked.add(id);
        else this.refusals.push({ at: Date.now(), instance: target.id, status: res.status, ...answerOf(res, text) });
      } catch (e) {
        const status = (e as Error).name === "TimeoutError" ? "timeout" : "error";
        this.refusals.push({ at: Date.now(), instance: target.id, status });
      }
      this.answers.push({ at: Date.now(), ms: Date.now() - sentAt });
      await sleep(this.pauseMs);
    }
  }
}

function answerOf(res: Response, text: string): { code?: string; retryAfter?: string } {
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { error?: string }).error;
  } catch {
    // Not the JSON error shape (a proxy's or a dying process's answer): the status says enough.
  }
  const retryAfter = res.headers.get("retry-after") ?? undefined;
  return { ...(code === undefined ? {} : { code }), ...(retryAfter === undefined ? {} : { retryAfter }) };
}

const decoder = new TextDecoder();

/** Every record of `stream` from `from[p]` (default 0) on, partition by partition. */
export async function readFrom(log: EventLog, stream: string, from: readonly number[] = []): Promise<LogRecord[]> {
  const ends = await log.endOffsets(stream);
  const out: LogRecord[] = [];
  for (let p = 0; p < ends.length; p++) {
    for (let at = from[p] ?? 0; at < (ends[p] ?? 0); ) {
      const records = await log.read(stream, p, at, { maxRecords: 5000 });
      if (records.length === 0) break;
      out.push(...records);
      at = records[records.length - 1]!.offset + 1;
    }
  }
  return out;
}

/** How many times each event id appears among the outputs (their `id` column). */
export function countIds(records: readonly LogRecord[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const r of records) {
    const id = (JSON.parse(decoder.decode(r.value)) as { id: number }).id;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/** The end offsets of a stream sampled every 100 ms: how long each partition went without a new record. */
export class EndWatch {
  private readonly samples: { at: number; ends: readonly number[] }[] = [];
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly log: EventLog,
    private readonly stream: string,
  ) {}

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        const ends = await this.log.endOffsets(this.stream).catch(() => undefined);
        if (ends !== undefined) this.samples.push({ at: Date.now(), ends });
        await sleep(100);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  /** The longest time within [from, to] that any of `partitions` went without its end offset moving. */
  longestGap(partitions: readonly number[], from: number, to: number): { partition: number; ms: number } {
    const within = this.samples.filter((s) => s.at >= from && s.at <= to);
    let worst = { partition: -1, ms: 0 };
    for (const p of partitions) {
      let since = from;
      let last = within[0]?.ends[p];
      for (const s of within) {
        if (s.ends[p] !== last) {
          if (s.at - since > worst.ms) worst = { partition: p, ms: s.at - since };
          since = s.at;
          last = s.ends[p];
        }
      }
      if (to - since > worst.ms) worst = { partition: p, ms: to - since };
    }
    return worst;
  }
}
