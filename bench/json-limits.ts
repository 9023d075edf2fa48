/**
 * What the JSON shape checks (src/ingest/json-limits.ts: depth, fields per object, duplicate
 * names) cost per event, beside JSON.parse of the same event:
 * - `ndjson*`: the HTTP NDJSON hot path, parseNdjson (checks, and one JSON.parse per body) against
 *   the path before the checks (`perLineNs`: cut at newlines, one JSON.parse per line, as
 *   parseNdjson did until issue 14), in batches of 1000;
 * - `single*`: one text checked and parsed alone (JSON bodies, WebSocket arrays, sources).
 * Events are the ingest benchmark's ~92-byte shape, flat, and a variant with one nested object
 * (the case that walks the parsed value). Timed in CPU time (process.cpuUsage), the best of several interleaved
 * rounds, so other processes on a shared machine move the figures little. Writes
 * bench/results/json-limits.json.
 *
 * Usage: node --import tsx bench/json-limits.ts [--events=200000] [--rounds=7]
 */
import { loadConfig } from "../src/config/config.js";
import { parseNdjson } from "../src/ingest/body.js";
import { checkNoDuplicates, scanShape } from "../src/ingest/json-limits.js";
import { typicalEvent } from "./events.js";
import { linesHash, quickMode, ratio, writeResults } from "./report.js";

const flag = (name: string, fallback: number): number => {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`));
  return arg === undefined ? fallback : Number(arg.slice(name.length + 3));
};
const EVENTS = flag("events", quickMode() ? 50_000 : 200_000);
const ROUNDS = flag("rounds", quickMode() ? 3 : 7);
const BATCH = 1000;
const limits = loadConfig({}, {}).limits.json;

function makeLines(nested: boolean): string[] {
  const lines: string[] = [];
  for (let n = 0; n < EVENTS; n++) {
    lines.push(
      JSON.stringify({
        ...typicalEvent(n),
        ...(nested && { geo: { lat: 52.5 + (n % 100) / 1000, lon: 13.4 } }),
      }),
    );
  }
  return lines;
}

/** CPU ns per event of each of `runs` over every line: the best of ROUNDS, the runs interleaved. */
function nsPerEvent(runs: readonly (() => number)[]): number[] {
  let sink = 0;
  const best = runs.map(() => Number.POSITIVE_INFINITY);
  for (let r = 0; r <= ROUNDS; r++) {
    runs.forEach((run, i) => {
      const start = process.cpuUsage();
      sink += run();
      const used = process.cpuUsage(start);
      if (r > 0) best[i] = Math.min(best[i]!, ((used.user + used.system) * 1000) / EVENTS);
    });
  }
  if (sink === -1) console.log(sink);
  return best;
}

function measure(nested: boolean) {
  const lines = makeLines(nested);
  const bytes = lines.map((l) => Buffer.from(l));
  const bodies: Buffer[] = [];
  for (let i = 0; i < lines.length; i += BATCH) bodies.push(Buffer.from(`${lines.slice(i, i + BATCH).join("\n")}\n`));
  const eventBytes = bytes.reduce((s, b) => s + b.byteLength, 0) / bytes.length;

  const parseOnly = () => {
    let n = 0;
    for (const l of lines) n += (JSON.parse(l) as { amount: number }).amount > 0 ? 1 : 0;
    return n;
  };
  const withChecks = () => {
    let n = 0;
    for (let i = 0; i < lines.length; i++) {
      const b = bytes[i]!;
      const shape = scanShape(b, 0, b.byteLength, limits);
      const value = JSON.parse(lines[i]!) as { amount: number };
      checkNoDuplicates(value, shape, b, 0, b.byteLength);
      n += value.amount > 0 ? 1 : 0;
    }
    return n;
  };
  // parseNdjson before the checks, reproduced: the "before" of the NDJSON figures.
  const perLine = () => {
    let n = 0;
    for (const body of bodies) {
      const text = body.toString("latin1");
      for (let pos = 0; pos < body.byteLength; ) {
        const next = body.indexOf(0x0a, pos);
        const end = next === -1 ? body.byteLength : next;
        if (end > pos) {
          JSON.parse(text.slice(pos, end));
          body.subarray(pos, end);
          n++;
        }
        pos = end + 1;
      }
    }
    return n;
  };
  const ndjson = () => {
    let n = 0;
    for (const body of bodies) n += parseNdjson(body, limits).events.length;
    return n;
  };
  // The checked path must give the events plain JSON.parse gives.
  const viaChecks = bodies.flatMap((b) => parseNdjson(b, limits).events.map((e) => JSON.stringify(e)));
  const plain = lines.map((l) => JSON.stringify(JSON.parse(l)));
  const outputsEqual = viaChecks.length === plain.length && linesHash(viaChecks) === linesHash(plain);
  const [parse, checks, before, after] = nsPerEvent([parseOnly, withChecks, perLine, ndjson]) as number[] as [
    number,
    number,
    number,
    number,
  ];
  const fraction = (ns: number) => Number((ns / parse).toFixed(3));
  return {
    outputsEqual,
    eventBytes: Math.round(eventBytes),
    jsonParseNs: Math.round(parse),
    ndjsonBeforeNs: Math.round(before),
    ndjsonAfterNs: Math.round(after),
    ndjsonAddedNs: Math.round(after - before),
    ndjsonAddedFractionOfJsonParse: fraction(after - before),
    singleWithChecksNs: Math.round(checks),
    singleAddedNs: Math.round(checks - parse),
    singleAddedFractionOfJsonParse: fraction(checks - parse),
  };
}

const results = { flat: measure(false), nested: measure(true) };
console.log(JSON.stringify(results, null, 2));
const row = (shape: "flat" | "nested") => {
  const r = results[shape];
  return {
    measure: `ingest NDJSON parse with the JSON shape checks, ${shape} events`,
    runnel: r.ndjsonAfterNs,
    peer: r.ndjsonBeforeNs,
    peerName: "the same bodies cut at newlines, JSON.parse per line, no checks",
    ratio: ratio(r.ndjsonAfterNs, r.ndjsonBeforeNs),
    unit: "CPU ns/event",
    outputsEqual: r.outputsEqual,
    caveat: `best of ${ROUNDS} interleaved rounds of ${EVENTS.toLocaleString("en")} ~${r.eventBytes}-byte events in batches of ${BATCH}; events hashed on both paths`,
  };
};
await writeResults("json-limits", {
  comparisons: [row("flat"), row("nested")],
  events: EVENTS,
  rounds: ROUNDS,
  ...results,
});
if (!results.flat.outputsEqual || !results.nested.outputsEqual) process.exit(1);
