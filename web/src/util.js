// Small helpers shared by the views: DOM building, formatting, colours.

/** Create an element: el("p", {class: "x", text: "hi"}, child, ...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function escapeHtml(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

export const humanise = (s) => String(s ?? "").replaceAll("_", " ");

// ICD 203 (US Intelligence Community Directive 203): upper bounds of each band, as the server's
// truceline.core.probability.ICD203_TERMS.
const ICD203 = [
  [0.05, "almost no chance"], [0.2, "very unlikely"], [0.45, "unlikely"], [0.55, "roughly even chance"],
  [0.8, "likely"], [0.95, "very likely"], [1.0000001, "almost certain"],
];

export function likelihood(p) {
  for (const [hi, name] of ICD203) if (p < hi) return name;
  return ICD203[ICD203.length - 1][1];
}

/** A probability as the report prints it: two decimals, never rounded to certainty or nil. */
export function fmtProb(p) {
  if (p === null || p === undefined || Number.isNaN(p)) return "—";
  if (p >= 1) return "1.00";
  if (p <= 0) return "0.00";
  if (p > 0.99) return "> 0.99";
  if (p < 0.01) return "< 0.01";
  return p.toFixed(2);
}

export const fmtKm = (v, d = 1) => (v === null || v === undefined ? "—" : `${Number(v).toLocaleString("en-GB", { maximumFractionDigits: d, minimumFractionDigits: d })} km`);
export const fmtM = (v) => (v === null || v === undefined ? "—" : `${Math.round(v).toLocaleString("en-GB")} m`);
// One formatter for every count: toLocaleString builds a new one per call (a year's strip under
// the map writes thousands of counts).
const INT = new Intl.NumberFormat("en-GB");
export const fmtInt = (n) => INT.format(Number(n));

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return `${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 16)} UTC`;
}

export function fmtAge(iso, now = Date.now()) {
  if (!iso) return "—";
  const s = Math.max(0, (now - new Date(iso).getTime()) / 1000);
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} days`;
}

// Days as "YYYY-MM-DD" strings (UTC).
export const isoDay = (d) => d.toISOString().slice(0, 10);
export function addDays(day, n) {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return isoDay(d);
}
export const dayDiff = (a, b) => Math.round((new Date(`${b}T00:00:00Z`) - new Date(`${a}T00:00:00Z`)) / 86400000);

// Okabe-Ito colours, as the daily report: the left party blue, the right vermillion, undetermined
// grey, third actors after them.
export const LEFT_COLOUR = "#0072B2";
export const RIGHT_COLOUR = "#D55E00";
export const UNDETERMINED_COLOUR = "#7F7F7F";
const OTHER_COLOURS = ["#CC79A7", "#009E73", "#E69F00", "#56B4E9", "#F0E442", "#000000"];
export const ZONE_COLOURS = ["#F2D16B", "#B9A3D9", "#9ED4C4", "#E8A6A6", "#C9D97A", "#A9C4E8"];

export function partyColours(legend, seen = []) {
  const c = new Map([[legend.left, LEFT_COLOUR], [legend.right, RIGHT_COLOUR], ["undetermined", UNDETERMINED_COLOUR]]);
  let k = 0;
  for (const p of [...seen].sort()) if (p && !c.has(p)) c.set(p, OTHER_COLOURS[k++ % OTHER_COLOURS.length]);
  return c;
}

export function partyName(legend, id) {
  if (!id) return "—";
  if (id === "undetermined") return "Undetermined";
  const p = legend.parties.find((x) => x.id === id);
  return p ? p.name : id;
}

/** Debounce: run fn after ms of quiet. */
export function debounce(fn, ms) {
  let t = 0;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}
