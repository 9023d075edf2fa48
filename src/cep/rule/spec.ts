/**
 * The rule JSON of API.md ("Complex event processing rules"), validated field by field: unknown
 * fields, wrong types, bad durations, unparsable `where`, unknown step names and every pattern
 * FlinkCEP would refuse are reported as invalid_input naming the offending field.
 */
import { RunnelError } from "../../core/errors.js";
import { parseDuration } from "./duration.js";

export type Contiguity = "next" | "followedBy" | "followedByAny" | "notNext" | "notFollowedBy";
export const CONTIGUITIES: readonly Contiguity[] = ["next", "followedBy", "followedByAny", "notNext", "notFollowedBy"];

export interface StepSpec {
  readonly name: string;
  readonly where?: string;
  readonly times?: { readonly exactly: number } | { readonly min: number; readonly max?: number };
  readonly oneOrMore?: boolean;
  readonly optional?: boolean;
  readonly greedy?: boolean;
  readonly consecutive?: boolean;
  /** FlinkCEP's allowCombinations (an addition to API.md): non-deterministic relaxed contiguity inside a loop. */
  readonly allowCombinations?: boolean;
  readonly until?: string;
  readonly contiguity?: Contiguity;
}

export type ActionSpec =
  | { readonly type: "alert"; readonly severity?: string }
  | {
      readonly type: "block";
      readonly streams?: readonly string[];
      /**
       * `owner` (default): the user whose events make up the whole match, so no user's events
       * can get another user blocked; `all`: every user with events in the match (docs/cep.md).
       */
      readonly users?: "owner" | "all";
    }
  | { readonly type: "webhook"; readonly url: string };

export interface RuleSpec {
  readonly name: string;
  readonly stream: string;
  readonly key?: string;
  readonly pattern: readonly StepSpec[];
  readonly within?: string;
  readonly lateness?: string;
  readonly skip?: string;
  /** `alert`: partial matches that time out by `within` yield an alert too (FlinkCEP's timed-out side output). */
  readonly onTimeout?: "alert" | "ignore";
  readonly actions?: readonly ActionSpec[];
  readonly enabled?: boolean;
}

const RULE_FIELDS = new Set([
  "name",
  "stream",
  "key",
  "pattern",
  "within",
  "lateness",
  "skip",
  "onTimeout",
  "actions",
  "enabled",
]);
const STEP_FIELDS = new Set([
  "name",
  "where",
  "times",
  "oneOrMore",
  "optional",
  "greedy",
  "consecutive",
  "allowCombinations",
  "until",
  "contiguity",
]);
export const RESERVED_STEP_NAMES = new Set(["first", "prev"]);

function bad(path: string, message: string): never {
  throw new RunnelError("invalid_input", `${path}: ${message}`, { details: [{ field: path, message }] });
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function unknownFields(o: Record<string, unknown>, allowed: ReadonlySet<string>, path: string): void {
  for (const k of Object.keys(o)) if (!allowed.has(k)) bad(`${path}/${k}`, "unknown field");
}

function str(o: Record<string, unknown>, k: string, path: string, required = false): string | undefined {
  const v = o[k];
  if (v === undefined) {
    if (required) bad(`${path}/${k}`, "is required");
    return undefined;
  }
  if (typeof v !== "string" || v === "") bad(`${path}/${k}`, "must be a non-empty string");
  return v as string;
}

function bool(o: Record<string, unknown>, k: string, path: string): boolean | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  if (typeof v !== "boolean") bad(`${path}/${k}`, "must be true or false");
  return v as boolean;
}

function int(v: unknown, path: string, min: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > 10_000) {
    bad(path, `must be an integer from ${min} to 10000`);
  }
  return v as number;
}

function duration(o: Record<string, unknown>, k: string, path: string, allowZero: boolean): string | undefined {
  const v = str(o, k, path);
  if (v === undefined) return undefined;
  const ms = parseDuration(v);
  if (ms === undefined || (!allowZero && ms <= 0))
    bad(`${path}/${k}`, `"${v}" is not a duration like 500ms, 30s, 5m, 1h`);
  return v;
}

