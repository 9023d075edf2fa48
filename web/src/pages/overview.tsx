/**
 * Overview: live charts (one point a second) of ingest rate per stream, consumer lag, alert rate
 * and p99 latencies from GET /stats (admin, analyst), each stream's archive (files, size, rows,
 * lag, compactions, failures, imported rows), the installation's instances (admin), and the
 * state of every source, pipeline and rule. A `user` gets the rate of their own events per stream, from scoped queries.
 */
import { useMemo, useRef, useState } from "preact/hooks";
import { get, hasRole, ident, query } from "../api";
import { Chart } from "../chart";
import { formatBytes, formatSeconds, quantile, Ring, rate } from "../live";
import { useStats } from "../sampler";
import type { ClusterStatus, Pipeline, Rule, Source, Stats, Stream } from "../types";
import { ErrorBox, Table, useInterval, useLoad, when } from "../ui";

export function OverviewPage() {
  return hasRole("admin", "analyst") ? <StaffOverview /> : <UserOverview />;
}

interface Series {
  times: number[];
  series: Map<string, Array<number | null>>;
}

/** Builds chart series from consecutive readings: `pick` maps (previous, current, seconds) to named values. */
function derive(
  readings: readonly Stats[],
  pick: (prev: Stats, cur: Stats, seconds: number, back: Stats) => Map<string, number | null>,
): Series {
  const ring = new Ring(120);
  for (let i = 1; i < readings.length; i++) {
    const prev = readings[i - 1]!;
    const cur = readings[i]!;
    const back = readings[Math.max(0, i - 5)]!;
    ring.push(cur.at / 1000, pick(prev, cur, (cur.at - prev.at) / 1000, back));
  }
  return { times: ring.times, series: ring.series };
}

function StaffOverview() {
  const { readings, error } = useStats();
  const latest = readings[readings.length - 1];

  const ingest = derive(readings, (p, c, s) => {
    const out = new Map<string, number | null>();
    for (const [name, v] of Object.entries(c.streams)) out.set(name, rate(p.streams[name]?.events, v.events, s));
    return out;
  });
  const lag = derive(readings, (_p, c) => {
    const out = new Map<string, number | null>();
    for (const [name, v] of Object.entries(c.pipelines)) out.set(`pipeline ${name}`, v.lag);
    for (const [name, v] of Object.entries(c.streams)) out.set(`analytics ${name}`, v.analyticsLag);
    return out;
  });
  const alerts = derive(readings, (p, c, s) => {
    const out = new Map<string, number | null>();
    for (const [name, v] of Object.entries(c.rules)) out.set(name, rate(p.rules[name]?.alerts, v.alerts, s));
    return out;
  });
  // p99 over the last five seconds: one second holds too few observations to be stable.
  const latency = derive(readings, (_p, c, _s, back) => {
    const out = new Map<string, number | null>();
    for (const key of ["ingest", "logAppend", "query"] as const) {
      const q = quantile(0.99, back === c ? undefined : back.latencies[key], c.latencies[key]);
      out.set(key, q === null ? null : q * 1000);
    }
    return out;
  });

  return (
    <section>
      <h1>Overview</h1>
      <ErrorBox error={error} />
      <div class="grid">
        <Chart title="Ingest rate (events/s) per stream" testId="chart-ingest" {...ingest} unit="" />
        <Chart title="Consumer lag (records behind)" testId="chart-lag" {...lag} />
        <Chart title="Alert rate (alerts/s) per rule" testId="chart-alerts" {...alerts} />
        <Chart title="p99 latency (ms), last 5 s" testId="chart-latency" {...latency} />
      </div>
      {latest ? (
        <p class="muted">
          Log on disk {formatBytes(latest.storage.logBytes)} · free {formatBytes(latest.storage.availableBytes)} ·
          ingest refusals {latest.ingest.refusals} · mean ingest latency{" "}
          {formatSeconds(
            latest.latencies.ingest.count ? latest.latencies.ingest.sum / latest.latencies.ingest.count : null,
          )}
        </p>
      ) : null}
      {latest ? <ArchiveTable stats={latest} /> : null}
      {hasRole("admin") ? <ClusterTable /> : null}
      <StateTables />
    </section>
  );
}

/** `42 s`, `12 min`, `3.5 h`: lag is seconds to days. */
function formatLag(s: number): string {
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** Each stream's archive: what it holds, how far behind the hot window it is, and what went wrong. */
function ArchiveTable({ stats }: { stats: Stats }) {
  const archive = stats.archive;
  if (archive === undefined) return null;
  return (
    <div>
      <h2>Archive</h2>
      <p class="muted">
        Parquet files past each stream's hot window (docs/storage.md); imports running: {archive.importsRunning}
      </p>
      <Table
        testId="archive-state"
        head={["Stream", "Files", "Size", "Rows", "Lag", "Compactions", "Failures", "Imported rows"]}
        rows={Object.entries(archive.streams)
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([name, a]) => [
            name,
            a.files,
            formatBytes(a.bytes),
            a.rows,
            formatLag(a.lag),
            a.compactions,
            a.failures > 0 ? <span class="state state-failed">{a.failures}</span> : 0,
            a.imported,
          ])}
      />
    </div>
  );
}

