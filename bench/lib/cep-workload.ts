/**
 * The CEP benchmark's workloads (bench/cep.ts), built the same way in the parent (for FlinkCEP's
 * input) and in the pinned child that times Runnel (bench/lib/cep-runnel.ts), from the same seed, and
 * the match lines both sides hash (bench/report.ts linesHash).
 */
import { EVENT_META, type MetaEvent } from "../../src/cep/operator.js";
import { rng } from "../../test/helpers/rng.js";

export const KEYS = 100_000;
const T0 = Date.UTC(2025, 0, 6);

export type WorkloadName = "seed" | "sequence";
export const WORKLOADS: readonly WorkloadName[] = ["seed", "sequence"];

export interface Workload {
  readonly name: WorkloadName;
  readonly rule: Record<string, unknown>;
  /** The same pattern for tools/flinkcep-oracle (its condition format: type IN (…) AND v >= minV). */
  readonly flink: Record<string, unknown>;
  readonly keys: string[];
  readonly ts: Float64Array;
  /** Each event carries its index as its id (EVENT_META), as the runner's events carry their offset. */
  readonly values: MetaEvent[];
}

/**
 * Keys drawn uniformly, event time advancing evenly over `spanMs`: every key sees an event about
 * every spanMs·KEYS/events, inside both rules' windows, so all 100,000 keys hold partial matches.
 */
export function workload(name: WorkloadName, events: number): Workload {
  const r = rng(name === "seed" ? 1 : 2);
  const spanMs = name === "seed" ? 10 * 60_000 : 20 * 60_000;
  const keys: string[] = new Array(events);
  const ts = new Float64Array(events);
  const values: MetaEvent[] = new Array(events);
  const names = Array.from({ length: KEYS }, (_, i) => `u${i}`);
  for (let i = 0; i < events; i++) {
    keys[i] = names[Math.floor(r() * KEYS)] as string;
    const t = T0 + Math.floor((i / events) * spanMs);
    ts[i] = t;
    const meta = { ts: t, id: String(i) };
    if (name === "seed") {
      const type = r() < 0.95 ? "transaction" : "refund";
      values[i] = { event_type: type, amount: Math.round(r() * 100_000) / 100, [EVENT_META]: meta };
    } else {
      values[i] = { event_type: "abcd"[Math.floor(r() * 4)] as string, amount: 1, [EVENT_META]: meta };
    }
  }
  const step = (n: string, types: string[], minV: number | null, extra: Record<string, unknown> = {}) => ({
    name: n,
    contiguity: "followedBy",
    where: { types, minV, sumMax: null },
    quantifier: { kind: "one" },
    ...extra,
  });
  if (name === "seed") {
    return {
      name,
      keys,
      ts,
      values,
      rule: {
        name: "burst-of-large-transactions",
        stream: "transactions",
        pattern: [{ name: "large", where: "event_type = 'transaction' AND amount > 500", times: { min: 4 } }],
        within: "5m",
        skip: "past_last_event",
        actions: [{ type: "alert" }],
      },
      // Amounts have two decimals, so v >= 500.01 is amount > 500.
      flink: {
        steps: [step("large", ["transaction"], 500.01, { quantifier: { kind: "timesOrMore", from: 4 } })],
        within: 300_000,
        skip: "past_last_event",
      },
    };
  }
  return {
    name,
    keys,
    ts,
    values,
    rule: {
      name: "a-b-c",
      stream: "events",
      pattern: [
        { name: "a", where: "event_type = 'a'" },
        { name: "b", where: "event_type = 'b'", contiguity: "followedBy" },
        { name: "c", where: "event_type = 'c'", contiguity: "followedBy" },
      ],
      within: "10m",
      actions: [{ type: "alert" }],
    },
    flink: {
      steps: [step("a", ["a"], null), step("b", ["b"], null), step("c", ["c"], null)],
      within: 600_000,
      skip: "no_skip",
    },
  };
}

/** The JSON line tools/flinkcep-oracle's CepBench reads: the pattern, the events, the mode. */
export function flinkInput(w: Workload, mode: "operator" | "nfa", rounds: number, watermarkEvery: number): string {
  const events = w.keys.map((k, i) => ({
    k,
    ts: w.ts[i],
    type: (w.values[i] as { event_type: string }).event_type,
    v: (w.values[i] as { amount: number }).amount,
  }));
  return `${JSON.stringify({ ...w.flink, mode, events, rounds, watermarkEvery })}\n`;
}

/** One match as both sides write it: "key|id,id,..." with the event ids ascending. */
export function matchLine(key: string, events: Iterable<readonly MetaEvent[]>): string {
  const ids: number[] = [];
  for (const es of events) for (const e of es) ids.push(Number(e[EVENT_META]?.id));
  ids.sort((a, b) => a - b);
  return `${key}|${ids.join(",")}`;
}
