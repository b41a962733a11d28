// Small stacked-bar charts for the daily view's trend (SVG, no library).

import { el, escapeHtml, fmtInt } from "./util.js";

const NS = "http://www.w3.org/2000/svg";
const svgEl = (tag, attrs) => {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  return n;
};

/**
 * A stacked bar chart.
 * @param {string[]} days x labels (ISO days)
 * @param {{key: string, label: string, colour: string, values: number[]}[]} series
 * @param {string} highlight the day to outline
 */
export function stackedBars(days, series, highlight) {
  const W = 560;
  const H = 150;
  const left = 30;
  const bottom = 18;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H + bottom + 4}`, width: "100%", role: "img" });
  const totals = days.map((_, i) => series.reduce((a, s) => a + s.values[i], 0));
  const max = Math.max(1, ...totals);
  const bw = (W - left) / Math.max(days.length, 1);
  const ticks = [0, Math.ceil(max / 2), max];
  for (const t of ticks) {
    const y = H - (t / max) * H + 2;
    svg.append(svgEl("line", { x1: left, x2: W, y1: y, y2: y, class: "grid" }));
    const lab = svgEl("text", { x: left - 4, y: y + 3, "text-anchor": "end", class: "axis" });
    lab.textContent = fmtInt(t);
    svg.append(lab);
  }
  days.forEach((d, i) => {
    let y = H + 2;
    for (const s of series) {
      const h = (s.values[i] / max) * H;
      if (h > 0) {
        const r = svgEl("rect", { x: left + i * bw + bw * 0.12, y: y - h, width: bw * 0.76, height: h, fill: s.colour });
        const t = svgEl("title", {});
        t.textContent = `${d} — ${s.label}: ${fmtInt(s.values[i])}`;
        r.append(t);
        svg.append(r);
      }
      y -= h;
    }
    if (d === highlight) svg.append(svgEl("rect", { x: left + i * bw + 1, y: H + 2 - (totals[i] / max) * H - 2, width: bw - 2, height: (totals[i] / max) * H + 2, fill: "none", stroke: "#000", "stroke-width": 1.2 }));
    if (i % Math.ceil(days.length / 10) === 0) {
      const lab = svgEl("text", { x: left + i * bw + bw / 2, y: H + bottom, "text-anchor": "middle", class: "axis" });
      lab.textContent = d.slice(5);
      svg.append(lab);
    }
  });
  const sum = series.map((s) => `${s.label} ${fmtInt(s.values.reduce((a, b) => a + b, 0))}`).join(", ");
  svg.setAttribute("aria-label", `Per day from ${days[0]} to ${days[days.length - 1]}: ${sum}`);
  const legend = el("ul", { class: "chart-legend" }, ...series.map((s) => {
    const li = el("li");
    li.innerHTML = `<span class="sw" style="background:${escapeHtml(s.colour)}"></span>${escapeHtml(s.label)}`;
    return li;
  }));
  return el("div", { class: "chart" }, svg, legend);
}
