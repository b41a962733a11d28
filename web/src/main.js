// The mission dashboard: map, review queue and daily view over the Truceline API.

import "./style.css";
import { api, ApiError, apiText, can, download, getToken, qs, setToken } from "./api.js";
import { stackedBars } from "./charts.js";
import { detailZoom, MapView } from "./mapview.js";
import { observationForm } from "./observe.js";
import { Panel } from "./panel.js";
import { PlannerView } from "./planner.js";
import { RULE_PALETTE, RuleBars } from "./rulebars.js";
import { FILTERS, filterParams, readState, VIEWS, writeState } from "./state.js";
import { Timeline } from "./timeline.js";
import { addDays, dayDiff, debounce, el, fmtAge, fmtInt, fmtProb, fmtTime, humanise, partyColours, partyName } from "./util.js";

const $ = (s) => document.querySelector(s);
const STATUSES = [["new", "awaiting review"], ["verified", "verified"], ["rejected", "rejected"], ["sent_back", "sent back"]];
const TIERS = { 1: "serious", 2: "likely violation", 3: "finding", 4: "report" };

const app = {
  role: "public",
  me: null,
  state: readState(),
  legend: null,
  lastDay: null,
  data: null,
  map: null,
  panel: null,
  timeline: null,
  ruleBars: null,
  colours: null,
  loadSeq: 0,
  viewSeq: 0,
  planner: null,
};
window.truceline = app; // for tests and the curious: the page's state, read-only by convention

function notice(text) {
  const n = $("#notice");
  n.hidden = !text;
  n.textContent = text || "";
}

function errorText(e) {
  return e instanceof ApiError ? `${e.message}${e.fix ? ` — ${e.fix}` : ""}` : String(e);
}

const colourOf = (p) => (app.colours && app.colours.get(p)) || "#7F7F7F";
// A rule's colour by its place in the agreement's rules: the same under every filter and view.
function ruleColour(rule) {
  const k = app.legend ? app.legend.rules.findIndex((r) => r.id === rule) : -1;
  if (k >= 0) return RULE_PALETTE[k % RULE_PALETTE.length];
  let h = 0; // a rule of another version of the agreement: a colour from its name
  for (const c of String(rule)) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return RULE_PALETTE[h % RULE_PALETTE.length];
}

function sectorLabel(id) {
  const s = app.legend && app.legend.sectors.find((x) => x.id === id);
  if (!s) return id || "—";
  return `${(s.name || s.id).split(" (")[0]}${s.nation ? ` (${s.nation})` : ""}`;
}

// -- sign-in ---------------------------------------------------------------------------------

async function whoami() {
  if (!getToken()) return null;
  return api("/me");
}

function setupLogin() {
  const dlg = $("#login");
  $("#login-button").addEventListener("click", () => {
    $("#login-error").hidden = true;
    $("#token").value = "";
    dlg.showModal();
    $("#token").focus();
  });
  $("#login-cancel").addEventListener("click", () => dlg.close());
  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const token = $("#token").value.trim();
    setToken(token);
    try {
      await whoami();
      dlg.close();
      location.reload();
    } catch (err) {
      setToken("");
      $("#login-error").hidden = false;
      $("#login-error").textContent = errorText(err);
    }
  });
  $("#logout-button").addEventListener("click", () => {
    setToken("");
    location.reload();
  });
}

// -- views -----------------------------------------------------------------------------------

const NEEDS = { map: "map", queue: "review", daily: "daily", planner: "planner" };
function views() {
  return VIEWS.filter((v) => can(app.role, NEEDS[v]));
}

