/**
 * Streams: each stream with its ingest rate and bytes (GET /stats, admin and analyst), the events
 * the caller can see (a scoped count query; "log only" for a stream kept out of the analytics
 * store, which has nothing to count), each stream's rollups with their ratio (admin and analyst),
 * and a live tail (SSE, scoped) that can be paused.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { get, hasRole, ident, query, sse } from "../api";
import { formatBytes, rate } from "../live";
import { navigate } from "../router";
import { useStats } from "../sampler";
import type { Rollup, Stream } from "../types";
import { ErrorBox, Table, useInterval, useLoad } from "../ui";

export function StreamsPage({ tail }: { tail?: string }) {
  const streams = useLoad(() => get<{ streams: Stream[] }>("/streams"));
  const list = streams.data?.streams ?? [];
  return (
    <section>
      <h1>Streams</h1>
      <ErrorBox error={streams.error} />
      {hasRole("admin", "analyst") ? <StaffTable streams={list} /> : <CountTable streams={list} />}
      {hasRole("admin", "analyst") ? <RollupTable streams={list} /> : null}
      {tail !== undefined ? <Tail key={tail} stream={tail} /> : <p class="muted">Pick a stream to tail it live.</p>}
    </section>
  );
}

const LOG_ONLY = "log only";

/** Events per stream the caller can see: a count query per stream in the analytics store. */
function useCounts(streams: readonly Stream[]): Map<string, number | typeof LOG_ONLY> {
  const [counts, setCounts] = useState(new Map<string, number | typeof LOG_ONLY>());
  useInterval(
    () => {
      Promise.all(
        streams.map(async (s): Promise<[string, number | typeof LOG_ONLY]> => {
          if (s.analytics === false) return [s.name, LOG_ONLY];
          const res = await query(`SELECT count(*) FROM ${ident(s.name)}`).catch(() => undefined);
          return [s.name, Number(res?.rows[0]?.[0] ?? Number.NaN)];
        }),
      ).then((pairs) => setCounts(new Map(pairs)));
    },
    5000,
    [streams.map((s) => s.name).join(",")],
  );
  return counts;
}

function tailLink(name: string) {
  return (
    <a href={`/streams/${encodeURIComponent(name)}`} data-testid={`tail-${name}`}>
      {name}
    </a>
  );
}

function StaffTable({ streams }: { streams: readonly Stream[] }) {
  const { readings } = useStats();
  const counts = useCounts(streams);
  const cur = readings[readings.length - 1];
  const prev = readings[readings.length - 2];
  const seconds = cur && prev ? (cur.at - prev.at) / 1000 : 0;
  return (
    <Table
      testId="streams"
      head={[
        "Stream",
        "Partitions",
        "Events/s",
        "Events",
        "Ingested since start",
        "Analytics lag",
        "Dead letters",
        "From pipeline",
      ]}
      rows={streams.map((s) => {
        const c = cur?.streams[s.name];
        return [
          tailLink(s.name),
          s.partitions,
          c && prev ? rate(prev.streams[s.name]?.events, c.events, seconds).toFixed(1) : "0.0",
          counts.get(s.name) ?? "…",
          c ? formatBytes(c.bytes) : "0 B",
          s.analytics === false ? LOG_ONLY : (c?.analyticsLag ?? 0),
          // Records of this stream that a consumer could never process (in <stream>_dead_letter).
          c?.deadLetters ? <span class="error-text">{c.deadLetters}</span> : 0,
          s.derivedFrom ?? "",
        ];
      })}
    />
  );
}

function CountTable({ streams }: { streams: readonly Stream[] }) {
  const counts = useCounts(streams);
  return (
    <Table
      testId="streams"
      head={["Stream", "Partitions", "Your events"]}
      rows={streams.map((s) => [tailLink(s.name), s.partitions, counts.get(s.name) ?? "…"])}
    />
  );
}

/**
 * Every rollup of every stream: its declaration and its ratio (events taken in, rows kept), which
 * only GET /streams/{name} reports, so it is read per stream that has rollups.
 */
