/**
 * `runnel import <stream> <file>`: backfill into a stream's archive (docs/storage.md, "Importing
 * history"). Uploads the file to POST /api/v1/streams/:name/imports, then follows the job at its
 * status resource, showing rows, rows/s, files and bytes written on stderr until it ends. Exit 0
 * when done; one line and exit 1 when refused or failed (chunks before a bad row stay committed,
 * and the line says how to continue).
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { Readable } from "node:stream";
import type { ImportProgress } from "../archive/import/importer.js";
import { formatOfName, IMPORT_FORMATS, isImportFormat } from "../archive/import/sources.js";
import type { Command, Flags } from "./args.js";
import { CLIENT_FLAGS, describeFailure, type Endpoint, endpointFrom, headersFor, request } from "./client.js";
import { CliError, UsageError } from "./errors.js";

const FLAGS = {
  ...CLIENT_FLAGS,
  id: { value: "ID", help: "names the import; re-running one id continues it (default: a new id)" },
  format: { value: "FORMAT", help: `${IMPORT_FORMATS.join(", ")} (default: from the file's extension)` },
  "user-column": { value: "COLUMN", help: "the column holding each event's user (default user_id)" },
  user: { value: "USER", help: "one user for every event instead of a column" },
} as const satisfies Flags;

export const importCommand: Command<typeof FLAGS> = {
  name: "import",
  operands: ["<stream>", "<FILE>"],
  flags: FLAGS,
  summary: "load historical NDJSON, CSV or Parquet into a stream's archive (admin)",
  details: `Every event is checked as ingest checks it (schema, user_id, event time, column types) and
needs its timestamp field. The file is cut into chunks committed one at a time; a chunk is never
committed twice, so after a crash or a refused row, running the same --id again continues where
the import stopped. Progress goes to stderr; the final status (JSON) to stdout.`,
  async run({ flags, operands }) {
    const file = operands[1]!;
    const format = flags.format ?? formatOfName(file);
    if (format === undefined) {
      throw new UsageError(`--format is needed: the name ${file} does not say (.ndjson, .jsonl, .csv, .parquet)`);
    }
    if (!isImportFormat(format))
      throw new UsageError(`--format must be one of ${IMPORT_FORMATS.join(", ")}, got "${format}"`);
    if (flags.user !== undefined && flags["user-column"] !== undefined) {
      throw new UsageError("give --user or --user-column, not both");
    }
    const final = await importFile({
      endpoint: endpointFrom(flags, process.env),
      stream: operands[0]!,
      file,
      format,
      ...(flags.id !== undefined && { id: flags.id }),
      ...(flags.user !== undefined && { user: flags.user }),
      ...(flags["user-column"] !== undefined && { userColumn: flags["user-column"] }),
      progress: process.stderr,
    });
    process.stdout.write(`${JSON.stringify(final)}\n`);
    return 0;
  },
};

export interface ImportFileOptions {
  readonly endpoint: Endpoint;
  readonly stream: string;
  readonly file: string;
  readonly format: string;
  readonly id?: string;
  readonly user?: string;
  readonly userColumn?: string;
  readonly progress?: NodeJS.WriteStream;
  /** How often the status is read; default 500 ms. */
  readonly pollMs?: number;
}

export async function importFile(options: ImportFileOptions): Promise<ImportProgress> {
  const { endpoint, file } = options;
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (e) {
    throw new CliError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const query = new URLSearchParams({ format: options.format });
  if (options.id !== undefined) query.set("id", options.id);
  if (options.user !== undefined) query.set("user", options.user);
  if (options.userColumn !== undefined) query.set("userColumn", options.userColumn);
  const base = `${endpoint.url}/api/v1/streams/${encodeURIComponent(options.stream)}/imports`;
  const line = new ProgressLine(options.progress);
  line.show(`uploading ${formatBytes(size)}`);
  const res = await request(`${base}?${query}`, {
    method: "POST",
    headers: headersFor(endpoint, { "content-type": "application/octet-stream", "content-length": String(size) }),
    body: Readable.toWeb(createReadStream(file)) as ReadableStream,
    duplex: "half",
  } as RequestInit);
  if (res.status !== 202) {
    line.end();
    throw new CliError(await describeFailure(res));
  }
  let status = (await res.json()) as ImportProgress;
  const started = Date.now();
  const statusUrl = `${base}/${encodeURIComponent(status.id)}`;
  while (status.state === "running") {
    line.show(describe(status, Date.now() - started));
    await new Promise((r) => setTimeout(r, options.pollMs ?? 500));
    const next = await request(statusUrl, { headers: headersFor(endpoint) });
    if (next.status !== 200) {
      line.end();
      throw new CliError(`following import ${status.id}: ${await describeFailure(next)}`);
    }
    status = (await next.json()) as ImportProgress;
  }
  line.show(describe(status, Date.now() - started));
  line.end();
  if (status.state !== "done") {
    throw new CliError(`import ${status.id} ${status.state}: ${status.error?.message ?? "no reason given"}`);
  }
  return status;
}

/** `import jan: 1,200,000 rows (85,000 rows/s), 12 files, 34.5 MB written`. */
function describe(p: ImportProgress, elapsedMs: number): string {
  const rate = elapsedMs > 0 ? Math.round((p.rowsRead * 1000) / elapsedMs) : 0;
  const skipped = p.rowsSkipped > 0 ? `, ${p.rowsSkipped.toLocaleString("en")} committed before` : "";
  return (
    `import ${p.id}: ${p.rowsImported.toLocaleString("en")} rows imported of ${p.rowsRead.toLocaleString("en")} read ` +
    `(${rate.toLocaleString("en")} rows/s)${skipped}, ${p.files} files, ${formatBytes(p.bytes)} written`
  );
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** One line rewritten in place on a terminal; elsewhere a line whenever it changes, at most once a second. */
class ProgressLine {
  private last = "";
  private lastAt = 0;

  constructor(private readonly out: NodeJS.WriteStream | undefined) {}

  show(text: string): void {
    const out = this.out;
    if (out === undefined || text === this.last) return;
    if (out.isTTY) {
      out.write(`\r${text}\u001b[K`);
    } else {
      if (Date.now() - this.lastAt < 1000 && this.last !== "") {
        this.pending = text;
        return;
      }
      out.write(`${text}\n`);
      this.lastAt = Date.now();
    }
    this.last = text;
    this.pending = undefined;
  }

  private pending: string | undefined;

  end(): void {
    const out = this.out;
    if (out === undefined) return;
    if (out.isTTY) {
      if (this.last !== "") out.write("\n");
    } else if (this.pending !== undefined) {
      out.write(`${this.pending}\n`);
    }
  }
}