function showView(view, { push = false } = {}) {
  const allowed = views();
  if (!allowed.includes(view)) view = allowed[0] || "daily";
  app.state.view = view;
  for (const v of VIEWS) {
    $(`#view-${v}`).hidden = v !== view;
    const tab = $(`#tab-${v}`);
    tab.hidden = !allowed.includes(v);
    if (v === view) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  document.body.dataset.view = view;
  if (view !== "map" && view !== "queue") app.panel && app.panel.hide();
  writeState(app.state, { push });
  if (view === "map" && app.map) {
    setTimeout(() => {
      app.map.map.invalidateSize();
      if (app.needsFit) app.map.fitLine();
      app.needsFit = false;
    }, 0);
  }
  if (view === "queue") loadQueue();
  if (view === "daily") loadDaily();
  if (view === "planner") loadPlanner();
}

// -- the planner -------------------------------------------------------------------------------

async function loadPlanner() {
  if (!app.planner) {
    app.planner = new PlannerView($("#view-planner"), {
      onPick: (a, b) => {
        Object.assign(app.state, { a, b });
        writeState(app.state, { push: true });
        loadPlanner();
      },
    });
  }
  const [a, b] = await app.planner.show(app.state.a, app.state.b);
  if (a !== app.state.a || b !== app.state.b) {
    Object.assign(app.state, { a, b }); // the defaults chosen, or an unknown id replaced
    writeState(app.state);
  }
}

// -- the map view ----------------------------------------------------------------------------

// Per day: the legend is cheap (a few kB, at most LEGENDS of them held); the layers' geometry
// (hundreds of kB) is the same for every day with the same version and rules in force, so it is
// held per that key, at most LAYER_SETS of them: clicking through a year's days holds one or two,
// not one per day.
const LEGENDS = 64;
const LAYER_SETS = 12;
const legends = new Map();
const layerSets = new Map(); // layersKey(legend) -> promise of the FeatureCollection, oldest first

function held(map, key, make, most) {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    v.catch(() => map.get(key) === v && map.delete(key)); // asked again next time
  } else map.delete(key); // the most recently used last
  map.set(key, v);
  while (map.size > most) map.delete(map.keys().next().value);
  return v;
}

function legendFor(day) {
  return held(legends, day, () => api(`/dashboard/legend${qs({ date: day })}`), LEGENDS);
}
const layersKey = (legend) => `${legend.version_from}|${legend.rules.filter((r) => r.in_force).map((r) => r.id).join(",")}`;
/** The layers in force on ``day``, simplified by the server for zoom ``z`` (by default the zoom
 * of the first view: the URL's, else the line's fit). */
async function layersFor(day, z = undefined) {
  const legend = await legendFor(day);
  const zoom = detailZoom(z ?? app.state.z ?? app.map.fitZoom(legend));
  return held(layerSets, `${layersKey(legend)}@${zoom}`, () => api(`/dashboard/layers${qs({ date: day, zoom })}`), LAYER_SETS);
}

let layersDay = null;
async function showLayers(day) {
  const legend = await legendFor(day);
  const key = layersKey(legend);
  if (key === layersDay) return;
  layersDay = key;
  app.map.setLegend(legend, colourOf);
  const z = app.map.map._loaded ? app.map.map.getZoom() : undefined; // the view, once it has one
  const fc = await layersFor(day, z);
  if (layersDay !== key) return;
  const zoom = detailZoom(z ?? app.state.z ?? app.map.fitZoom(legend));
  app.map.setLayers(fc, { zoom, detailFor: (nz) => layersFor(day, nz) });
  renderLegend();
  document.body.dataset.layers = "1";
}

function buildFilters() {
  const box = $("#filters");
  box.replaceChildren();
  const lg = app.legend;
  const groups = [
    ["kind", "Kind", lg.kinds.map((k) => [k, humanise(k)])],
    ["rule", "Rule", lg.rules.map((r) => [r.id, r.id, r.description])],
    ["party", "Party", [...lg.parties.map((p) => [p.id, p.name]), ["undetermined", "Undetermined"]]],
    ["sector", "Sector", lg.sectors.map((s) => [s.id, sectorLabel(s.id)])],
    ["status", "Status", STATUSES],
    // Reports no rule judged: on a day the agreement was not in force, or outside its area.
    ["in_force", "Agreement in force", [["true", "In force"], ["false", "Not in force (not judged)"]]],
    ["in_area", "Area of application", [["true", "Inside"], ["false", "Outside (not judged)"]]],
  ];
  if (can(app.role, "incidents")) groups.push(["source", "Source type", lg.sources.map((s) => [s, humanise(s)])]);
  for (const [key, label, options] of groups) {
    const chosen = new Set(app.state[key]);
    const summary = el("summary", {}, label, el("span", { class: "chosen", id: `chosen-${key}`, text: chosen.size ? ` (${chosen.size})` : "" }));
    const list = el("div", { class: "options", role: "group", "aria-label": label });
    for (const [value, text, title] of options) {
      const id = `f-${key}-${value}`;
      list.append(el("label", { for: id, title }, el("input", { type: "checkbox", id, name: key, value, checked: chosen.has(value), onchange: onFilterChange }), ` ${text}`));
    }
    box.append(el("details", { class: "filter", "data-filter": key, open: chosen.size > 0 }, summary, list));
  }
}