/** The installation's instances from GET /cluster: where each is, whether it is live, what it owns. */
function ClusterTable() {
  const [tick, setTick] = useState(0);
  useInterval(() => setTick((t) => t + 1), 5000);
  const cluster = useLoad(() => get<ClusterStatus>("/cluster"), [tick]);
  const status = cluster.data;
  return (
    <div>
      <h2>Cluster</h2>
      <ErrorBox error={cluster.error} />
      {status ? (
        <p class="muted">
          Installation {status.installation} ·{" "}
          {status.mode === "cluster"
            ? `${status.instances.filter((i) => i.live).length} live instances sharing ${status.slots} slots`
            : `one instance: ${status.reason ?? "single mode"}`}{" "}
          · last rebalance {status.lastRebalanceAt === null ? "never" : when(status.lastRebalanceAt)}
        </p>
      ) : null}
      <Table
        testId="cluster-state"
        head={["Instance", "URL", "State", "Slots", "Tasks", "Lag", "Last rebalance"]}
        rows={(status?.instances ?? []).map((i) => [
          i.self ? `${i.id} (this one)` : i.id,
          i.url,
          <span class={`state ${i.live ? "state-running" : "state-stopped"}`} title={`last seen ${i.lastSeen}`}>
            {i.live ? "live" : "gone"}
          </span>,
          i.slots.join(", "),
          i.tasks.length,
          i.tasks.reduce((sum, t) => sum + t.lag, 0),
          i.lastRebalanceAt === null ? "" : when(i.lastRebalanceAt),
        ])}
      />
    </div>
  );
}

function StateTables() {
  const [tick, setTick] = useState(0);
  useInterval(() => setTick((t) => t + 1), 5000);
  const sources = useLoad(
    () => (hasRole("admin") ? get<{ sources: Source[] }>("/sources") : Promise.resolve(undefined)),
    [tick],
  );
  const pipelines = useLoad(() => get<{ pipelines: Pipeline[] }>("/pipelines"), [tick]);
  const rules = useLoad(() => get<{ rules: Rule[] }>("/rules"), [tick]);
  return (
    <div class="grid">
      {hasRole("admin") ? (
        <div>
          <h2>Sources</h2>
          <ErrorBox error={sources.error} />
          <Table
            testId="sources"
            head={["Source", "Type", "State", "Accepted", "Dead-lettered", "Backlog", "Since"]}
            rows={(sources.data?.sources ?? []).map((s) => [
              s.name,
              s.type,
              <span class={`state state-${s.state}`} title={s.reason}>
                {s.state}
                {s.reason ? ` — ${s.reason}` : ""}
              </span>,
              s.metrics?.accepted ?? "",
              s.metrics?.deadLettered ?? "",
              s.metrics?.backlog ?? "",
              when(s.since),
            ])}
          />
        </div>
      ) : null}
      <div>
        <h2>Pipelines</h2>
        <ErrorBox error={pipelines.error} />
        <Table
          testId="pipelines-state"
          head={["Pipeline", "Kind", "Input → output", "State"]}
          rows={(pipelines.data?.pipelines ?? []).map((p) => [
            p.name,
            p.kind ?? "",
            `${p.input} → ${p.output}`,
            p.enabled === false ? <span class="state state-stopped">disabled</span> : <PipelineState stats={p.stats} />,
          ])}
        />
      </div>
      <div>
        <h2>Rules</h2>
        <ErrorBox error={rules.error} />
        <Table
          testId="rules-state"
          head={["Rule", "Stream", "Enabled", "State"]}
          rows={(rules.data?.rules ?? []).map((r) => [
            r.name,
            r.stream,
            r.enabled ? "yes" : "no",
            <PipelineState stats={r.stats} />,
          ])}
        />
      </div>
    </div>
  );
}

function PipelineState({ stats }: { stats: Readonly<Record<string, unknown>> | undefined }) {
  if (!stats) return <span class="muted">–</span>;
  const running = stats.running === true || stats.running === 1;
  const error = typeof stats.lastError === "string" ? stats.lastError : undefined;
  const numbers = Object.entries(stats)
    .filter(([, v]) => typeof v === "number")
    .map(([k, v]) => `${k} ${String(v)}`)
    .join(" · ");
  return (
    <span>
      <span class={`state ${running ? "state-running" : "state-stopped"}`}>{running ? "running" : "stopped"}</span>{" "}
      {error ? <span class="error-text">{error}</span> : null} <span class="muted">{numbers}</span>
    </span>
  );
}

/** A user's own events per stream: counts from scoped queries every two seconds, charted as a rate. */
function UserOverview() {
  const streams = useLoad(() => get<{ streams: Stream[] }>("/streams"));
  const ring = useRef(new Ring(120));
  const last = useRef(new Map<string, { n: number; at: number }>());
  const [counts, setCounts] = useState(new Map<string, number>());
  const [error, setError] = useState<unknown>(undefined);
  const names = useMemo(
    () => (streams.data?.streams ?? []).filter((s) => s.analytics !== false).map((s) => s.name),
    [streams.data],
  );

  useInterval(
    () => {
      if (names.length === 0) return;
      Promise.all(
        names.map(
          async (n) => [n, Number((await query(`SELECT count(*) FROM ${ident(n)}`)).rows[0]?.[0] ?? 0)] as const,
        ),
      ).then(
        (pairs) => {
          const now = Date.now();
          const values = new Map<string, number | null>();
          for (const [n, c] of pairs) {
            const before = last.current.get(n);
            values.set(n, before ? rate(before.n, c, (now - before.at) / 1000) : null);
            last.current.set(n, { n: c, at: now });
          }
          ring.current.push(now / 1000, values);
          setCounts(new Map(pairs));
          setError(undefined);
        },
        (e: unknown) => setError(e),
      );
    },
    2000,
    [names.join(",")],
  );

  return (
    <section>
      <h1>Overview</h1>
      <p class="muted">Your own events only. System-wide charts are for admins and analysts.</p>
      <ErrorBox error={streams.error ?? error} />
      <Chart
        title="Your events per second, per stream"
        testId="chart-own"
        times={ring.current.times}
        series={ring.current.series}
      />
      <Table testId="own-counts" head={["Stream", "Your events"]} rows={names.map((n) => [n, counts.get(n) ?? "…"])} />
    </section>
  );
}
