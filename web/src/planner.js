// The planner's view: two candidate scenarios of the agreement on one map (both lines, both buffer
// zones, the land changing hands shaded in the colour of the party that gains it) beside the
// figures of `truceline plan compare` for the two (GET /planner/scenarios, GET /planner/compare).

import L from "leaflet";
import { api, ApiError, qs } from "./api.js";
import { addBaseMap } from "./mapview.js";
import { el, escapeHtml, fmtInt, partyColours, partyName } from "./util.js";

const LINE_A = "#111111";
const LINE_B = "#B0006E"; // a deep magenta: apart from both party colours and the buffer's yellow
const BUFFER_A = "#F2D16B";
const BUFFER_B = "#B9A3D9";

const errorText = (e) => (e instanceof ApiError ? `${e.message}${e.fix ? ` — ${e.fix}` : ""}` : String(e));

export class PlannerView {
  /** root: the view's section; onPick(a, b): the user chose another pair (the URL follows). */
  constructor(root, { onPick }) {
    this.root = root;
    this.onPick = onPick;
    this.$ = (s) => root.querySelector(s);
    this.map = null;
    this.seq = 0;
    this.scenarios = null;
    this.based = false;
    for (const id of ["#plan-a", "#plan-b"]) {
      this.$(id).addEventListener("change", () => this.onPick(this.$("#plan-a").value, this.$("#plan-b").value));
    }
    this.$("#plan-swap").addEventListener("click", () => this.onPick(this.$("#plan-b").value, this.$("#plan-a").value));
  }

  _ensureMap() {
    if (this.map) return;
    this.map = L.map(this.$("#plan-map"), { keyboard: true, minZoom: 3, maxZoom: 14, attributionControl: true });
    this.map.attributionControl.setPrefix(false).addAttribution("Base: Natural Earth (world-atlas); settlements: GeoNames");
    L.control.scale({ imperial: false, position: "bottomright" }).addTo(this.map);
    for (const [name, z] of [["pbase", 200], ["pbuffer", 300], ["pchange", 350], ["pline", 400], ["pplace", 600]]) {
      this.map.createPane(name).style.zIndex = String(z);
    }
    this.map.getPane("pbase").style.pointerEvents = "none";
    this.baseRenderer = L.canvas({ pane: "pbase", padding: 0.5 });
    this.layer = L.layerGroup().addTo(this.map);
  }

  /** Show the pair (null: the server's defaults, the first two scenarios). Resolves to [a, b]. */
  async show(a, b) {
    const seq = ++this.seq;
    const state = this.$("#plan-state");
    document.body.dataset.planner = "";
    this._ensureMap();
    setTimeout(() => this.map.invalidateSize(), 0);
    try {
      if (!this.scenarios) this.scenarios = (await api("/planner/scenarios")).scenarios;
      const ids = this.scenarios.map((s) => s.id);
      a = ids.includes(a) ? a : ids[0];
      b = ids.includes(b) ? b : ids[1] || ids[0];
      this._fillSelects(a, b);
      state.textContent = "Comparing the scenarios (the first time takes a few seconds)…";
      state.className = "muted";
      const view = await api(`/planner/compare${qs({ a, b })}`);
      if (seq !== this.seq) return [a, b];
      await this._render(view);
      if (seq !== this.seq) return [a, b];
      state.textContent = `${view.scenarios[1].name} against ${view.scenarios[0].name}.`;
      this.root.dataset.a = a;
      this.root.dataset.b = b;
      document.body.dataset.planner = "1";
    } catch (e) {
      if (seq !== this.seq) return [a, b];
      state.textContent = errorText(e);
      state.className = "error";
    }
    return [a, b];
  }

  _fillSelects(a, b) {
    for (const [id, chosen] of [["#plan-a", a], ["#plan-b", b]]) {
      const sel = this.$(id);
      sel.replaceChildren(...this.scenarios.map((s) => el("option", { value: s.id, selected: s.id === chosen }, s.name)));
      sel.value = chosen;
    }
  }

