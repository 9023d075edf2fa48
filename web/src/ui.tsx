/** Small pieces every page uses: errors in the API's words, the "not available" state, tables. */
import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError } from "./api";

export function ErrorBox({ error }: { error: unknown }) {
  if (error === undefined || error === null) return null;
  if (error instanceof ApiError && error.unavailable) {
    return (
      <p class="notice" data-testid="not-available">
        Not available: this server does not offer this feature yet ({error.message}).
      </p>
    );
  }
  if (error instanceof ApiError) {
    return (
      <p class="error" role="alert" data-testid="error">
        {error.message} <span class="muted">({error.code})</span>
      </p>
    );
  }
  return (
    <p class="error" role="alert" data-testid="error">
      {error instanceof Error ? error.message : String(error)}
    </p>
  );
}

/** Loads `load()` once (and again when `deps` change); `reload` refreshes. */
export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[] = []) {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    load().then(
      (d) => {
        if (!live) return;
        setData(d);
        setError(undefined);
      },
      (e: unknown) => {
        if (live) setError(e);
      },
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return { data, error, reload: () => setTick((t) => t + 1) };
}

/**
 * Runs a change (a button's request) and then `reload`; its failure is kept for an ErrorBox
 * instead of escaping the click handler.
 */
export function useAction(reload: () => void) {
  const [error, setError] = useState<unknown>(undefined);
  const act = async (f: () => Promise<unknown>) => {
    try {
      setError(undefined);
      await f();
      reload();
    } catch (e) {
      setError(e);
    }
  };
  return { error, act };
}

export function Table({
  head,
  rows,
  testId,
}: {
  head: readonly string[];
  rows: ReadonlyArray<ReadonlyArray<ComponentChildren>>;
  testId?: string;
}) {
  return (
    <div class="table-wrap">
      <table data-testid={testId}>
        <thead>
          <tr>
            {head.map((h) => (
              <th key={h}>{h}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.length === 0 ? (
            <tr>
              <td colSpan={head.length} class="muted">
                Nothing yet.
              </td>
            </tr>
          ) : (
            rows.map((r, i) => (
              <tr key={i}>
                {r.map((c, j) => (
                  <td key={j}>{c}</td>
                ))}
              </tr>
            ))
          )}
        </tbody>
      </table>
    </div>
  );
}

export function cell(v: unknown): string {
  if (v === null || v === undefined) return "∅";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export function when(iso: string | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** Runs `fn` now and every `ms` while mounted. */
export function useInterval(fn: () => void, ms: number, deps: readonly unknown[] = []): void {
  useEffect(() => {
    fn();
    const id = setInterval(fn, ms);
    return () => clearInterval(id);
  }, deps);
}
