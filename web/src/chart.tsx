/**
 * A live time-series chart on uPlot (docs/dashboard.md says why uPlot): one canvas, setData() on
 * each update instead of a re-render. The container carries `data-updates` and `data-last`
 * (the sum of the newest points) so a browser test can see the chart move.
 */
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];

export interface ChartProps {
  readonly title: string;
  /** Epoch seconds, ascending. */
  readonly times: readonly number[];
  readonly series: ReadonlyMap<string, ReadonlyArray<number | null>>;
  readonly unit?: string;
  readonly height?: number;
  readonly testId?: string;
  /** Bars for result sets, lines for live data. */
  readonly points?: boolean;
}

export function Chart({ title, times, series, unit = "", height = 180, testId, points = false }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const names = [...series.keys()];
  const shape = names.join("\u0000");
  const updates = useRef(0);

  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [{}, { values: (_u, ticks) => ticks.map((t) => `${formatTick(t)}${unit}`), size: 60 }],
      series: [
        {},
        ...names.map((name, i) => ({
          label: name,
          stroke: COLORS[i % COLORS.length]!,
          width: 1.5,
          spanGaps: false,
          points: { show: points },
        })),
      ],
    };
    plot.current = new uPlot(opts, dataOf(times, names, series), el);
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, el.clientWidth), height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // Recreated only when the set of series changes; data changes go through setData below.
  }, [shape, height, unit, points]);

  useEffect(() => {
    plot.current?.setData(dataOf(times, names, series));
    updates.current++;
    const el = box.current;
    if (el) {
      el.dataset.updates = String(updates.current);
      let last = 0;
      for (const s of series.values()) last += s[s.length - 1] ?? 0;
      el.dataset.last = String(last);
    }
  });

  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      {names.length === 0 ? <p class="muted">No data yet.</p> : null}
      <div ref={box} data-testid={testId} />
    </figure>
  );
}

function dataOf(
  times: readonly number[],
  names: readonly string[],
  series: ReadonlyMap<string, ReadonlyArray<number | null>>,
): uPlot.AlignedData {
  return [Array.from(times), ...names.map((n) => Array.from(series.get(n) ?? []))];
}

function formatTick(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  if (a > 0 && a < 1) return v.toPrecision(2);
  return String(Math.round(v * 100) / 100);
}