function onFilterChange() {
  for (const key of FILTERS) {
    app.state[key] = [...document.querySelectorAll(`#filters input[name="${key}"]:checked`)].map((i) => i.value);
    const c = $(`#chosen-${key}`);
    if (c) c.textContent = app.state[key].length ? ` (${app.state[key].length})` : "";
  }
  writeState(app.state, { push: true });
  loadFeatures();
}

function setDates(start, end, { push = true } = {}) {
  if (start && end && end < start) [start, end] = [end, start];
  app.state.start = start;
  app.state.end = end;
  $("#start").value = start || "";
  $("#end").value = end || "";
  writeState(app.state, { push });
  loadFeatures();
  loadPatrols();
}

// Beyond this many points in the selected days the page does not fetch them all: the server counts
// them per grid cell for the overview, and the points of the view are fetched from DETAIL_ZOOM on.
const BIG = Number(globalThis.trucelineBig) || 20000; // tests set a small one
const DETAIL_ZOOM = 11;
const VIEW_LIMIT = 20000;

function showCount(F, I, truncated = false, limit = 0) {
  $("#count").replaceChildren(
    el("strong", { id: "count-findings", "data-count": F, text: fmtInt(F) }), ` finding${F === 1 ? "" : "s"}`,
    can(app.role, "incidents") ? el("span", {}, " · ", el("strong", { id: "count-incidents", "data-count": I, text: fmtInt(I) }), ` other incident${I === 1 ? "" : "s"}`) : "",
    truncated ? el("span", { class: "error", text: ` — only the first ${fmtInt(limit)} shown: narrow the filter` }) : "",
  );
}

// The server's cluster answers the page holds, per filter and zoom (they cover the whole
// selection, not a view: a pan needs none, a zoom back none); at most CLUSTER_CACHE of them, each
// for CLUSTER_TTL_MS (newer reports show within it), all forgotten after a write of this page.
const CLUSTER_CACHE = 24;
const CLUSTER_TTL_MS = 60_000;
const PREFETCH_AFTER_MS = 1000;
const clusterAnswers = new Map(); // key -> { at, answer: Promise }, oldest first

function clustersFor(params, z) {
  const key = qs({ ...params, zoom: z });
  const hit = clusterAnswers.get(key);
  if (hit && performance.now() - hit.at < CLUSTER_TTL_MS) {
    clusterAnswers.delete(key); // the most recently used last
    clusterAnswers.set(key, hit);
    return hit.answer;
  }
  const answer = api(`/dashboard/clusters${key}`);
  const entry = { at: performance.now(), answer };
  answer.catch(() => clusterAnswers.get(key) === entry && clusterAnswers.delete(key)); // asked again next time
  clusterAnswers.set(key, entry);
  while (clusterAnswers.size > CLUSTER_CACHE) clusterAnswers.delete(clusterAnswers.keys().next().value);
  return answer;
}

/** After a write from this page (a review, an observation): every held answer may have changed. */
function forgetAnswers() {
  clusterAnswers.clear();
  app.drawnKey = null;
}

/** The zooms next to the drawn one (one level in and out, then two in), asked for one after the
 * other while the user looks at the map: a zoom then draws from the page's hold (the server
 * computes each once per filter and holds it too; a year's finest levels read the year's rows,
 * not its months'). Stops as soon as the selection or the view changes. */
async function prefetchZooms(seq, vseq, params, z) {
  const m = app.map.map;
  for (const dz of [1, -1, 2]) {
    const nz = z + dz;
    if (nz < m.getMinZoom() || nz >= DETAIL_ZOOM) continue;
    if (seq !== app.loadSeq || vseq !== app.viewSeq) return;
    try {
      await Promise.all([clustersFor(params, nz), app.map.prefetchDetail(detailZoom(nz))]);
    } catch {
      return;
    }
  }
}