  async _render(view) {
    const legend = view.agreement;
    const colours = partyColours(legend);
    const [A, B] = view.scenarios;
    // The base map once, around the lines of the first comparison.
    if (!this.based) {
      this.based = true;
      const [w, s, e, n] = view.bbox;
      addBaseMap(this.map, this.baseRenderer, "/static/countries-10m.json", [w - 20, Math.max(s - 12, -89), e + 20, Math.min(n + 12, 89)])
        .then(() => (document.body.dataset.planbase = "1"))
        .catch(() => (this.$("#plan-state").textContent = "The base map could not be loaded."));
    }
    this.layer.clearLayers();
    const feats = view.geojson.features;
    const of = (layer) => feats.filter((f) => f.properties.layer === layer);
    for (const f of of("buffer")) {
      const p = f.properties;
      const isA = p.role === "a";
      const style = isA
        ? { fillColor: BUFFER_A, fillOpacity: 0.45, color: "#8a7a3a", weight: 0.8, opacity: 0.8, className: "plan-buffer buffer-a" }
        : { fillColor: BUFFER_B, fillOpacity: 0.25, color: "#6A51A3", weight: 1.4, dashArray: "5 4", opacity: 0.9, className: "plan-buffer buffer-b" };
      const lyr = L.geoJSON(f, { style, pane: "pbuffer" });
      lyr.bindTooltip(`${escapeHtml(isA ? A.name : B.name)} (${p.role.toUpperCase()}): ${escapeHtml(p.name)}, ${escapeHtml(partyName(legend, p.side))} side — ${fmtInt(Math.round(p.area_km2))} km²`, { sticky: true });
      this.layer.addLayer(lyr);
    }
    for (const f of of("change")) {
      const p = f.properties;
      const colour = colours.get(p.to_party) || "#7F7F7F";
      const lyr = L.geoJSON(f, { pane: "pchange", style: { fillColor: colour, fillOpacity: 0.55, color: colour, weight: 1.5, opacity: 1, className: `plan-change to-${p.to_party}` } });
      lyr.bindTooltip(
        `Passes from ${escapeHtml(partyName(legend, p.from_party))} to ${escapeHtml(partyName(legend, p.to_party))}: ${fmtInt(Math.round(p.area_km2))} km², ${fmtInt(p.settlements)} settlements, ${fmtInt(p.population)} people`,
        { sticky: true },
      );
      this.layer.addLayer(lyr);
    }
    for (const f of of("line")) {
      const isA = f.properties.role === "a";
      const lyr = L.geoJSON(f, {
        pane: "pline",
        style: isA ? { color: LINE_A, weight: 3.2, opacity: 1, className: "plan-line line-a" } : { color: LINE_B, weight: 3.2, opacity: 1, dashArray: "9 6", className: "plan-line line-b" },
      });
      lyr.bindTooltip(`${isA ? "A" : "B"}: ${escapeHtml(f.properties.name)} (${fmtInt(Math.round(f.properties.length_km))} km)`, { sticky: true });
      this.layer.addLayer(lyr);
    }
    for (const f of of("place")) {
      const p = f.properties;
      const [lon, lat] = f.geometry.coordinates;
      const m = L.circleMarker([lat, lon], { pane: "pplace", radius: 4 + Math.min(4, Math.log10(Math.max(p.population, 10)) - 2), color: "#111", weight: 1, fillColor: colours.get(p.to_party) || "#7F7F7F", fillOpacity: 1, className: "plan-place" });
      m.bindTooltip(`${escapeHtml(p.name)} (${fmtInt(p.population)}): passes to ${escapeHtml(partyName(legend, p.to_party))}`);
      this.layer.addLayer(m);
    }
    const [w, s, e, n] = view.bbox;
    this.map.fitBounds([[s, w], [n, e]], { padding: [16, 16] });
    this._legend(view, colours);
    this._table(view);
  }

  _legend(view, colours) {
    const legend = view.agreement;
    const [A, B] = view.scenarios;
    const sw = (html) => el("span", { class: "sw", "aria-hidden": "true" }, Object.assign(document.createElement("span"), { innerHTML: html }));
    const line = (colour, dash) => `<svg width="26" height="10"><path d="M0 5 H26" stroke="${colour}" stroke-width="3" ${dash ? `stroke-dasharray="${dash}"` : ""}/></svg>`;
    const box = (fill, stroke, op, dash) => `<svg width="18" height="12"><rect x="1" y="1" width="16" height="10" fill="${fill}" fill-opacity="${op}" stroke="${stroke}" ${dash ? `stroke-dasharray="${dash}"` : ""}/></svg>`;
    const gained = new Map();
    for (const c of B.changes) gained.set(c.to_party, (gained.get(c.to_party) || 0) + c.area_km2);
    this.$("#plan-legend").replaceChildren(
      el("div", { class: "key" }, sw(line(LINE_A)), ` A: ${A.name}`),
      el("div", { class: "key" }, sw(line(LINE_B, "6 4")), ` B: ${B.name}`),
      el("div", { class: "key" }, sw(box(BUFFER_A, "#8a7a3a", 0.6)), ` Buffer zone under A`),
      el("div", { class: "key" }, sw(box(BUFFER_B, "#6A51A3", 0.4, "3 2")), ` Buffer zone under B`),
      ...[legend.left, legend.right].map((p) =>
        el("div", { class: "key", "data-gain": p }, sw(box(colours.get(p), colours.get(p), 0.6)), ` Land passing to ${partyName(legend, p)} under B: ${fmtInt(Math.round(gained.get(p) || 0))} km²`),
      ),
    );
    this.$("#plan-desc").replaceChildren(
      ...[["A", A], ["B", B]].map(([k, s]) => el("p", { class: "small" }, el("strong", { text: `${k}: ${s.name}. ` }), s.description || "")),
    );
    this.$("#plan-limits").textContent = view.data_limits;
  }

  _table(view) {
    const [A, B] = view.scenarios;
    const table = this.$("#plan-table");
    table.querySelector("thead").replaceChildren(
      el("tr", {}, el("th", { scope: "col", text: "Figure" }), el("th", { scope: "col", class: "num", title: A.name }, "A", el("span", { class: "sr-only", text: `: ${A.name}` })), el("th", { scope: "col", class: "num", title: B.name }, "B", el("span", { class: "sr-only", text: `: ${B.name}` }))),
    );
    const rows = [];
    let group = null;
    for (const r of view.rows) {
      if (r.group !== group) {
        group = r.group;
        rows.push(el("tr", { class: "group" }, el("th", { scope: "colgroup", colspan: 3, text: group })));
      }
      rows.push(el("tr", { "data-label": r.label }, el("th", { scope: "row", text: r.label, title: r.note || null }), ...r.cells.map((c) => el("td", { class: "num", text: c }))));
    }
    table.querySelector("tbody").replaceChildren(...rows);
  }
}
