// Under the map: findings per day stacked by rule, from the server's timeline (`by_rule`: every
// filter but the dates applied, read from the map's summary), over every day with data. The
// selected days are shaded; click a day to select it, shift-click to extend (as the timeline).
// One SVG of a rect per (day, rule) with findings: a year of a dozen rules is a few thousand.

import { escapeHtml, fmtInt } from "./util.js";

const NS = "http://www.w3.org/2000/svg";
const svgEl = (tag, attrs) => {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  return n;
};

// Twenty distinct colours (Tableau 20): an agreement has a dozen rules or more.
export const RULE_PALETTE = ["#4E79A7", "#A0CBE8", "#F28E2B", "#FFBE7D", "#59A14F", "#8CD17D", "#B6992D", "#F1CE63", "#499894", "#86BCB6", "#E15759", "#FF9D9A", "#79706E", "#BAB0AC", "#D37295", "#FABFD2", "#B07AA1", "#D4A6C8", "#9D7660", "#D7B5A6"];

export class RuleBars {
  /**
   * @param {HTMLElement} box where the chart and its legend go
   * @param {(rule: string) => string} colourOf a rule's colour (stable across filters)
   * @param {(start: string, end: string) => void} onPick a day clicked (shift: the range extended)
   */
  constructor(box, colourOf, onPick) {
    this.box = box;
    this.colourOf = colourOf;
    this.onPick = onPick;
    this.tl = null;
    this.start = null;
    this.end = null;
  }

  set(tl, start, end) {
    this.tl = tl;
    this.start = start;
    this.end = end;
    this.draw();
  }

  draw() {
    const tl = this.tl;
    this.box.replaceChildren();
    if (!tl || !tl.days.length) {
      this.box.append(Object.assign(document.createElement("p"), { className: "muted small", textContent: "No findings for these filters." }));
      return;
    }
    const days = tl.days;
    const rules = Object.keys(tl.by_rule || {});
    const n = days.length;
    const W = Math.max(300, Math.round(this.box.clientWidth || 1000)); // drawn at the box's width
    const H = 64;
    const T = 8; // room above the tallest bar for its axis label
    const left = 34;
    const bw = (W - left) / n;
    const max = Math.max(1, ...tl.findings);
    const svg = svgEl("svg", { viewBox: `0 0 ${W} ${T + H + 14}`, width: "100%", role: "img", class: "rb-svg" });
    const g = svgEl("g", { transform: `translate(0 ${T})` });
    svg.append(g);
    for (const t of [0, max]) {
      const y = H - (t / max) * H + 1;
      g.append(svgEl("line", { x1: left, x2: W, y1: y, y2: y, class: "grid" }));
      const lab = svgEl("text", { x: left - 4, y: y + 3, "text-anchor": "end", class: "axis" });
      lab.textContent = fmtInt(t);
      g.append(lab);
    }
    // The selected days as one band behind the bars.
    const i0 = this.start ? days.indexOf(this.start) : -1;
    const i1 = this.end ? days.indexOf(this.end) : -1;
    const a = i0 >= 0 ? i0 : this.start && this.start < days[0] ? 0 : -1;
    const b = i1 >= 0 ? i1 : this.end && this.end > days[n - 1] ? n - 1 : -1;
    if (a >= 0 && b >= a) g.append(svgEl("rect", { x: left + a * bw, y: 0, width: (b - a + 1) * bw, height: H + 1, class: "rb-sel" }));
    const cols = rules.map((r) => tl.by_rule[r]);
    const colours = rules.map((r) => this.colourOf(r));
    const w = Math.max(bw * 0.8, 0.6);
    for (let i = 0; i < n; i++) {
      let y = H + 1;
      for (let k = 0; k < rules.length; k++) {
        const v = cols[k][i];
        if (!v) continue;
        const h = (v / max) * H;
        g.append(svgEl("rect", { x: left + i * bw + bw * 0.1, y: y - h, width: w, height: h, fill: colours[k], "data-rule": rules[k] }));
        y -= h;
      }
    }
    // One transparent hit strip per day: the tooltip names each rule's findings, a click picks.
    const hits = svgEl("g", { class: "rb-hits" });
    for (let i = 0; i < n; i++) {
      const r = svgEl("rect", { x: left + i * bw, y: 0, width: bw, height: H + 1, "data-day": days[i], class: "rb-hit" });
      const t = svgEl("title", {});
      const parts = rules.map((rule, k) => [rule, cols[k][i]]).filter(([, v]) => v > 0).map(([rule, v]) => `${rule} ${fmtInt(v)}`);
      t.textContent = `${days[i]}: ${fmtInt(tl.findings[i])} findings${parts.length ? ` (${parts.join(", ")})` : ""}`;
      r.append(t);
      hits.append(r);
    }
    hits.addEventListener("click", (e) => {
      const d = e.target.getAttribute && e.target.getAttribute("data-day");
      if (!d) return;
      if (e.shiftKey && this.start && this.end) this.onPick(d < this.start ? d : this.start, d > this.end ? d : this.end);
      else this.onPick(d, d);
    });
    g.append(hits);
    const label = (x, text, anchor) => {
      const t = svgEl("text", { x, y: H + 12, "text-anchor": anchor, class: "axis" });
      t.textContent = text;
      g.append(t);
    };
    label(left, days[0], "start");
    label(W, days[n - 1], "end");
    const total = (k) => cols[k].reduce((s, v) => s + v, 0);
    svg.setAttribute("aria-label", `Findings per day by rule from ${days[0]} to ${days[n - 1]}: ${rules.map((r, k) => `${r} ${fmtInt(total(k))}`).join(", ")}`);
    const legend = document.createElement("ul");
    legend.className = "chart-legend rb-legend";
    for (let k = 0; k < rules.length; k++) {
      const li = document.createElement("li");
      li.dataset.rule = rules[k];
      li.innerHTML = `<span class="sw" style="background:${escapeHtml(colours[k])}"></span>${escapeHtml(rules[k])} <span class="muted">${fmtInt(total(k))}</span>`;
      legend.append(li);
    }
    this.box.append(svg, legend);
  }
}
