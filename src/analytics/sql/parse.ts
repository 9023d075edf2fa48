/**
 * DuckDB's own parser, for the query check: `json_serialize_sql` on a private in-memory instance
 * that holds no data and can reach nothing (external access off, no extension loading, settings
 * locked). The caller's SQL is only ever a bound parameter here, never executed, so the check
 * reads every literal, comment and escape exactly as the engine that runs the query will.
 */
import { DuckDBInstance } from "@duckdb/node-api";
import { RunnelError } from "../../core/errors.js";

/** DuckDB's serialized parse tree, as JSON. */
export type ParseNode = { readonly [key: string]: unknown };

/**
 * DuckDB's answers by the text asked, least recently used dropped first once they hold more than
 * `maxChars`. A round trip to the parser costs about a millisecond, several under load, and every
 * query pays one to two of them (the check, the time bounds), while dashboards and clients
 * send the same few texts again and again. Texts are cached, not trees, so no caller can change
 * another's tree.
 */
class TextCache {
  private readonly entries = new Map<string, string>();
  private chars = 0;

  constructor(private readonly maxChars: number) {}

  async get(key: string, compute: () => Promise<string>): Promise<string> {
    const known = this.entries.get(key);
    if (known !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, known);
      return known;
    }
    const value = await compute();
    const size = key.length + value.length;
    if (size > this.maxChars / 16) return value;
    this.entries.set(key, value);
    this.chars += size;
    for (const [k, v] of this.entries) {
      if (this.chars <= this.maxChars) break;
      this.entries.delete(k);
      this.chars -= k.length + v.length;
    }
    return value;
  }
}

/** About 16 MiB of UTF-16 text each. */
const parsed = new TextCache(8 * 1024 * 1024);
const rendered = new TextCache(8 * 1024 * 1024);

let parser: Promise<DuckDBInstance> | undefined;

function parserInstance(): Promise<DuckDBInstance> {
  parser ??= (async () => {
    const instance = await DuckDBInstance.create(":memory:", {
      enable_external_access: "false",
      autoload_known_extensions: "false",
      autoinstall_known_extensions: "false",
      allow_community_extensions: "false",
      threads: "1",
    });
    const c = await instance.connect();
    try {
      await c.run("SET lock_configuration = true");
    } finally {
      c.closeSync();
    }
    return instance;
  })();
  return parser;
}

/** `SELECT 0` as DuckDB serializes it: the frame renderExpression() puts one expression in. */
let selectFrame: Promise<{ readonly [key: string]: unknown }> | undefined;

/**
 * One parsed expression as SQL text, DuckDB's own rendering of it (`json_deserialize_sql`), for a
 * node taken from a tree parseSelects() returned.
 */
export async function renderExpression(expression: ParseNode): Promise<string> {
  selectFrame ??= (async () => {
    const connection = await (await parserInstance()).connect();
    try {
      const reader = await connection.runAndReadAll("SELECT json_serialize_sql('SELECT 0')");
      return JSON.parse(String(reader.getRowsJS()[0]?.[0])) as { readonly [key: string]: unknown };
    } finally {
      connection.closeSync();
    }
  })();
  const frame = structuredClone(await selectFrame) as { statements: { node: { select_list: unknown[] } }[] };
  const node = frame.statements[0]?.node;
  if (node === undefined) throw new RunnelError("internal", "DuckDB serialized SELECT 0 as no statement");
  node.select_list = [expression];
  const sql = await deserialize(frame);
  if (!sql.startsWith("SELECT ")) throw new RunnelError("internal", `DuckDB rendered an expression as ${sql}`);
  return sql.slice("SELECT ".length);
}

/**
 * A whole SELECT as SQL text, DuckDB's own rendering of a tree (`json_deserialize_sql`), for a
 * statement built from or changed after parseSelects(). `parameters` lists the numbered
 * parameters (`$1`, `$2`, …) the tree uses.
 */
export async function renderSelect(statement: ParseNode, parameters = 0): Promise<string> {
  const frame = {
    error: false,
    statements: [
      {
        node: statement,
        named_param_map: Array.from({ length: parameters }, (_, i) => ({ key: String(i + 1), value: i + 1 })),
      },
    ],
  };
  return deserialize(frame);
}

/** DuckDB's SQL text for a json_serialize_sql document. */
function deserialize(document: object): Promise<string> {
  // JSON.parse read the tree's unsigned 64-bit positions as doubles, which DuckDB refuses;
  // they only point into the text, so any valid one will do.
  const json = JSON.stringify(document, (key, value) => (key === "query_location" ? 0 : value));
  return rendered.get(json, async () => {
    const connection = await (await parserInstance()).connect();
    try {
      const reader = await connection.runAndReadAll("SELECT json_deserialize_sql($1::JSON)", [json]);
      return String(reader.getRowsJS()[0]?.[0]);
    } finally {
      connection.closeSync();
    }
  });
}

/**
 * The statements of `sql` as DuckDB parses them. A syntax error is `invalid_query` (400); a
 * statement that is not a SELECT (DuckDB serializes SELECTs only) is `query_forbidden` (403).
 */
export async function parseSelects(sql: string): Promise<ParseNode[]> {
  const text = await parsed.get(sql, async () => {
    // One connection per call: a DuckDB connection runs one query at a time.
    const connection = await (await parserInstance()).connect();
    try {
      const reader = await connection.runAndReadAll("SELECT json_serialize_sql($1::VARCHAR)", [sql]);
      return String(reader.getRowsJS()[0]?.[0]);
    } finally {
      connection.closeSync();
    }
  });
  const result = JSON.parse(text) as {
    error: boolean;
    error_type?: string;
    error_message?: string;
    statements?: { node: ParseNode }[];
  };
  if (result.error) {
    const message = result.error_message ?? "unknown error";
    if (result.error_type === "parser") {
      throw new RunnelError("invalid_query", `could not parse the query: ${message}`);
    }
    throw new RunnelError("query_forbidden", "only SELECT is allowed");
  }
  return (result.statements ?? []).map((s) => s.node);
}