async function loadFeatures(firstTimeline = null) {
  const seq = ++app.loadSeq;
  const t0 = performance.now();
  app.drawnKey = null; // a new selection (or the same after a write) is drawn again
  $("#count").textContent = "Loading…";
  document.body.dataset.loading = "1";
  try {
    const params = filterParams(app.state);
    // A selection that was big (or the first one) asks for the view's clusters at once, beside
    // the timeline, rather than after it: the server answers both from its summary.
    const z0 = app.map.map.getZoom();
    if (app.big !== false && z0 < DETAIL_ZOOM) clustersFor(params, z0).catch(() => {}); // met again when awaited
    // The days' counts first (all filters but the dates): they say how much the range holds
    // (the page's first load has them already: asked for beside the sign-in).
    const tl = firstTimeline || (await api(`/dashboard/timeline${qs({ ...params, start: null, end: null })}`));
    if (seq !== app.loadSeq) return;
    const inRange = (d) => (!app.state.start || d >= app.state.start) && (!app.state.end || d <= app.state.end);
    let F = 0;
    let I = 0;
    tl.days.forEach((d, i) => {
      if (inRange(d)) {
        F += tl.findings[i];
        I += tl.incidents[i];
      }
    });
    const day = app.state.end || app.lastDay || app.legendDay;
    // The agreement's layers draw with or without data (an empty database: the day of the legend).
    if (day) showLayers(day).catch((e) => notice(errorText(e)));
    app.timeline.set(tl, app.state.start, app.state.end);
    app.ruleBars.set(tl, app.state.start, app.state.end);
    app.big = F + I > BIG;
    app.totals = { F, I };
    if (app.big) {
      showCount(F, I);
      await loadView(seq, t0);
      return;
    }
    const data = await api(`/dashboard/features${qs(params)}`);
    if (seq !== app.loadSeq) return;
    const t1 = performance.now();
    app.data = data;
    app.map.setData(data);
    app.drawnKey = null;
    showCount(data.findings.n, data.incidents.n, data.truncated, data.limit);
    renderList();
    app.timing = { fetch_ms: Math.round(t1 - t0), render_ms: Math.round(performance.now() - t1), points: data.findings.n + data.incidents.n };
    document.body.dataset.loading = "";
    document.body.dataset.ready = "1";
  } catch (e) {
    if (seq !== app.loadSeq) return;
    document.body.dataset.loading = "";
    $("#count").textContent = errorText(e);
  }
}

/** A big selection: the server's clusters of the view's zoom, or the view's points when zoomed in. */
async function loadView(seq, t0 = performance.now()) {
  const m = app.map.map;
  const z = m.getZoom();
  const params = filterParams(app.state);
  // Each view load has its own number: a zoom's answer can come back before the answer of the view
  // before it (the clusters of the overview are slower than the points of a small view), and only
  // the newest view may draw.
  const vseq = ++app.viewSeq;
  const stale = () => seq !== app.loadSeq || vseq !== app.viewSeq;
  document.body.dataset.loading = "1";
  try {
    let points = 0;
    let t1 = performance.now();
    if (z < DETAIL_ZOOM) {
      const key = qs({ ...params, zoom: z });
      if (key === app.drawnKey) {
        // Drawn already (a pan, or the map settling after the first draw): the clusters cover the
        // whole selection, not the view.
        app.viewZoom = z;
        document.body.dataset.loading = "";
        return;
      }
      const cl = await clustersFor(params, z);
      if (stale()) return;
      t1 = performance.now();
      app.data = null;
      app.map.setClusters(cl);
      app.drawnKey = key;
      // After a second on the same view: sooner, the prefetch competes with the user's next
      // step (a filter ticked at once waited behind the server's prefetch work: 1.1 s, not 0.5 s).
      setTimeout(() => prefetchZooms(seq, vseq, params, z), PREFETCH_AFTER_MS);
      if (app.viewNotice) notice("");
      app.viewNotice = false;
      $("#list-count").textContent = "";
      $("#list").replaceChildren(el("li", { class: "muted", text: "Zoom in to list the findings of the view." }));
      points = cl.n;
    } else {
      const b = m.getBounds().pad(0.25);
      const bbox = [Math.max(b.getWest(), -180), Math.max(b.getSouth(), -90), Math.min(b.getEast(), 180), Math.min(b.getNorth(), 90)].map((v) => v.toFixed(4));
      const data = await api(`/dashboard/features${qs({ ...params, bbox: bbox.join(","), limit: VIEW_LIMIT })}`);
      if (stale()) return;
      t1 = performance.now();
      app.data = data;
      app.map.setData(data);
      app.drawnKey = null;
      renderList();
      if (data.truncated || app.viewNotice) notice(data.truncated ? `Only ${fmtInt(data.limit)} of the view's points are drawn: zoom in or narrow the filter.` : "");
      app.viewNotice = data.truncated;
      points = data.findings.n + data.incidents.n;
    }
    app.timing = { fetch_ms: Math.round(t1 - t0), render_ms: Math.round(performance.now() - t1), points };
    app.viewZoom = z; // the zoom whose clusters or points are drawn (tests wait on it)
    document.body.dataset.loading = "";
    document.body.dataset.ready = "1";
  } catch (e) {
    if (stale()) return;
    document.body.dataset.loading = "";
    $("#count").textContent = errorText(e);
  }
}

