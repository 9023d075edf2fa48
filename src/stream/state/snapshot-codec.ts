import { SqlTimestamp } from "../sql/values.js";

/**
 * State values in checkpoints are JSON. Timestamps and non-finite doubles have no JSON form, so
 * they are tagged; everything else an event can hold (JSON values) passes through unchanged.
 */
export type Snapshot = null | boolean | number | string | Snapshot[] | { [k: string]: Snapshot };

export function snapshotValue(v: unknown): Snapshot {
  if (v === null || v === undefined) return null;
  if (typeof v === "number") return Number.isFinite(v) ? v : { $num: String(v) };
  if (typeof v === "string" || typeof v === "boolean") return v;
  if (v instanceof SqlTimestamp) return { $ts: v.ms, tz: v.tz };
  if (Array.isArray(v)) return v.map(snapshotValue);
  if (typeof v === "object") {
    const out: { [k: string]: Snapshot } = {};
    for (const [k, x] of Object.entries(v)) out[k] = snapshotValue(x);
    // A JSON object that happens to look like a tag is wrapped so restore cannot mistake it.
    return "$ts" in out || "$num" in out || "$obj" in out ? { $obj: out } : out;
  }
  return String(v);
}

export function restoreValue(s: Snapshot | undefined): unknown {
  if (s === null || s === undefined) return null;
  if (typeof s !== "object") return s;
  if (Array.isArray(s)) return s.map(restoreValue);
  if (typeof s.$ts === "number") return new SqlTimestamp(s.$ts, s.tz === true);
  if (typeof s.$num === "string") return Number(s.$num);
  const inner = s.$obj !== undefined && typeof s.$obj === "object" && !Array.isArray(s.$obj) ? s.$obj : s;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(inner as { [k: string]: Snapshot })) out[k] = restoreValue(x);
  return out;
}

/**
 * A primitive that identifies a value under SQL equality for grouping and DISTINCT: numbers and
 * strings stay themselves (a Map tells 1 from "1"), anything else becomes a tagged string.
 */
export function identityOf(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === "number" || typeof v === "string" || typeof v === "boolean") return v;
  if (v instanceof SqlTimestamp) return `\u0001t${v.ms}`;
  return `\u0001j${JSON.stringify(v)}`;
}
