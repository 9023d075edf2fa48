/**
 * The seed's fraud scenario as data, shared by test/e2e/fraud.test.ts, test/e2e/cep-crash.test.ts
 * and bench/cep.ts: seeded transactions for many users, and the offline computation of which
 * matches FlinkCEP's semantics yield for the seed's rule ("more than three transactions over $500
 * within 5 minutes": `large` with `times: {min: 4}`, relaxed contiguity, `within: 5m`).
 *
 * Why the offline computation is this simple: a `times {min: 4}` step with relaxed contiguity is
 * FlinkCEP's timesOrMore(4) with skip-till-next inside the loop, so a partial match started at a
 * large transaction takes every later large transaction of the key until `within` prunes it
 * (FlinkCEP prunes at `last − first ≥ within`). With `no_skip` every run of four or more large
 * transactions inside the window is a match; with `past_last_event` the first such run wins and
 * everything up to its last event is discarded, so matches are disjoint groups of exactly four.
 */
import { rng } from "../helpers/rng.js";

export const MINUTE = 60_000;
export const WITHIN_MS = 5 * MINUTE;
/** Event time of the scenario's first minute (a fixed date keeps runs comparable). */
export const BASE_TS = Date.UTC(2025, 0, 6, 9, 0, 0);

export interface Tx {
  readonly user_id: string;
  readonly event_type: "transaction" | "refund";
  readonly amount: number;
  /** Epoch ms; the stream's default timestamp field. */
  readonly timestamp: number;
  /** Unique per event, so a match can be named by its events. */
  readonly tx_id: string;
}

export type Category = "crosses" | "close" | "outside_window" | "random";

export interface Scenario {
  /** All events, in global event-time order (each user's in their own order, ties by arrival). */
  readonly events: Tx[];
  readonly categoryOf: ReadonlyMap<string, Category>;
}

export function isLarge(e: Pick<Tx, "event_type" | "amount">): boolean {
  return e.event_type === "transaction" && e.amount > 500;
}

/** The seed's rule as API.md writes it; `skip` and `actions` vary per test. */
export function seedRule(name: string, options: { skip?: string; actions?: unknown[] } = {}): Record<string, unknown> {
  return {
    name,
    stream: "transactions",
    key: "user_id",
    pattern: [{ name: "large", where: "event_type = 'transaction' AND amount > 500", times: { min: 4 } }],
    within: "5m",
    skip: options.skip ?? "past_last_event",
    actions: options.actions ?? [{ type: "alert", severity: "high" }, { type: "block" }],
  };
}

/**
 * Builds the scenario: `crosses` users have a burst of 4–6 large transactions inside 5 minutes
 * among noise; `close` users have three large ones inside 5 minutes plus look-alikes that must not
 * count ($500 exactly, large refunds); `outside_window` users have four or more large ones whose
 * every four span more than 5 minutes (and the two boundary cases: exactly 5 minutes, which does
 * not match, and 5 minutes less 1 ms, which does); `random` users are whatever the dice say.
 * Events of a user after their first match are made small, so that which of them a block refuses
 * (that depends on timing) cannot change the set of matches; `keepAfterMatch` leaves them as drawn.
 */
