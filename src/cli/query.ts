/** `runnel query "<sql>"`: a table on a terminal, NDJSON or CSV with --format. */
import type { Command, Flags } from "./args.js";
import { CLIENT_FLAGS, describeFailure, type Endpoint, endpointFrom, headersFor, request } from "./client.js";
import { CliError, UsageError } from "./errors.js";

const FLAGS = {
  ...CLIENT_FLAGS,
  format: { value: "FORMAT", help: "table, ndjson or csv (default: table on a terminal, ndjson otherwise)" },
} as const satisfies Flags;

export const queryCommand: Command<typeof FLAGS> = {
  name: "query",
  operands: ['"<sql>"'],
  flags: FLAGS,
  summary: "run one SQL query and print its rows as a table, NDJSON or CSV",
  async run({ flags, operands }) {
    const format = parseFormat(flags.format, process.stdout.isTTY === true);
    process.stdout.write(await query(endpointFrom(flags, process.env), operands[0]!, format));
    return 0;
  },
};

export type QueryFormat = "table" | "ndjson" | "csv";

interface Answer {
  readonly columns: { name: string; type: string }[];
  readonly rows: unknown[][];
}

export async function query(endpoint: Endpoint, sql: string, format: QueryFormat): Promise<string> {
  const res = await request(`${endpoint.url}/api/v1/query`, {
    method: "POST",
    headers: headersFor(endpoint, { "content-type": "application/json" }),
    body: JSON.stringify({ sql }),
  });
  if (!res.ok) throw new CliError(await describeFailure(res));
  const answer = (await res.json()) as Answer;
  switch (format) {
    case "ndjson":
      return answer.rows
        .map((row) => `${JSON.stringify(Object.fromEntries(answer.columns.map((c, i) => [c.name, row[i]])))}\n`)
        .join("");
    case "csv":
      return [answer.columns.map((c) => csvCell(c.name)), ...answer.rows.map((r) => r.map(csvCell))]
        .map((cells) => `${cells.join(",")}\r\n`)
        .join("");
    case "table":
      return table(answer);
  }
}

/** RFC 4180: quote when needed, double the quotes; null is an empty cell. */
function csvCell(value: unknown): string {
  if (value === null || value === undefined) return "";
  const text = typeof value === "object" ? JSON.stringify(value) : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function cellText(value: unknown): string {
  if (value === null || value === undefined) return "NULL";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function table(answer: Answer): string {
  const head = answer.columns.map((c) => c.name);
  const body = answer.rows.map((r) => r.map(cellText));
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const numeric = answer.columns.map((c) => /INT|DOUBLE|FLOAT|DECIMAL|REAL|NUMERIC/i.test(c.type));
  const line = (cells: string[]) =>
    `${cells.map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(" │ ")}\n`;
  const rule = `${widths.map((w) => "─".repeat(w)).join("─┼─")}\n`;
  const n = answer.rows.length;
  return `${line(head)}${rule}${body.map(line).join("")}(${n} row${n === 1 ? "" : "s"})\n`;
}

export function parseFormat(text: string | undefined, tty: boolean): QueryFormat {
  if (text === undefined) return tty ? "table" : "ndjson";
  if (text === "table" || text === "ndjson" || text === "csv") return text;
  throw new UsageError(`--format must be table, ndjson or csv, got "${text}"`);
}
