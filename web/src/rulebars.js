// Under the map: findings per day stacked by rule, from the server's timeline (`by_rule`: every
// filter but the dates applied, read from the map's summary), over every day with data. The
// selected days are shaded; click a day to select it, shift-click to extend (as the timeline).
// One SVG: a path of bars per rule, and a transparent strip per day for its tooltip and clicks.

import { escapeHtml, fmtInt } from "./util.js";

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
    const f2 = (v) => v.toFixed(2);
    // The SVG is written as one string and parsed once, each rule's bars as one path: a year's
    // strip was thousands of elements made one by one (0.4-1.1 s of a first load at load ~10).
    const out = [];
    for (const t of [0, max]) {
      const y = H - (t / max) * H + 1;
      out.push(`<line x1="${left}" x2="${W}" y1="${y}" y2="${y}" class="grid"/><text x="${left - 4}" y="${y + 3}" text-anchor="end" class="axis">${fmtInt(t)}</text>`);
    }
    // The selected days as one band behind the bars.
    const i0 = this.start ? days.indexOf(this.start) : -1;
    const i1 = this.end ? days.indexOf(this.end) : -1;
    const a = i0 >= 0 ? i0 : this.start && this.start < days[0] ? 0 : -1;
    const b = i1 >= 0 ? i1 : this.end && this.end > days[n - 1] ? n - 1 : -1;
    if (a >= 0 && b >= a) out.push(`<rect x="${f2(left + a * bw)}" y="0" width="${f2((b - a + 1) * bw)}" height="${H + 1}" class="rb-sel"/>`);
    const cols = rules.map((r) => tl.by_rule[r]);
    const colours = rules.map((r) => this.colourOf(r));
    const w = f2(Math.max(bw * 0.8, 0.6));
    const paths = rules.map(() => []);
    for (let i = 0; i < n; i++) {
      let y = H + 1;
      const x = f2(left + i * bw + bw * 0.1);
      for (let k = 0; k < rules.length; k++) {
        const v = cols[k][i];
        if (!v) continue;
        const h = (v / max) * H;
        paths[k].push(`M${x} ${f2(y - h)}h${w}v${f2(h)}h-${w}z`);
        y -= h;
      }
    }
    rules.forEach((r, k) => {
      if (paths[k].length) out.push(`<path d="${paths[k].join("")}" fill="${escapeHtml(colours[k])}" data-rule="${escapeHtml(r)}"/>`);
    });
    // One transparent hit strip per day: the tooltip names each rule's findings, a click picks.
    out.push('<g class="rb-hits">');
    for (let i = 0; i < n; i++) {
      const parts = rules.map((rule, k) => [rule, cols[k][i]]).filter(([, v]) => v > 0).map(([rule, v]) => `${rule} ${fmtInt(v)}`);
      const title = `${days[i]}: ${fmtInt(tl.findings[i])} findings${parts.length ? ` (${parts.join(", ")})` : ""}`;
      out.push(`<rect x="${f2(left + i * bw)}" y="0" width="${f2(bw)}" height="${H + 1}" data-day="${escapeHtml(days[i])}" class="rb-hit"><title>${escapeHtml(title)}</title></rect>`);
    }
    out.push("</g>");
    out.push(`<text x="${left}" y="${H + 12}" text-anchor="start" class="axis">${escapeHtml(days[0])}</text>`);
    out.push(`<text x="${W}" y="${H + 12}" text-anchor="end" class="axis">${escapeHtml(days[n - 1])}</text>`);
    const total = (k) => cols[k].reduce((s, v) => s + v, 0);
    const aria = `Findings per day by rule from ${days[0]} to ${days[n - 1]}: ${rules.map((r, k) => `${r} ${fmtInt(total(k))}`).join(", ")}`;
    const holder = document.createElement("div");
    holder.innerHTML = `<svg viewBox="0 0 ${W} ${T + H + 14}" width="100%" role="img" class="rb-svg" aria-label="${escapeHtml(aria)}"><g transform="translate(0 ${T})">${out.join("")}</g></svg>`;
    const svg = holder.firstChild;
    svg.querySelector(".rb-hits").addEventListener("click", (e) => {
      const d = e.target.getAttribute && e.target.getAttribute("data-day");
      if (!d) return;
      if (e.shiftKey && this.start && this.end) this.onPick(d < this.start ? d : this.start, d > this.end ? d : this.end);
      else this.onPick(d, d);
    });
    const legend = document.createElement("ul");
    legend.className = "chart-legend rb-legend";
    legend.innerHTML = rules.map((r, k) => `<li data-rule="${escapeHtml(r)}"><span class="sw" style="background:${escapeHtml(colours[k])}"></span>${escapeHtml(r)} <span class="muted">${fmtInt(total(k))}</span></li>`).join("");
    this.box.append(svg, legend);
  }
}