function step(x: unknown, i: number): StepSpec {
  const path = `/pattern/${i}`;
  if (!isObject(x)) bad(path, "a step must be an object");
  const o = x as Record<string, unknown>;
  unknownFields(o, STEP_FIELDS, path);
  const name = str(o, "name", path, true) as string;
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(name))
    bad(`${path}/name`, "must be 1-64 of [A-Za-z0-9_], not starting with a digit");
  if (RESERVED_STEP_NAMES.has(name.toLowerCase())) bad(`${path}/name`, `"${name}" is reserved (first.x and prev.x)`);
  const out: { -readonly [K in keyof StepSpec]: StepSpec[K] } = { name };
  const where = str(o, "where", path);
  if (where !== undefined) out.where = where;
  if (o.times !== undefined) {
    if (!isObject(o.times)) bad(`${path}/times`, "must be {exactly} or {min, max?}");
    const t = o.times as Record<string, unknown>;
    if (t.exactly !== undefined) {
      unknownFields(t, new Set(["exactly"]), `${path}/times`);
      out.times = { exactly: int(t.exactly, `${path}/times/exactly`, 1) };
    } else {
      unknownFields(t, new Set(["min", "max"]), `${path}/times`);
      const min = int(t.min, `${path}/times/min`, 0);
      if (t.max === undefined) out.times = { min };
      else {
        const max = int(t.max, `${path}/times/max`, Math.max(1, min));
        out.times = { min, max };
      }
    }
  }
  for (const k of ["oneOrMore", "optional", "greedy", "consecutive", "allowCombinations"] as const) {
    const b = bool(o, k, path);
    if (b !== undefined) out[k] = b;
  }
  if (out.oneOrMore === true && out.times !== undefined) bad(`${path}/oneOrMore`, "use either times or oneOrMore");
  const until = str(o, "until", path);
  if (until !== undefined) out.until = until;
  if (o.contiguity !== undefined) {
    if (!CONTIGUITIES.includes(o.contiguity as Contiguity)) {
      bad(`${path}/contiguity`, `must be one of ${CONTIGUITIES.join(", ")}`);
    }
    out.contiguity = o.contiguity as Contiguity;
  }
  return out;
}

function action(x: unknown, i: number): ActionSpec {
  const path = `/actions/${i}`;
  if (!isObject(x)) bad(path, "an action must be an object");
  const o = x as Record<string, unknown>;
  switch (o.type) {
    case "alert": {
      unknownFields(o, new Set(["type", "severity"]), path);
      const severity = str(o, "severity", path);
      return severity === undefined ? { type: "alert" } : { type: "alert", severity };
    }
    case "block": {
      unknownFields(o, new Set(["type", "streams", "users"]), path);
      if (o.users !== undefined && o.users !== "owner" && o.users !== "all") {
        bad(`${path}/users`, 'must be "owner" or "all"');
      }
      const users = o.users === undefined ? {} : { users: o.users as "owner" | "all" };
      if (o.streams === undefined) return { type: "block", ...users };
      if (!Array.isArray(o.streams) || o.streams.length === 0 || o.streams.some((s) => typeof s !== "string")) {
        bad(`${path}/streams`, "must be a non-empty array of stream names");
      }
      return { type: "block", streams: o.streams as string[], ...users };
    }
    case "webhook": {
      unknownFields(o, new Set(["type", "url"]), path);
      const url = str(o, "url", path, true) as string;
      let ok = false;
      try {
        const u = new URL(url);
        ok = u.protocol === "http:" || u.protocol === "https:";
      } catch {
        ok = false;
      }
      if (!ok) bad(`${path}/url`, "must be an http(s) URL");
      return { type: "webhook", url };
    }
    default:
      return bad(`${path}/type`, "must be alert, block or webhook");
  }
}

/** Validates a rule as posted; the result is the normalised spec that is stored. */
export function validateRuleSpec(input: unknown): RuleSpec {
  if (!isObject(input)) bad("/", "a rule must be a JSON object");
  const o = input as Record<string, unknown>;
  unknownFields(o, RULE_FIELDS, "");
  const name = str(o, "name", "", true) as string;
  if (name.length > 200) bad("/name", "must be at most 200 characters");
  const stream = str(o, "stream", "", true) as string;
  const out: { -readonly [K in keyof RuleSpec]: RuleSpec[K] } = { name, stream, pattern: [] };
  const key = str(o, "key", "");
  if (key !== undefined) out.key = key;
  if (!Array.isArray(o.pattern) || o.pattern.length === 0) bad("/pattern", "must be a non-empty array of steps");
  if ((o.pattern as unknown[]).length > 32) bad("/pattern", "at most 32 steps");
  out.pattern = (o.pattern as unknown[]).map(step);
  const within = duration(o, "within", "", false);
  if (within !== undefined) out.within = within;
  const lateness = duration(o, "lateness", "", true);
  if (lateness !== undefined) out.lateness = lateness;
  const skip = str(o, "skip", "");
  if (skip !== undefined) {
    if (!/^(no_skip|to_next|past_last_event|to_first:.+|to_last:.+)$/.test(skip)) {
      bad("/skip", "must be no_skip, to_next, past_last_event, to_first:<step> or to_last:<step>");
    }
    out.skip = skip;
  }
  if (o.onTimeout !== undefined) {
    if (o.onTimeout !== "alert" && o.onTimeout !== "ignore") bad("/onTimeout", "must be alert or ignore");
    out.onTimeout = o.onTimeout as "alert" | "ignore";
  }
  if (o.actions !== undefined) {
    if (!Array.isArray(o.actions)) bad("/actions", "must be an array");
    out.actions = (o.actions as unknown[]).map(action);
  }
  const enabled = bool(o, "enabled", "");
  if (enabled !== undefined) out.enabled = enabled;
  return out;
}