const reloadView = debounce(() => loadView(app.loadSeq), 60); // a drag's or the keys' moves end in one
function onView() {
  if (!app.big || !app.timeline) return;
  document.body.dataset.loading = "1"; // at once: the view's data is on its way
  // A new zoom of clusters at once (each zoom is one step, and its clusters are often held
  // already); pans, and views of points, after the moves settle.
  const z = app.map.map.getZoom();
  if (z !== app.viewZoom && z < DETAIL_ZOOM) loadView(app.loadSeq);
  else reloadView();
}

function renderList() {
  const d = app.data;
  const F = d.findings;
  const codes = d.codes;
  const order = [...Array(F.n).keys()].sort((a, b) => F.p[b] - F.p[a] || F.t[a] - F.t[b]).slice(0, 200);
  $("#list-count").textContent = F.n > 200 ? `(200 most probable of ${fmtInt(F.n)})` : `(${fmtInt(F.n)})`;
  $("#list").replaceChildren(
    ...order.map((i) => {
      const party = codes.party[F.party[i]];
      const sw = el("span", { class: "sw", "aria-hidden": "true" });
      sw.style.background = colourOf(party);
      return el("li", {}, el("button", { type: "button", class: "linkish", "data-sel": `f${F.pk[i]}`, onclick: () => select(`f${F.pk[i]}`, { pan: true }) }, sw, `${new Date(F.t[i] * 1000).toISOString().slice(5, 16).replace("T", " ")} ${codes.rule[F.rule[i]]} — ${partyName(app.legend, party)} ${fmtProb(F.p[i])}`));
    }),
  );
}

async function select(id, { pan = false, incidentPk = null } = {}) {
  app.state.sel = id;
  writeState(app.state, { push: true });
  const detail = await app.panel.show(id, { incidentPk });
  if (app.map && detail && app.state.sel === id) app.map.select(id, detail, { pan });
}

function closePanel() {
  app.panel.hide();
  app.state.sel = null;
  writeState(app.state, { push: true });
  if (app.map) app.map.clearSelection();
}

function renderLegend() {
  $("#legend").replaceChildren(app.map.legendElement((k, on) => app.map.setVisible(k, on), { incidents: can(app.role, "incidents") }));
}

/** The smallest [w, s, e, n] box holding two. */
function union(a, b) {
  return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[2], b[2]), Math.max(a[3], b[3])];
}

