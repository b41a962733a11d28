// The timeline histogram: findings (dark) and other incidents (light) per day over every day with
// data, the selected range highlighted. Click a day to select it, shift-click to extend; with the
// keyboard, left/right move the range by a day and shift+left/right extend it.

import { addDays, dayDiff, fmtInt } from "./util.js";

const NS = "http://www.w3.org/2000/svg";
const svgEl = (tag, attrs) => {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  return n;
};

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
    const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H + 14}`, width: "100%", role: "img" });
    if (!days.length) {
      const t = svgEl("text", { x: 4, y: 20, class: "tl-empty" });
      t.textContent = "No data for these filters.";
      svg.append(t);
      this.box.append(svg);
      return;
    }
    const n = days.length;
    const bw = W / n;
    const max = Math.max(1, ...findings.map((f, i) => f + incidents[i]));
    const selected = (d) => this.start && this.end && d >= this.start && d <= this.end;
    let total = 0;
    days.forEach((d, i) => {
      const x = i * bw;
      const hf = (findings[i] / max) * H;
      const hi = (incidents[i] / max) * H;
      const sel = selected(d);
      if (sel) total += findings[i];
      const g = svgEl("g", { class: `tl-day${sel ? " sel" : ""}`, "data-day": d });
      g.append(svgEl("rect", { x, y: 0, width: bw, height: H, class: "tl-hit" }));
      g.append(svgEl("rect", { x: x + bw * 0.1, y: H - hf - hi, width: Math.max(bw * 0.8, 0.8), height: hi, class: "tl-inc" }));
      g.append(svgEl("rect", { x: x + bw * 0.1, y: H - hf, width: Math.max(bw * 0.8, 0.8), height: hf, class: "tl-find" }));
      const title = svgEl("title", {});
      title.textContent = `${d}: ${fmtInt(findings[i])} findings, ${fmtInt(incidents[i])} other incidents`;
      g.append(title);
      g.addEventListener("click", (e) => {
        if (e.shiftKey && this.start) {
          this.start = d < this.start ? d : this.start;
          this.end = d > this.end ? d : this.end;
        } else {
          this.start = d;
          this.end = d;
        }
        this.onChange(this.start, this.end);
      });
      svg.append(g);
    });
    const label = (x, text, anchor) => {
      const t = svgEl("text", { x, y: H + 11, "text-anchor": anchor, class: "tl-label" });
      t.textContent = text;
      svg.append(t);
    };
    label(0, days[0].slice(5), "start");
    label(W, days[n - 1].slice(5), "end");
    if (this.start && this.end) {
      const span = dayDiff(this.start, this.end) + 1;
      svg.setAttribute("aria-label", `Findings per day from ${days[0]} to ${days[n - 1]}; selected ${this.start} to ${this.end} (${span} day${span > 1 ? "s" : ""}, ${fmtInt(total)} findings)`);
    }
    this.box.append(svg);
  }
}