export function fraudScenario(
  seed: number,
  options: { users?: number; spanMinutes?: number; keepAfterMatch?: boolean } = {},
): Scenario {
  const users = options.users ?? 200;
  const spanMinutes = options.spanMinutes ?? 60;
  const r = rng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
  const small = (): number => Math.round((10 + r() * 490) * 100) / 100;
  const large = (): number => Math.round((500.01 + r() * 1500) * 100) / 100;
  const span = spanMinutes * MINUTE;
  const categoryOf = new Map<string, Category>();
  const all: Array<Omit<Tx, "tx_id"> & { seq: number }> = [];
  let seq = 0;
  for (let u = 0; u < users; u++) {
    const user = `u${String(u).padStart(3, "0")}`;
    const kinds: Category[] = ["crosses", "close", "outside_window", "random"];
    const category = kinds[u % 4] as Category;
    categoryOf.set(user, category);
    const evs: Array<{ event_type: Tx["event_type"]; amount: number; timestamp: number }> = [];
    const at = (ms: number): number => BASE_TS + Math.max(0, Math.min(span - 1, Math.round(ms)));
    const noise = (n: number): void => {
      for (let i = 0; i < n; i++) evs.push({ event_type: "transaction", amount: small(), timestamp: at(r() * span) });
    };
    switch (category) {
      case "crosses": {
        noise(int(2, 6));
        const t0 = r() * (span - WITHIN_MS);
        const width = 20_000 + r() * (WITHIN_MS - 30_000);
        const n = int(4, 6);
        for (let i = 0; i < n; i++) {
          evs.push({ event_type: "transaction", amount: large(), timestamp: at(t0 + (width * i) / (n - 1)) });
        }
        // A lone large transaction far from the burst.
        if (r() < 0.5) evs.push({ event_type: "transaction", amount: large(), timestamp: at(r() * span) });
        break;
      }
      case "close": {
        noise(int(2, 6));
        const t0 = r() * (span - WITHIN_MS);
        for (let i = 0; i < 3; i++) {
          evs.push({ event_type: "transaction", amount: large(), timestamp: at(t0 + r() * (WITHIN_MS - 1000)) });
        }
        evs.push({ event_type: "transaction", amount: 500, timestamp: at(t0 + r() * (WITHIN_MS - 1000)) });
        evs.push({ event_type: "refund", amount: large(), timestamp: at(t0 + r() * (WITHIN_MS - 1000)) });
        break;
      }
      case "outside_window": {
        noise(int(1, 4));
        const n = int(4, 7);
        // Three gaps of 101–200 s put every four consecutive large ones over 5 minutes apart.
        let t = r() * (span - n * 200_000);
        const boundary = u === 2 ? WITHIN_MS : u === 6 ? WITHIN_MS - 1 : undefined;
        for (let i = 0; i < n; i++) {
          evs.push({ event_type: "transaction", amount: large(), timestamp: at(t) });
          t += boundary !== undefined ? boundary / 3 : 101_000 + r() * 99_000;
        }
        break;
      }
      case "random": {
        const n = int(5, 16);
        for (let i = 0; i < n; i++) {
          evs.push({
            event_type: r() < 0.9 ? "transaction" : "refund",
            amount: Math.round(r() * 150_000) / 100,
            timestamp: at(r() * span),
          });
        }
        break;
      }
    }
    evs.sort((a, b) => a.timestamp - b.timestamp);
    // Distinct timestamps per user: the order inside a key never depends on arrival ties.
    for (let i = 1; i < evs.length; i++) {
      const prev = evs[i - 1]?.timestamp ?? 0;
      const cur = evs[i] as (typeof evs)[number];
      if (cur.timestamp <= prev) cur.timestamp = prev + 1;
    }
    const first = options.keepAfterMatch === true ? undefined : firstMatchEnd(evs);
    for (let i = 0; i < evs.length; i++) {
      const e = evs[i] as (typeof evs)[number];
      if (first !== undefined && i > first && isLarge(e)) e.amount = small();
      all.push({ user_id: user, ...e, seq: seq++ });
    }
  }
  all.sort((a, b) => a.timestamp - b.timestamp || a.seq - b.seq);
  const events = all.map(({ seq: _seq, ...e }, i) => ({ ...e, tx_id: `t${i}` }));
  return { events, categoryOf };
}

/** Index of the last event of a user's first match (past_last_event), if any. */
function firstMatchEnd(evs: ReadonlyArray<Pick<Tx, "event_type" | "amount" | "timestamp">>): number | undefined {
  const larges: number[] = [];
  for (let i = 0; i < evs.length; i++) {
    const e = evs[i] as Pick<Tx, "event_type" | "amount" | "timestamp">;
    if (!isLarge(e)) continue;
    larges.push(i);
    const n = larges.length;
    if (n >= 4 && e.timestamp - (evs[larges[n - 4] as number] as Tx).timestamp < WITHIN_MS) return i;
  }
  return undefined;
}

/**
 * The seed rule's matches over events in arrival order, each named `user:tx,tx,…` (events in
 * match order). Events of one key are assumed in event-time order (the scenario's are).
 */
export function expectedMatches(events: readonly Tx[], skip: "past_last_event" | "no_skip"): string[] {
  const larges = new Map<string, Tx[]>();
  const out: string[] = [];
  for (const e of events) {
    if (!isLarge(e)) continue;
    let list = larges.get(e.user_id);
    if (list === undefined) {
      list = [];
      larges.set(e.user_id, list);
    }
    list.push(e);
    const k = list.length - 1;
    if (skip === "past_last_event") {
      const start = k - 3;
      if (start >= 0 && e.timestamp - (list[start] as Tx).timestamp < WITHIN_MS) {
        out.push(nameOf(e.user_id, list.slice(start)));
        // Everything up to the match's last event is discarded.
        list.length = 0;
      }
    } else {
      for (let i = 0; i <= k - 3; i++) {
        if (e.timestamp - (list[i] as Tx).timestamp < WITHIN_MS) out.push(nameOf(e.user_id, list.slice(i)));
      }
    }
  }
  return out.sort();
}

export function nameOf(user: string, txs: ReadonlyArray<{ readonly tx_id?: unknown }>): string {
  return `${user}:${txs.map((t) => String(t.tx_id)).join(",")}`;
}

/** An alert as the API returns it, named like expectedMatches() names a match. */
export function alertName(a: { userId: string | null; events: Array<Record<string, unknown>> }): string {
  return nameOf(String(a.userId), a.events);
}

/**
 * A wave: many users complete a match in one batch, so each rule stores dozens of alerts in one
 * go before its position (and checkpoint) moves past them; killing while they appear crashes
 * between "alert stored" and "checkpoint written", the window a replay must not duplicate.
 */
export function wave(tag: string, at: number, users = 40): [Tx[], Tx[]] {
  // All at one event time, taking turns by user: nothing arrives behind a partition's watermark.
  const ev = (u: number, i: number): Tx => ({
    user_id: `w${tag}-${u}`,
    event_type: "transaction",
    amount: 700 + i,
    timestamp: at,
    tx_id: `w${tag}-${u}-${i}`,
  });
  const ids = Array.from({ length: users }, (_, u) => u);
  return [[0, 1, 2].flatMap((i) => ids.map((u) => ev(u, i))), ids.map((u) => ev(u, 3))];
}
