// Line charts with uPlot (vendored; loaded by index.html as the global `uPlot`).
import { h } from "./dom.js";

const COLORS = ["#2f6fde", "#e8710a", "#1e8e3e", "#a142f4", "#d93025", "#12a4af"];

// series: [{label, points: [[x, y], ...]}]; the x values of all series are merged (gaps where one has none)
export function lineChart(title, series, { xLabel = "step", width = 400, height = 200 } = {}) {
  const xs = [...new Set(series.flatMap((s) => s.points.map(([x]) => x)))].sort((a, b) => a - b);
  const columns = series.map((s) => {
    const byX = new Map(s.points);
    return xs.map((x) => (byX.has(x) ? byX.get(x) : null));
  });
  const box = h("div", {
    class: "chart", "data-testid": "chart", "data-metric": title,
    // what the chart holds, for tests and for people reading the DOM: split=points,...
    "data-points": series.map((s) => `${s.label}=${s.points.length}`).join(","),
  }, h("h3", {}, title));
  const plot = new uPlot({
    width, height,
    scales: { x: { time: false } },
    axes: [{ label: xLabel }, {}],
    series: [{ label: xLabel }, ...series.map((s, i) => ({
      label: s.label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true,
      points: { show: s.points.length < 60 },
    }))],
  }, [xs, ...columns]);
  box.append(plot.root);
  return box;
}