function RollupTable({ streams }: { streams: readonly Stream[] }) {
  const [rollups, setRollups] = useState<readonly (Rollup & { stream: string })[]>([]);
  const [error, setError] = useState<unknown>(undefined);
  const withRollups = streams.filter((s) => (s.rollups?.length ?? 0) > 0).map((s) => s.name);
  useInterval(
    () => {
      Promise.all(withRollups.map((name) => get<Stream>(`/streams/${encodeURIComponent(name)}`))).then((described) => {
        setRollups(described.flatMap((s) => (s.rollups ?? []).map((r) => ({ ...r, stream: s.name }))));
        setError(undefined);
      }, setError);
    },
    5000,
    [withRollups.join(",")],
  );
  if (withRollups.length === 0) return null;
  return (
    <div>
      <h2>Rollups</h2>
      <p class="muted">Tables of pre-aggregated rows kept as events load (docs/rollups.md), queried by name.</p>
      <ErrorBox error={error} />
      <Table
        testId="rollups"
        head={["Rollup", "Stream", "Granularity", "Dimensions", "Metrics", "Events in", "Rows kept", "Ratio"]}
        rows={rollups.map((r) => [
          r.state === undefined || r.state === "ready" ? r.name : `${r.name} (${r.state})`,
          r.stream,
          r.granularity,
          r.dimensions.join(", "),
          Object.entries(r.metrics)
            .map(([name, metric]) => `${name} = ${metric}`)
            .join(", "),
          r.rowsIn ?? "…",
          r.rowsKept ?? "…",
          ratio(r.rowsIn, r.rowsKept),
        ])}
      />
    </div>
  );
}

/** Events per row kept, `12.5 : 1`; a rollup that kept nothing yet has no ratio. */
function ratio(rowsIn: number | undefined, rowsKept: number | undefined): string {
  if (rowsIn === undefined || rowsKept === undefined || rowsKept === 0) return "–";
  return `${(rowsIn / rowsKept).toFixed(1)} : 1`;
}

const MAX_LINES = 200;

function Tail({ stream }: { stream: string }) {
  const [lines, setLines] = useState<string[]>([]);
  const [paused, setPaused] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [state, setState] = useState("connecting");
  const pending = useRef<string[]>([]);
  const [held, setHeld] = useState(0);
  const pausedRef = useRef(false);
  pausedRef.current = paused;

  useEffect(() => {
    const controller = new AbortController();
    setState("connecting");
    sse(`/streams/${encodeURIComponent(stream)}/tail`, controller.signal, (m) => {
      setState("live");
      // While paused, events are kept aside and shown on resume, so none is lost.
      if (pausedRef.current) {
        pending.current.push(m.data);
        setHeld(pending.current.length);
      } else setLines((l) => [m.data, ...l].slice(0, MAX_LINES));
    }).then(
      () => setState(controller.signal.aborted ? "closed" : "ended"),
      (e: unknown) => {
        setError(e);
        setState("failed");
      },
    );
    // The first bytes are a comment: the connection is open even before any event.
    const opened = setTimeout(() => setState((s) => (s === "connecting" ? "live" : s)), 300);
    return () => {
      clearTimeout(opened);
      controller.abort();
    };
  }, [stream]);

  const toggle = () => {
    if (paused) {
      const held = pending.current.reverse();
      pending.current = [];
      setHeld(0);
      setLines((l) => [...held, ...l].slice(0, MAX_LINES));
    }
    setPaused(!paused);
  };

  return (
    <div class="card">
      <h2>
        Live tail of <code>{stream}</code> <span class={`state state-${state}`}>{paused ? "paused" : state}</span>
      </h2>
      <div class="row">
        <button type="button" onClick={toggle} data-testid="tail-pause">
          {paused ? `Resume (${held} held)` : "Pause"}
        </button>
        <button type="button" class="secondary" onClick={() => setLines([])}>
          Clear
        </button>
        <button type="button" class="secondary" onClick={() => navigate("/streams")}>
          Close
        </button>
      </div>
      <ErrorBox error={error} />
      <pre class="tail" data-testid="tail">
        {lines.length === 0 ? "Waiting for events…" : lines.join("\n")}
      </pre>
    </div>
  );
}
