/** Bench page: one ECharts line chart (canvas, animation off), 4 series × 300 points, updated by setOption. */
import { LineChart } from "echarts/charts";
import { GridComponent, LegendComponent, TooltipComponent } from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";
import { type BenchWindow, frame, SERIES } from "./shared";

echarts.use([LineChart, GridComponent, LegendComponent, TooltipComponent, CanvasRenderer]);
const chart = echarts.init(document.getElementById("chart")!, undefined, { width: 800, height: 240 });

function option(i: number) {
  const f = frame(i);
  return {
    animation: false,
    legend: {},
    tooltip: { trigger: "axis" as const },
    xAxis: { type: "time" as const },
    yAxis: { type: "value" as const },
    series: SERIES.map((name, s) => ({
      name,
      type: "line" as const,
      showSymbol: false,
      data: f.times.map((t, k) => [t * 1000, f.values[s]![k]!]),
    })),
  };
}
chart.setOption(option(0));

(window as BenchWindow).update = async (i: number) => {
  chart.setOption(option(i), { lazyUpdate: false });
  // Render now instead of on the next animation frame, so the time includes drawing.
  chart.getZr().flush();
};