async function initMap() {
  app.map = new MapView($("#map"), {
    onSelect: (id) => select(id),
    onView,
    onMove: debounce(({ z, lat, lon }) => {
      if ($("#view-map").hidden) return; // a hidden map has no size: its view means nothing
      Object.assign(app.state, { z, lat, lon });
      writeState(app.state);
    }, 300),
  });
  app.timeline = new Timeline($("#timeline"), (s, e) => setDates(s, e));
  app.ruleBars = new RuleBars($("#rule-bars"), ruleColour, (s, e) => setDates(s, e));

  // Dates: as the URL says, else the last day with data. The timeline was asked for beside the
  // sign-in (boot); when the URL names the day, its legend and layers are asked for at once too.
  const tlPath = `/dashboard/timeline${qs({ ...filterParams(app.state), start: null, end: null })}`;
  const first = app.firstTimeline && app.firstTimeline.path === tlPath && app.firstTimeline.token === getToken() ? app.firstTimeline.answer : api(tlPath);
  app.firstTimeline = null;
  if (app.state.end) {
    legendFor(app.state.end).catch(() => {});
    layersFor(app.state.end).catch(() => {});
  }
  const tl = await first;
  // The last day with findings (a report or two past midnight does not make a day to show).
  const withFindings = tl.days.filter((_, i) => tl.findings[i] > 0);
  app.firstDay = tl.days.length ? tl.days[0] : null;
  app.lastDay = withFindings.length ? withFindings[withFindings.length - 1] : tl.days.length ? tl.days[tl.days.length - 1] : null;
  if (!app.state.end) app.state.end = app.lastDay;
  if (!app.state.start) app.state.start = app.state.end;
  $("#start").value = app.state.start || "";
  $("#end").value = app.state.end || "";
  const day = app.state.end || app.lastDay || new Date().toISOString().slice(0, 10);
  app.legendDay = day;
  layersFor(day).catch(() => {}); // drawn by loadFeatures; fetched meanwhile
  app.legend = await legendFor(day);
  app.colours = partyColours(app.legend);
  $("#agreement-name").textContent = app.legend.agreement.name;
  app.map.fitArea = !app.lastDay; // nothing stored: the first view is the whole area
  app.map.setLegend(app.legend, colourOf);
  // The base map: the region around the line and the area of application, about 500 km beyond
  // them. Not more: Leaflet re-projects every vertex of it at each zoom (a margin of 20 degrees
  // held 65,000 of the page's 92,000, most of a zoom's work on the page's thread).
  const [w, s, e, n] = union(app.legend.bbox, app.legend.area_bbox || app.legend.bbox);
  const base = app.map.loadBase("/static/countries-10m.json", [w - 6, Math.max(s - 4, -89), e + 6, Math.min(n + 4, 89)]);
  if (app.state.z !== null && app.state.lat !== null && app.state.lon !== null) app.map.map.setView([app.state.lat, app.state.lon], app.state.z);
  else if (!$("#view-map").hidden) app.map.fitLine();
  else {
    // A hidden map has no size to fit to: give it a view now (selections draw on it), fit when shown.
    app.map.map.setView(app.map.lineBounds.getCenter(), 6);
    app.needsFit = true;
  }
  renderLegend();
  if (matchMedia("(max-width: 900px)").matches) {
    $("#sidebar").classList.add("collapsed"); // a tablet: the map first, filters on demand
    $("#sidebar-toggle").setAttribute("aria-expanded", "false");
  }
  buildFilters();
  if (can(app.role, "submit")) {
    $("#observe-details").hidden = false;
    observationForm($("#observe"), {
      centre: () => {
        const c = app.map.map.getCenter();
        return [c.lng, c.lat];
      },
      done: () => {
        forgetAnswers();
        loadFeatures();
      },
    });
  }
  $("#start").addEventListener("change", () => setDates($("#start").value || null, app.state.end));
  $("#end").addEventListener("change", () => setDates(app.state.start, $("#end").value || null));
  $("#reset").addEventListener("click", () => {
    for (const f of FILTERS) app.state[f] = [];
    buildFilters();
    setDates(app.lastDay, app.lastDay);
  });
  const exp = (format) => async () => {
    try {
      const out = await download(`/export${qs({ ...filterParams(app.state), format })}`, `truceline.${format}`);
      notice("");
      $("#count").dataset.exported = out.name;
    } catch (e) {
      notice(errorText(e));
    }
  };
  for (const b of ["#export-geojson", "#export-csv"]) $(b).hidden = app.role === "public"; // exports need a token
  $("#export-geojson").addEventListener("click", exp("geojson"));
  $("#export-csv").addEventListener("click", exp("csv"));
  $("#sidebar-toggle").addEventListener("click", () => {
    const sb = $("#sidebar");
    const open = sb.classList.toggle("collapsed") === false;
    $("#sidebar-toggle").setAttribute("aria-expanded", String(open));
    setTimeout(() => app.map.map.invalidateSize(), 0);
  });
  loadSensors();
  loadPatrols();
  await loadFeatures(tl);
  await base.catch(() => notice("The base map could not be loaded; the agreement's layers are shown without it."));
  document.body.dataset.base = "1";
}

/** The patrols' tracks of the selected days, for the mission's roles (a monitor: their own);
 * the public and the parties' liaisons never ask (the server refuses them too). */
let patrolSeq = 0;
async function loadPatrols() {
  if (!can(app.role, "incidents") || !app.state.start) {
    document.body.dataset.patrols = "none";
    return;
  }
  const seq = ++patrolSeq;
  try {
    const fc = await api(`/dashboard/patrols${qs({ agreement: app.legend.agreement.id, start: app.state.start, end: app.state.end })}`);
    if (seq !== patrolSeq) return;
    app.map.setPatrols(fc);
    renderLegend();
    document.body.dataset.patrols = String(app.map.patrolCount);
  } catch (e) {
    if (seq !== patrolSeq) return;
    if (!(e instanceof ApiError && (e.status === 403 || e.status === 404))) notice(`Patrols: ${errorText(e)}`);
    document.body.dataset.patrols = "none";
  }
}

/** The sensors layer, for the roles that may see sensors; a server without the endpoint (404) or
 * a role it refuses (403) leaves the layer out, with no message. */
