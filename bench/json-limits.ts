/**
 * What the JSON shape checks (src/ingest/json-limits.ts: depth, fields per object, duplicate
 * names) cost per event on the NDJSON hot path, beside JSON.parse of the same event. Events are
 * the ingest benchmark's ~92-byte shape, flat, and a variant with one nested object (the case that
 * walks the parsed value). Timed in CPU time (process.cpuUsage), the best of several interleaved
 * rounds, so other processes on a shared machine move the figures little. Writes
 * bench/results/json-limits.json.
 *
 * Usage: node --import tsx bench/json-limits.ts [--events=200000] [--rounds=7]
 */
import { writeFile } from "node:fs/promises";
import { loadConfig } from "../src/config/config.js";
import { parseNdjson } from "../src/ingest/body.js";
import { checkNoDuplicates, scanShape } from "../src/ingest/json-limits.js";
import { typicalEvent } from "./events.js";

const flag = (name: string, fallback: number): number => {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`));
  return arg === undefined ? fallback : Number(arg.slice(name.length + 3));
};
const EVENTS = flag("events", 200_000);
const ROUNDS = flag("rounds", 7);
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
      const scanned = scanShape(b, 0, b.byteLength, limits);
      const value = JSON.parse(lines[i]!) as { amount: number };
      checkNoDuplicates(value, scanned, b, 0, b.byteLength);
      n += value.amount > 0 ? 1 : 0;
    }
    return n;
  };
  const ndjson = () => {
    let n = 0;
    for (const body of bodies) n += parseNdjson(body, limits).events.length;
    return n;
  };
  const [parse, checks, whole] = nsPerEvent([parseOnly, withChecks, ndjson]) as [number, number, number];
  return {
    eventBytes: Math.round(eventBytes),
    jsonParseNs: Math.round(parse),
    parseWithChecksNs: Math.round(checks),
    addedNs: Math.round(checks - parse),
    addedFractionOfParse: Number(((checks - parse) / parse).toFixed(3)),
    parseNdjsonNs: Math.round(whole),
  };
}

const results = { flat: measure(false), nested: measure(true) };
console.log(JSON.stringify(results, null, 2));
await writeFile(new URL("results/json-limits.json", import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
