// The timeline histogram: findings (dark) and other incidents (light) per day over every day with
// data, the selected range highlighted. Click a day to select it, shift-click to extend; with the
// keyboard, left/right move the range by a day and shift+left/right extend it.

import { addDays, dayDiff, escapeHtml, fmtInt } from "./util.js";

export class Timeline {
  constructor(container, onChange) {
    this.box = container;
    this.onChange = onChange;
    this.hist = { days: [], findings: [], incidents: [] };
    this.start = null;
    this.end = null;
    container.addEventListener("keydown", (e) => this._key(e));
  }

  set(hist, start, end) {
    this.hist = hist;
    this.start = start;
    this.end = end;
    this.draw();
  }

  _key(e) {
    if (!this.start || !this.end || !["ArrowLeft", "ArrowRight"].includes(e.key)) return;
    e.preventDefault();
    const step = e.key === "ArrowLeft" ? -1 : 1;
    if (e.shiftKey) {
      if (step < 0) this.start = addDays(this.start, -1);
      else this.end = addDays(this.end, 1);
    } else {
      this.start = addDays(this.start, step);
      this.end = addDays(this.end, step);
    }
    this.onChange(this.start, this.end);
  }

  draw() {
    const { days, findings, incidents } = this.hist;
    this.box.replaceChildren();
    const W = 300;
    const H = 64;
    const holder = document.createElement("div");
    if (!days.length) {
      holder.innerHTML = `<svg viewBox="0 0 ${W} ${H + 14}" width="100%" role="img"><text x="4" y="20" class="tl-empty">No data for these filters.</text></svg>`;
      this.box.append(holder.firstChild);
      return;
    }
    const n = days.length;
    const bw = W / n;
    const max = Math.max(1, ...findings.map((f, i) => f + incidents[i]));
    const selected = (d) => this.start && this.end && d >= this.start && d <= this.end;
    const f2 = (v) => v.toFixed(2);
    const w = f2(Math.max(bw * 0.8, 0.8));
    // Written as one string and parsed once, the bars of each kind as one path (a year's days
    // made one element at a time cost 0.1-0.3 s of a first load); a transparent strip per day
    // holds its tooltip and takes the clicks.
    let total = 0;
    const hits = [];
    let inc = "";
    let find = "";
    days.forEach((d, i) => {
      const x = f2(i * bw + bw * 0.1);
      const hf = (findings[i] / max) * H;
      const hi = (incidents[i] / max) * H;
      const sel = selected(d);
      if (sel) total += findings[i];
      if (hi) inc += `M${x} ${f2(H - hf - hi)}h${w}v${f2(hi)}h-${w}z`;
      if (hf) find += `M${x} ${f2(H - hf)}h${w}v${f2(hf)}h-${w}z`;
      const title = `${d}: ${fmtInt(findings[i])} findings, ${fmtInt(incidents[i])} other incidents`;
      hits.push(`<g class="tl-day${sel ? " sel" : ""}" data-day="${escapeHtml(d)}"><rect x="${f2(i * bw)}" y="0" width="${f2(bw)}" height="${H}" class="tl-hit"/><title>${escapeHtml(title)}</title></g>`);
    });
    let aria = "";
    if (this.start && this.end) {
      const span = dayDiff(this.start, this.end) + 1;
      aria = ` aria-label="${escapeHtml(`Findings per day from ${days[0]} to ${days[n - 1]}; selected ${this.start} to ${this.end} (${span} day${span > 1 ? "s" : ""}, ${fmtInt(total)} findings)`)}"`;
    }
    const label = (x, text, anchor) => `<text x="${x}" y="${H + 11}" text-anchor="${anchor}" class="tl-label">${escapeHtml(text)}</text>`;
    holder.innerHTML =
      `<svg viewBox="0 0 ${W} ${H + 14}" width="100%" role="img"${aria}>${hits.join("")}` +
      `<path d="${inc}" class="tl-inc" pointer-events="none"/><path d="${find}" class="tl-find" pointer-events="none"/>` +
      `${label(0, days[0].slice(5), "start")}${label(W, days[n - 1].slice(5), "end")}</svg>`;
    const svg = holder.firstChild;
    svg.addEventListener("click", (e) => {
      const g = e.target.closest && e.target.closest("[data-day]");
      if (!g) return;
      const d = g.getAttribute("data-day");
      if (e.shiftKey && this.start) {
        this.start = d < this.start ? d : this.start;
        this.end = d > this.end ? d : this.end;
      } else {
        this.start = d;
        this.end = d;
      }
      this.onChange(this.start, this.end);
    });
    this.box.append(svg);
  }
}