async function loadSensors() {
  document.body.dataset.sensors = "";
  if (!can(app.role, "sensors")) {
    document.body.dataset.sensors = "none";
    return;
  }
  try {
    const fc = await api(`/sensors${qs({ agreement: app.legend.agreement.id })}`);
    app.map.setSensors(fc);
    renderLegend();
    document.body.dataset.sensors = String(app.map.sensorCount);
  } catch (e) {
    if (!(e instanceof ApiError && (e.status === 403 || e.status === 404))) notice(`Sensors: ${errorText(e)}`);
    document.body.dataset.sensors = "none";
  }
}

// -- the review queue ------------------------------------------------------------------------

async function loadQueue() {
  if (!can(app.role, "review")) return;
  try {
    const q = await api("/dashboard/queue?limit=200");
    const badge = $("#queue-badge");
    badge.hidden = !q.total;
    badge.textContent = fmtInt(q.total);
    const tiers = Object.entries(q.by_tier).sort().map(([t, n]) => `${fmtInt(n)} ${TIERS[t]}`).join(", ");
    $("#queue-summary").textContent = q.total ? `${fmtInt(q.total)} awaiting review: ${tiers}. Most serious first, then oldest first.` : "Nothing awaits review.";
    if ($("#view-queue").hidden) return;
    const now = Date.now();
    $("#queue tbody").replaceChildren(
      ...q.items.map((it) => {
        const open = () => select(`i${it.pk}`, { incidentPk: it.pk });
        const tr = el(
          "tr",
          { tabindex: 0, "data-pk": it.pk, class: `tier-${it.tier}`, onclick: open, onkeydown: (e) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), open()) },
          el("td", {}, el("span", { class: `tier t${it.tier}`, text: TIERS[it.tier] })),
          el("td", { text: fmtAge(it.received_at, now) }),
          el("td", { class: "nowrap", text: `${it.observed_at.slice(5, 10)} ${it.observed_at.slice(11, 16)}` }),
          el("td", {}, el("code", { text: it.report_id })),
          el("td", { text: humanise(it.kind) + (it.weapon_class ? ` (${humanise(it.weapon_class)})` : "") }),
          el("td", { text: sectorLabel(it.sector) }),
          el("td", { text: it.top_rule ? `${it.top_rule} — ${partyName(app.legend, it.top_responsible)}` : "—" }),
          el("td", { text: it.likelihood ? `${it.likelihood} (${fmtProb(it.max_probability)})` : "—" }),
        );
        return tr;
      }),
    );
  } catch (e) {
    $("#queue-summary").textContent = errorText(e);
  }
}

// -- the daily view --------------------------------------------------------------------------

let dailySeq = 0;
async function loadDaily() {
  let day = app.state.day || (can(app.role, "draft") ? app.state.end || app.lastDay : null);
  if (!day && !can(app.role, "draft")) {
    // Those who read published reports only: the newest one.
    const published = await api("/reports").catch(() => []);
    if (published.length) day = published[published.length - 1].day;
  }
  day = day || new Date().toISOString().slice(0, 10);
  const seq = ++dailySeq;
  $("#daily-day").value = day;
  document.body.dataset.daily = "";
  await Promise.all([loadReport(day, seq), loadTrend(day)]);
  if (seq === dailySeq) document.body.dataset.daily = "1";
}

async function loadReport(day, seq) {
  const frame = $("#daily-frame");
  const draft = can(app.role, "draft");
  $("#daily-state").textContent = draft ? "Drawing the day's report…" : "Loading…";
  try {
    const html = await apiText(draft ? `/reports/${day}/draft` : `/reports/${day}`);
    if (seq !== dailySeq) return;
    frame.srcdoc = html;
    $("#daily-state").textContent = draft ? "Draft: the report as it stands now." : "Published report.";
    $("#daily-pdf").disabled = false;
  } catch (e) {
    if (seq !== dailySeq) return;
    frame.srcdoc = "";
    $("#daily-pdf").disabled = true;
    $("#daily-state").textContent = e instanceof ApiError && e.status === 404 ? `The report of ${day} is not published yet.` : errorText(e);
  }
}

