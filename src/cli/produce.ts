/**
 * `runnel produce <stream> [file|-]`: sends NDJSON (or one JSON array) to the ingest endpoint in
 * batches. Each batch carries its own Idempotency-Key, so a batch retried after a 429, a 503 or a
 * dropped connection is appended once. Shows a progress bar with events/s on a terminal when
 * reading a file; quiet otherwise.
 */
import { randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { JsonShapeError, parseShaped } from "../ingest/json-limits.js";
import type { Command, Flags } from "./args.js";
import { CLIENT_FLAGS, describeFailure, type Endpoint, endpointFrom, headersFor, request } from "./client.js";
import { CliError, UsageError } from "./errors.js";

const FLAGS = {
  ...CLIENT_FLAGS,
  "batch-size": { value: "N", help: "events per request, 1 to 100000 (default 1000)" },
} as const satisfies Flags;

export const produceCommand: Command<typeof FLAGS> = {
  name: "produce",
  operands: ["<stream>", "[FILE|-]"],
  flags: FLAGS,
  summary: "send NDJSON or one JSON array of events to a stream, in batches",
  details: `Reads FILE, or stdin when FILE is - or absent. Each batch carries its own Idempotency-Key, so a
batch retried after a 429, a 503 or a dropped connection is appended once; a refused batch stops
the run (earlier batches stay appended). A progress bar shows on a terminal when reading a file.`,
  async run({ flags, operands }) {
    const batchSize = Number(flags["batch-size"] ?? "1000");
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 100_000) {
      throw new UsageError(`--batch-size must be an integer from 1 to 100000, got "${flags["batch-size"]}"`);
    }
    await produce({
      endpoint: endpointFrom(flags, process.env),
      stream: operands[0]!,
      input: operands[1] ?? "-",
      batchSize,
      stdin: process.stdin,
      ...(process.stderr.isTTY && { progress: process.stderr }),
    });
    return 0;
  },
};

export interface ProduceOptions {
  readonly endpoint: Endpoint;
  readonly stream: string;
  /** A path, or "-" for stdin. */
  readonly input: string;
  readonly batchSize: number;
  readonly stdin: Readable;
  /** Where the progress bar goes; undefined for none. */
  readonly progress?: NodeJS.WriteStream;
}

const MAX_ATTEMPTS = 8;
/** The largest limits RUNNEL_MAX_JSON_DEPTH and RUNNEL_MAX_JSON_FIELDS accept; the server applies its own. */
const LOOSEST_LIMITS = { maxDepth: 1000, maxFields: 100_000 };

export async function produce(options: ProduceOptions): Promise<number> {
  const { input } = options;
  let total: number | undefined;
  let source: Readable;
  if (input === "-") {
    source = options.stdin;
  } else {
    try {
      total = (await stat(input)).size;
    } catch (e) {
      throw new CliError(`cannot read ${input}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    source = createReadStream(input);
  }
  const bar = options.progress && total !== undefined ? new ProgressBar(options.progress, total) : undefined;
  let sent = 0;
  let bytes = 0;
  let batch: string[] = [];
  let batchBytes = 0;
  let firstLine = 1;
  let lineNo = 0;
  let arrayText: string[] | undefined;

  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    await sendBatch(options, `${batch.join("\n")}\n`, firstLine);
    sent += batch.length;
    bytes += batchBytes;
    bar?.update(bytes, sent);
    batch = [];
    batchBytes = 0;
    firstLine = lineNo + 1;
  };

  const lines = createInterface({ input: source, crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    lineNo++;
    if (arrayText !== undefined) {
      arrayText.push(line);
      continue;
    }
    const trimmed = line.trim();
    if (trimmed === "") {
      batchBytes += line.length + 1;
      continue;
    }
    // A JSON array (the whole input) is read in full and sent in batches of its elements.
    if (sent === 0 && batch.length === 0 && trimmed.startsWith("[")) {
      arrayText = [line];
      continue;
    }
    batch.push(trimmed);
    batchBytes += Buffer.byteLength(line) + 1;
    if (batch.length >= options.batchSize) await flush();
  }
  if (arrayText !== undefined) {
    const name = input === "-" ? "stdin" : input;
    const text = arrayText.join("\n");
    const bytes = Buffer.from(text);
    let events: unknown;
    try {
      // Elements are sent re-serialised, which would drop a duplicate name and could overflow the
      // stack on deep nesting: check the text's shape first, with the loosest limits a server takes.
      events = parseShaped(bytes, 0, bytes.byteLength, text, LOOSEST_LIMITS, true);
    } catch (e) {
      if (e instanceof JsonShapeError) {
        throw new CliError(`${name}${e.item !== undefined ? `, element ${e.item + 1},` : ""} is refused: ${e.message}`);
      }
      throw new CliError(`${name} is not valid JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(events)) throw new CliError("expected NDJSON or one JSON array of events");
    const size = arrayText.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
    for (let i = 0; i < events.length; i += options.batchSize) {
      const chunk = events.slice(i, i + options.batchSize);
      await sendBatch(options, `${chunk.map((e) => JSON.stringify(e)).join("\n")}\n`, i + 1, "element");
      sent += chunk.length;
      bar?.update(Math.round((size * (i + chunk.length)) / events.length), sent);
    }
  } else {
    await flush();
  }
  bar?.done(sent);
  return sent;
}

async function sendBatch(options: ProduceOptions, body: string, first: number, unit = "line"): Promise<void> {
  const key = randomUUID();
  const url = `${options.endpoint.url}/api/v1/streams/${encodeURIComponent(options.stream)}/events`;
  for (let attempt = 1; ; attempt++) {
    let res: Response;
    try {
      res = await request(url, {
        method: "POST",
        headers: headersFor(options.endpoint, { "content-type": "application/x-ndjson", "idempotency-key": key }),
        body,
      });
    } catch (e) {
      if (attempt >= MAX_ATTEMPTS) throw e;
      await sleep(backoff(attempt));
      continue;
    }
    if (res.ok) {
      await res.arrayBuffer();
      return;
    }
    if ((res.status === 429 || res.status === 503) && attempt < MAX_ATTEMPTS) {
      const retryAfter = Number(res.headers.get("retry-after"));
      await res.arrayBuffer();
      await sleep(Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : backoff(attempt));
      continue;
    }
    const reason = await describeFailure(res);
    throw new CliError(`batch starting at ${unit} ${first} refused: ${reason}; earlier batches were appended`);
  }
}

function backoff(attempt: number): number {
  return Math.min(10_000, 200 * 2 ** attempt);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

class ProgressBar {
  private readonly started = Date.now();
  private last = 0;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly total: number,
  ) {}

  update(bytes: number, events: number): void {
    const now = Date.now();
    if (now - this.last < 100) return;
    this.last = now;
    const fraction = this.total === 0 ? 1 : Math.min(1, bytes / this.total);
    const width = 30;
    const filled = Math.round(fraction * width);
    const rate = events / Math.max(0.001, (now - this.started) / 1000);
    this.out.write(
      `\r[${"=".repeat(filled)}${" ".repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%  ${events.toLocaleString("en")} events  ${Math.round(rate).toLocaleString("en")} events/s `,
    );
  }

  done(events: number): void {
    const secs = (Date.now() - this.started) / 1000;
    this.last = 0;
    this.update(this.total, events);
    this.out.write(`\nproduced ${events.toLocaleString("en")} events in ${secs.toFixed(1)} s\n`);
  }
}
