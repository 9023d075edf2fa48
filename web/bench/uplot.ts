/** Bench page: one uPlot chart, 4 series × 300 points, updated by setData (see charts.ts). */
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { type BenchWindow, frame, SERIES } from "./shared";

const el = document.getElementById("chart")!;
const first = frame(0);
const chart = new uPlot(
  {
    width: 800,
    height: 240,
    scales: { x: { time: true } },
    series: [{}, ...SERIES.map((label) => ({ label, stroke: "#2563eb" }))],
  },
  [first.times, ...first.values],
  el,
);

(window as BenchWindow).update = async (i: number) => {
  const f = frame(i);
  chart.setData([f.times, ...f.values]);
  // uPlot commits the redraw in a microtask.
  await Promise.resolve();
  await Promise.resolve();
};