async function loadTrend(day) {
  const trend = $(".trend");
  trend.hidden = !can(app.role, "statistics");
  if (trend.hidden) return;
  try {
    // Thirty days back, or from the first day with data when that is later.
    const first = app.firstDay && app.firstDay <= day ? app.firstDay : null;
    const start = first && first > addDays(day, -29) ? first : addDays(day, -29);
    const stats = await api(`/statistics/daily${qs({ start, end: day })}`);
    const days = [...Array(dayDiff(start, day) + 1).keys()].map((k) => addDays(start, k));
    const byDay = new Map(stats.map((s) => [s.day, s]));
    const parties = [...new Set(stats.flatMap((s) => Object.keys(s.violations_by_party)))];
    const order = [app.legend?.left, app.legend?.right, ...parties.sort()].filter((p, i, a) => p && parties.includes(p) && a.indexOf(p) === i);
    $("#trend-party").replaceChildren(stackedBars(days, order.map((p) => ({ key: p, label: partyName(app.legend, p), colour: colourOf(p), values: days.map((d) => byDay.get(d)?.violations_by_party[p] || 0) })), day));
    const rules = [...new Set(stats.flatMap((s) => Object.keys(s.findings_by_rule)))].sort();
    $("#trend-rule").replaceChildren(stackedBars(days, rules.map((r) => ({ key: r, label: r, colour: ruleColour(r), values: days.map((d) => byDay.get(d)?.findings_by_rule[r] || 0) })), day));
  } catch (e) {
    $("#trend-party").textContent = errorText(e);
  }
}

function setupDaily() {
  $("#daily-day").addEventListener("change", () => {
    app.state.day = $("#daily-day").value || null;
    writeState(app.state, { push: true });
    loadDaily();
  });
  $("#daily-pdf").addEventListener("click", async () => {
    const day = $("#daily-day").value;
    const draft = can(app.role, "draft");
    $("#daily-state").textContent = "Typesetting the PDF…";
    try {
      const out = await download(draft ? `/reports/${day}/draft/pdf` : `/reports/${day}/pdf`, `report-${day}.pdf`);
      $("#daily-state").textContent = `Downloaded ${out.name}.`;
    } catch (e) {
      $("#daily-state").textContent = errorText(e);
    }
  });
}

// -- boot ------------------------------------------------------------------------------------

async function boot() {
  const hadView = app.state.z !== null; // a shared link with a map view keeps it
  setupLogin();
  setupDaily();
  // The map's first question, asked beside the sign-in (the same token answers both); initMap
  // takes it if the token still stands and the filter is the same.
  const tlPath = `/dashboard/timeline${qs({ ...filterParams(app.state), start: null, end: null })}`;
  app.firstTimeline = { path: tlPath, token: getToken(), answer: api(tlPath) };
  app.firstTimeline.answer.catch(() => {}); // a refusal (a sensor, a bad token) is met in initMap
  // The legend of the URL's day too: the layers and the first view's clusters wait on it (asked
  // after the sign-in, it made one more round trip before them). A refusal is forgotten.
  if (app.state.end) legendFor(app.state.end).catch(() => {});
  try {
    app.me = await whoami();
  } catch (e) {
    setToken("");
    notice(`Signed out: ${errorText(e)}`);
  }
  app.role = app.me ? app.me.role : "public";
  $("#who").textContent = app.me ? `${app.me.subject.replace(/^token:[^:]+:/, "")} · ${app.me.role}${app.me.party ? ` (${app.me.party})` : ""}` : "public (signed out)";
  $("#login-button").hidden = Boolean(app.me);
  $("#logout-button").hidden = !app.me;
  document.body.dataset.role = app.role;
  app.panel = new Panel($("#panel"), {
    get role() {
      return app.role;
    },
    get legend() {
      return app.legend;
    },
    colourOf,
    sectorLabel,
    onClose: closePanel,
    onOpen: (id) => select(id, { pan: true }),
    onChanged: async (pk) => {
      forgetAnswers();
      await Promise.all([loadFeatures(), loadQueue()]);
      if (app.state.sel) await app.panel.show(app.state.sel, { incidentPk: pk, focus: false });
    },
  });
  for (const a of document.querySelectorAll(".tabs a")) {
    a.addEventListener("click", (e) => {
      e.preventDefault();
      showView(a.dataset.view, { push: true });
    });
  }
  window.addEventListener("popstate", () => location.reload());
  if (app.role === "sensor") notice("A sensor token submits reports only; there is nothing to show it.");
  if (can(app.role, "map")) {
    $("#view-map").hidden = app.state.view && app.state.view !== "map";
    try {
      await initMap();
    } catch (e) {
      notice(errorText(e));
    }
  }
  if (can(app.role, "review")) loadQueue();
  showView(app.state.view || views()[0] || "daily");
  if (app.state.sel && (app.state.view === "map" || app.state.view === "queue")) select(app.state.sel, { pan: !hadView });
}

boot();
