/**
 * Query console: SQL in DuckDB's dialect against the stream tables (POST /query, scoped to the
 * caller). Tables and their columns come from the API too: `SELECT * FROM <stream> LIMIT 0`
 * answers with the columns and their types. Results show as a table, and as a chart when they
 * hold a time column and numbers.
 */
import { useMemo, useState } from "preact/hooks";
import { get, ident, type QueryResult, query } from "../api";
import { Chart } from "../chart";
import type { Stream } from "../types";
import { cell, ErrorBox, Table, useLoad } from "../ui";

const NUMERIC =
  /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|REAL|DECIMAL)/i;
const TIME = /^(TIMESTAMP|DATE)/i;

interface TableInfo {
  readonly name: string;
  readonly columns: ReadonlyArray<{ name: string; type: string }>;
}

export function QueryPage() {
  const tables = useLoad(async () => {
    const { streams } = await get<{ streams: Stream[] }>("/streams");
    return Promise.all(
      streams
        .filter((s) => s.analytics !== false)
        .map(async (s): Promise<TableInfo> => {
          const res = await query(`SELECT * FROM ${ident(s.name)} LIMIT 0`).catch(() => undefined);
          return { name: s.name, columns: res?.columns ?? [] };
        }),
    );
  });
  const first = tables.data?.[0]?.name;
  const [sql, setSql] = useState<string | undefined>(undefined);
  const text = sql ?? (first ? `SELECT * FROM ${first} ORDER BY _time DESC LIMIT 100` : "SELECT 1 AS one");
  const [result, setResult] = useState<QueryResult | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const [ms, setMs] = useState(0);

  const run = async () => {
    setBusy(true);
    setError(undefined);
    const t0 = performance.now();
    try {
      setResult(await query(text));
    } catch (e) {
      setResult(undefined);
      setError(e);
    } finally {
      setMs(performance.now() - t0);
      setBusy(false);
    }
  };

  return (
    <section class="query">
      <h1>Query</h1>
      <div class="split">
        <aside class="tables" data-testid="tables">
          <h2>Tables</h2>
          <ErrorBox error={tables.error} />
          {(tables.data ?? []).map((t) => (
            <details key={t.name}>
              <summary>
                <button type="button" class="link" onClick={() => setSql(`SELECT * FROM ${t.name} LIMIT 100`)}>
                  {t.name}
                </button>
              </summary>
              <ul>
                {t.columns.map((c) => (
                  <li key={c.name}>
                    {c.name} <span class="muted">{c.type}</span>
                  </li>
                ))}
              </ul>
            </details>
          ))}
        </aside>
        <div class="editor">
          <textarea
            aria-label="SQL"
            data-testid="sql"
            spellcheck={false}
            rows={8}
            value={text}
            onInput={(e) => setSql(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
                e.preventDefault();
                void run();
              }
            }}
          />
          <div class="row">
            <button type="button" onClick={() => void run()} disabled={busy} data-testid="run">
              Run (Ctrl+Enter)
            </button>
            {result ? (
              <span class="muted" data-testid="row-count">
                {result.rows.length} rows in {ms.toFixed(0)} ms
              </span>
            ) : null}
          </div>
          <ErrorBox error={error} />
          {result ? <Results result={result} /> : null}
        </div>
      </div>
    </section>
  );
}

function Results({ result }: { result: QueryResult }) {
  const chart = useMemo(() => timeSeries(result), [result]);
  return (
    <>
      {chart ? <Chart title="Time series" testId="result-chart" points {...chart} /> : null}
      <Table
        testId="results"
        head={result.columns.map((c) => `${c.name} ${c.type}`)}
        rows={result.rows.map((r) => r.map(cell))}
      />
    </>
  );
}

/** A chart of the numeric columns over the first time column, when the result has both. */
export function timeSeries(
  result: QueryResult,
): { times: number[]; series: Map<string, Array<number | null>> } | undefined {
  const t = result.columns.findIndex((c) => TIME.test(c.type));
  const numeric = result.columns
    .map((c, i) => [c, i] as const)
    .filter(([c, i]) => i !== t && NUMERIC.test(c.type) && !c.name.startsWith("_"));
  if (t < 0 || numeric.length === 0 || result.rows.length < 2) return undefined;
  const rows = result.rows
    .map((r) => [Date.parse(String(r[t])) / 1000, r] as const)
    .filter(([x]) => Number.isFinite(x))
    .sort((a, b) => a[0] - b[0]);
  const series = new Map<string, Array<number | null>>();
  for (const [c, i] of numeric) {
    series.set(
      c.name,
      rows.map(([, r]) => {
        const v = Number(r[i]);
        return r[i] === null || Number.isNaN(v) ? null : v;
      }),
    );
  }
  return { times: rows.map(([x]) => x), series };
}
