// The map: an offline Natural Earth base (world-atlas), the agreement's layers, and the filtered
// findings and incidents, clustered by supercluster when dense and drawn one by one when not.

import L from "leaflet";
import Supercluster from "supercluster";
import { countriesIn } from "./basemap.js";
import { el, escapeHtml, fmtKm, fmtProb, humanise, likelihood, partyName, ZONE_COLOURS } from "./util.js";
import { ClusterLayer } from "./clusterlayer.js";
import { incidentSvg, milIcon, RULE_TYPES, shapeSvg, sidcOf } from "./symbols.js";

// 95 % of a circular Gaussian in 2-D: sqrt(chi-square(2 d.o.f.) at 0.95) = 2.4477 sigma.
const K95 = 2.4477;
// Beyond this many single points in view, draw them as plain dots on one canvas.
const MAX_DOM_POINTS = 1500;
// Withdrawal lines, nearest first: distinct from each other and from the parties' blue and vermillion.
// A sector's label may stand this far (px) outside its sector when the inside is crowded.
const MAX_LABEL_AWAY = 80;
// Sensors: the mission's own equipment, in a colour neither party's nor a zone's.
const SENSOR_COLOUR = "#1b7837";
const PATROL_COLOUR = "#008b8b"; // the patrols' tracks: a dark cyan, neither a party's nor a zone's
const WITHDRAWAL_COLOURS = ["#7b3294", "#c51b7d", "#01665e", "#8c510a", "#4d9221", "#542788"];
// From this zoom on the agreement's layers are drawn at full detail; below it, as the server
// simplifies them for the zoom (to half a pixel: Leaflet re-projects every vertex at each zoom).
const FULL_DETAIL_ZOOM = 14;
// Outlines of other zooms held by the map (each 50-300 kB of GeoJSON).
const DETAILS_HELD = 8;
// How deep a geometry's coordinates nest above a [lon, lat] pair, for L.GeoJSON.coordsToLatLngs.
const DEPTH = { LineString: 0, MultiLineString: 1, Polygon: 1, MultiPolygon: 2 };

/** The zoom whose simplified layers the map draws at zoom ``z`` (null: full detail). */
export function detailZoom(z) {
  return z >= FULL_DETAIL_ZOOM ? null : Math.max(0, Math.round(z));
}

export class MapView {
  constructor(container, { onSelect, onMove, onView = null }) {
    this.onSelect = onSelect;
    this.map = L.map(container, { zoomControl: true, keyboard: true, preferCanvas: false, worldCopyJump: false, minZoom: 3, maxZoom: 16, attributionControl: true });
    this.map.attributionControl.setPrefix(false).addAttribution("Base: Natural Earth (world-atlas)");
    L.control.scale({ imperial: false, position: "bottomright" }).addTo(this.map);
    for (const [name, z] of [["base", 200], ["zones", 300], ["lines", 380], ["ellipses", 420], ["sensors", 450], ["points", 610], ["selected", 640]]) {
      this.map.createPane(name).style.zIndex = String(z);
    }
    this.map.getPane("base").style.pointerEvents = "none";
    this.baseRenderer = L.canvas({ pane: "base", padding: 0.5 });
    this.dotRenderer = L.canvas({ pane: "points", padding: 0.2 });
    this.groups = {
      zones: L.layerGroup().addTo(this.map),
      withdrawal: L.layerGroup().addTo(this.map),
      sectors: L.layerGroup().addTo(this.map),
      labels: L.layerGroup().addTo(this.map),
      line: L.layerGroup().addTo(this.map),
      posts: L.layerGroup().addTo(this.map),
      ellipses: L.layerGroup().addTo(this.map),
      sensors: L.layerGroup().addTo(this.map),
      patrols: L.layerGroup().addTo(this.map),
      points: L.layerGroup().addTo(this.map),
      selected: L.layerGroup().addTo(this.map),
    };
    this.clusterLayer = new ClusterLayer({ pane: "points" }).addTo(this.map);
    this.visible = { zones: true, withdrawal: true, sectors: true, posts: true, sensors: true, patrols: true, findings: true, incidents: true, ellipses: true };
    this.patrolCount = 0; // patrol tracks drawn (none: the switch is not offered)
    this.sensorCount = 0; // sensors drawn (none: the layer and its switch are not offered)
    this.index = null;
    this.data = null;
    this.selected = null;
    this.selectedShape = null;
    // A new zoom's outlines replace the old before Leaflet re-projects them (at zoomend and
    // viewreset, after "zoom"), when the map holds them; else they are asked for at its end.
    this.map.on("zoom", () => this._showDetail({ fetch: false, redraw: false }));
    this.map.on("zoomend", () => this._showDetail({ fetch: true, redraw: true }));
    const zoomClass = () => this.map.getContainer().classList.toggle("far", this.map.getZoom() < 6);
    this.map.on("zoomend", zoomClass);
    this.map.whenReady(zoomClass);
    this.map.on("moveend", () => {
      if (onView) onView(); // the page may fetch the view's clusters or points
      // The server's clusters of another zoom are not drawn again here: the page draws this
      // zoom's when they come (often at once, from its hold).
      if (!this.clusters || this.clusters.zoom === this.map.getZoom()) this.render();
      const c = this.map.getCenter();
      onMove({ z: this.map.getZoom(), lat: c.lat, lon: c.lng });
    });
  }

  /** The Natural Earth countries, clipped to a box around the agreement ([w, s, e, n], degrees). */
  async loadBase(url, box) {
    await addBaseMap(this.map, this.baseRenderer, url, box);
  }

  /** The legend (GET /dashboard/legend) and the party colours. */
  setLegend(legend, colourOf) {
    this.legend = legend;
    this.colourOf = colourOf;
    this.ruleTypes = new Map(legend.rules.map((r) => [r.id, r.type]));
    // The first view: the line (where findings are), or the area of application when nothing is
    // stored yet (main.js chooses).
    const box = ([w, s, e, n]) => L.latLngBounds([s, w], [n, e]);
    this.lineBounds = box(this.fitArea ? legend.area_bbox || legend.bbox : legend.bbox);
  }

  /** The zoom at which the first view (the line, see fitLine) shows ``legend``'s bounds. */
  fitZoom(legend) {
    const [w, s, e, n] = legend.bbox;
    return this.map.getBoundsZoom(L.latLngBounds([s, w], [n, e]), false, L.point(40, 40));
  }

  /** The agreement's layers (GET /dashboard/layers), simplified for zoom ``zoom`` by the server
   * (null: full detail); ``detailFor(zoom)`` gives (a promise of) the same layers for another. */
  setLayers(fc, { zoom = null, detailFor = null } = {}) {
    const legend = this.legend;
    for (const g of ["zones", "withdrawal", "sectors", "labels", "line", "posts"]) this.groups[g].clearLayers();
    this.shapes = []; // { layer, i }: the drawn line or outline of feature i
    this.layerKinds = fc.features.map((f) => f.properties.layer);
    this.shownDetail = zoom;
    this.details = new Map([[zoom, fc]]);
    this.detailFor = detailFor;
    this.sectorLabels = [];
    this.postPoints = [];
    const zoneIds = [...new Set(fc.features.filter((f) => f.properties.layer === "zone").map((f) => f.properties.zone))];
    this.zoneColours = new Map(zoneIds.map((z, i) => [z, ZONE_COLOURS[i % ZONE_COLOURS.length]]));
    const wdDistances = [...new Set(fc.features.filter((f) => f.properties.layer === "withdrawal").map((f) => f.properties.distance_km))].sort((a, b) => a - b);
    this.withdrawalColours = new Map(wdDistances.map((d, i) => [d, WITHDRAWAL_COLOURS[i % WITHDRAWAL_COLOURS.length]]));
    this.withdrawalInfo = new Map();
    for (const f of fc.features) {
      if (f.properties.layer !== "withdrawal") continue;
      const names = this.withdrawalInfo.get(f.properties.distance_km) || [];
      for (const n of f.properties.weapon_classes) if (!names.includes(n)) names.push(n);
      this.withdrawalInfo.set(f.properties.distance_km, names);
    }
    this.withdrawalInfo = new Map([...this.withdrawalInfo].sort((a, b) => a[0] - b[0]));
    let bounds = null;
    for (const [i, f] of fc.features.entries()) {
      const p = f.properties;
      const shape = (group) => this.shapes.push({ layer: group.getLayers()[0], i });
      if (p.layer === "zone") {
        const layer = L.geoJSON(f, { pane: "zones", style: { fillColor: this.zoneColours.get(p.zone), fillOpacity: p.buffer ? 0.5 : 0.35, color: "#8a7a3a", weight: 0.6, opacity: 0.7 } });
        layer.bindTooltip(`${escapeHtml(p.name)} — ${escapeHtml(partyName(legend, p.side))} side${p.from_km !== null && p.from_km !== undefined ? ` (${p.from_km}–${p.to_km} km)` : ""}`, { sticky: true });
        layer.feature = f;
        this.groups.zones.addLayer(layer);
        shape(layer);
      } else if (p.layer === "withdrawal") {
        const colour = this.withdrawalColours.get(p.distance_km);
        const layer = L.geoJSON(f, { pane: "lines", style: { color: colour, weight: 1.6, dashArray: "6 4", opacity: 0.9 } });
        layer.bindTooltip(`Withdrawal line ${p.distance_km} km on the ${escapeHtml(partyName(legend, p.side))} side: ${escapeHtml(p.weapon_classes.join("; "))}`, { sticky: true });
        this.groups.withdrawal.addLayer(layer);
        shape(layer);
      } else if (p.layer === "sector") {
        const layer = L.geoJSON(f, { pane: "lines", style: { color: "#555", weight: 1.2, dashArray: "3 4", fill: false } });
        layer.bindTooltip(`${escapeHtml(p.name || p.id)}${p.nation ? ` — ${escapeHtml(p.nation)}` : ""}`, { sticky: true });
        this.groups.sectors.addLayer(layer);
        shape(layer);
        // The label is placed where it hides no cluster (see _placeLabels), inside its sector.
        const name = (p.name || p.id).split(" (")[0];
        const nation = p.nation || "";
        const marker = L.marker(L.geoJSON(f).getBounds().getCenter(), { pane: "lines", interactive: false, keyboard: false, icon: L.divIcon({ className: "sector-label", html: `<span>${escapeHtml(name)}<br><b>${escapeHtml(nation)}</b></span>`, iconSize: null }) });
        const g = f.geometry;
        const rings = g.type === "Polygon" ? [g.coordinates[0]] : g.type === "MultiPolygon" ? g.coordinates.map((c) => c[0]) : [];
        // Size of the label box in pixels (10 px type, as the CSS sets it), estimated from its text.
        const w = Math.max(name.length, nation.length * 1.1) * 6.2 + 12;
        this.sectorLabels.push({ marker, rings, centre: marker.getLatLng(), w, h: 30 });
      } else if (p.layer === "line") {
        const layer = L.geoJSON(f, { pane: "lines", style: { color: "#111", weight: 3.2, opacity: 1 } });
        layer.bindTooltip(`Line of contact (${fmtKm(p.length_km, 0)})`, { sticky: true });
        this.groups.line.addLayer(layer);
        shape(layer);
        bounds = layer.getBounds();
      } else if (p.layer === "observation_post") {
        const [lon, lat] = f.geometry.coordinates;
        const m = L.marker([lat, lon], { pane: "lines", keyboard: false, icon: L.divIcon({ className: "op-icon", html: '<svg width="12" height="12" viewBox="0 0 12 12" aria-hidden="true"><path d="M6 1 L11 11 H1 Z" fill="#fff" stroke="#111" stroke-width="1.3"/></svg>', iconSize: [12, 12], iconAnchor: [6, 7] }) });
        m.bindTooltip(`Observation post ${escapeHtml(p.id)}${p.name ? ` — ${escapeHtml(p.name)}` : ""}`);
        this.groups.posts.addLayer(m);
        this.postPoints.push(L.latLng(lat, lon));
      }
    }
    this._placeLabels();
    this._showDetail({ fetch: true, redraw: true }); // the map's zoom may be another by now
    return bounds;
  }

  /** Draw the layers' outlines simplified for the map's zoom: at once if held; else, with
   * ``fetch``, asked for and drawn when they come (if the zoom is still the same). ``redraw``
   * false: only the coordinates are replaced, for Leaflet's projection that follows. */
  _showDetail({ fetch, redraw }) {
    if (!this.detailFor || !this.shapes) return;
    const want = detailZoom(this.map.getZoom());
    if (want === this.shownDetail) return;
    const held = this.details.get(want);
    if (held) {
      this._applyDetail(held, want, redraw);
      return;
    }
    if (!fetch) return;
    const shapes = this.shapes;
    this.prefetchDetail(want)
      .then((fc) => {
        if (this.shapes === shapes && detailZoom(this.map.getZoom()) === want) this._applyDetail(fc, want, true);
      })
      .catch(() => {}); // the outlines drawn stay as they are
  }

  /** Ask for the layers simplified for ``zoom`` (a detail zoom, see detailZoom) and hold them. */
  prefetchDetail(zoom) {
    if (!this.detailFor) return Promise.resolve(null);
    if (this.details.has(zoom)) return Promise.resolve(this.details.get(zoom));
    const details = this.details;
    return Promise.resolve(this.detailFor(zoom)).then((fc) => {
      details.set(zoom, fc);
      while (details.size > DETAILS_HELD) details.delete(details.keys().next().value);
      return fc;
    });
  }

  _applyDetail(fc, zoom, redraw) {
    // The same features in the same order, or nothing is replaced.
    if (fc.features.length !== this.layerKinds.length || fc.features.some((f, i) => f.properties.layer !== this.layerKinds[i])) return;
    for (const { layer, i } of this.shapes) {
      const g = fc.features[i].geometry;
      const latlngs = L.GeoJSON.coordsToLatLngs(g.coordinates, DEPTH[g.type]);
      // _setLatLngs: the coordinates without a redraw (Leaflet 1.9's own step of setLatLngs),
      // inside a zoom whose projection and drawing follow.
      if (redraw) layer.setLatLngs(latlngs);
      else layer._setLatLngs(latlngs);
    }
    this.shownDetail = zoom;
  }

  /** Put each sector's label where it overlaps no cluster, symbol, post or other label: of the free
   * spots on rings of growing radius around the sector's centre, the first inside the sector, else
   * the one nearest its outline (within 80 px); a label with no such spot in view waits for a
   * closer zoom. Runs after every redraw of the points. */
  _placeLabels() {
    if (!this.sectorLabels || !this.map._loaded) return;
    this.groups.labels.clearLayers();
    if (!this.visible.sectors || this.map.getZoom() < 6) return; // too far: the names would crowd
    const size = this.map.getSize();
    const boxes = [...(this.obstacles || [])];
    if (this.visible.posts) {
      for (const ll of this.postPoints || []) {
        const p = this.map.latLngToContainerPoint(ll);
        boxes.push([p.x - 7, p.y - 7, p.x + 7, p.y + 7]);
      }
    }
    const hits = (b) => boxes.some((o) => b[0] < o[2] && b[2] > o[0] && b[1] < o[3] && b[3] > o[1]);
    const offsets = [[0, 0]];
    for (const r of [30, 60, 90, 120, 150, 180, 210, 240]) {
      for (let k = 0; k < 12; k++) offsets.push([r * Math.cos((k * Math.PI) / 6), r * Math.sin((k * Math.PI) / 6)]);
    }
    this.labelsShown = 0;
    for (const lab of this.sectorLabels) {
      // The sector's outline on the screen; a spot's distance to it (0 inside).
      const rings = lab.rings.map((ring) => ring.map(([lon, lat]) => this.map.latLngToContainerPoint([lat, lon])));
      const away = (x, y) => {
        const ll = this.map.containerPointToLatLng([x, y]);
        if (lab.rings.some((ring) => inRing(ll.lng, ll.lat, ring))) return 0;
        let best = Infinity;
        for (const r of rings) for (let i = 1; i < r.length; i++) best = Math.min(best, segmentDistance(x, y, r[i - 1], r[i]));
        return best;
      };
      const c = this.map.latLngToContainerPoint(lab.centre);
      let chosen = null;
      for (const [dx, dy] of offsets) {
        const x = c.x + dx;
        const y = c.y + dy;
        const b = [x - lab.w / 2 - 3, y - lab.h / 2 - 3, x + lab.w / 2 + 3, y + lab.h / 2 + 3];
        if (b[0] < 0 || b[1] < 0 || b[2] > size.x || b[3] > size.y || hits(b)) continue;
        const d = away(x, y);
        if (d <= MAX_LABEL_AWAY && (!chosen || d < chosen.d)) chosen = { x, y, b, d };
        if (d === 0) break; // inside its sector, nearest the centre: as good as it gets
      }
      if (!chosen) continue;
      lab.marker.setLatLng(this.map.containerPointToLatLng([chosen.x, chosen.y]));
      this.groups.labels.addLayer(lab.marker);
      boxes.push(chosen.b);
      this.labelsShown++;
    }
  }

  /** The agreement's sensors (GET /sensors: GeoJSON points with id, network, kind, status and
   * detections in the last 24 h). Active: filled; retired: hollow and dashed. */
  setSensors(fc) {
    this.groups.sensors.clearLayers();
    const feats = (fc && fc.features) || [];
    for (const f of feats) {
      const p = f.properties || {};
      const [lon, lat] = f.geometry.coordinates;
      const active = p.status !== "retired";
      const m = L.circleMarker([lat, lon], {
        pane: "sensors",
        radius: 5,
        color: active ? "#ffffff" : "#555555",
        weight: active ? 1.5 : 1.5,
        dashArray: active ? null : "2 2",
        fillColor: active ? SENSOR_COLOUR : "#ffffff",
        fillOpacity: 1,
        className: `sensor ${active ? "active" : "retired"}`,
      });
      m.bindTooltip(`Sensor ${escapeHtml(p.id)}${active ? "" : " (retired)"}`);
      m.bindPopup(
        `<div class="sensor-popup"><strong>Sensor ${escapeHtml(p.id)}</strong><dl class="kv">` +
          `<dt>Network</dt><dd>${escapeHtml(p.network || "—")}</dd>` +
          `<dt>Kind</dt><dd>${escapeHtml(humanise(p.kind || "—"))}</dd>` +
          `<dt>Status</dt><dd>${active ? "active" : "retired"}</dd>` +
          `<dt>Detections, 24 h</dt><dd>${Number(p.detections_24h || 0).toLocaleString("en-GB")}</dd>` +
          `<dt>Position</dt><dd>${lat.toFixed(4)}° N, ${lon.toFixed(4)}° E</dd></dl></div>`,
      );
      this.groups.sensors.addLayer(m);
    }
    this.sensorCount = feats.length;
    this.sensorsActive = feats.filter((f) => (f.properties || {}).status !== "retired").length;
  }

  /** The patrols' tracks (GET /dashboard/patrols: a line per device, a point when it reported
   * once), with the last position marked and the callsign, team and times in a tooltip. */
  setPatrols(fc) {
    this.groups.patrols.clearLayers();
    const feats = (fc && fc.features) || [];
    for (const f of feats) {
      const p = f.properties || {};
      const pts = f.geometry.type === "Point" ? [f.geometry.coordinates] : f.geometry.coordinates;
      const ll = pts.map(([lon, lat]) => [lat, lon]);
      const tip = `Patrol ${escapeHtml(p.callsign || p.uid)}${p.team ? ` (${escapeHtml(p.team)})` : ""}: ${p.positions} position${p.positions === 1 ? "" : "s"}, ${escapeHtml(String(p.first).slice(0, 16).replace("T", " "))} to ${escapeHtml(String(p.last).slice(11, 16))} UTC`;
      if (ll.length > 1) {
        const line = L.polyline(ll, { pane: "sensors", color: PATROL_COLOUR, weight: 2.5, opacity: 0.85, className: "patrol-track" });
        line.bindTooltip(tip, { sticky: true });
        this.groups.patrols.addLayer(line);
      }
      const last = L.circleMarker(ll[ll.length - 1], { pane: "sensors", radius: 4, color: "#ffffff", weight: 1.5, fillColor: PATROL_COLOUR, fillOpacity: 1, className: "patrol-last" });
      last.bindTooltip(tip);
      this.groups.patrols.addLayer(last);
    }
    this.patrolCount = feats.length;
  }

  fitLine() {
    if (this.lineBounds) this.map.fitBounds(this.lineBounds, { padding: [20, 20] });
  }

  setVisible(layer, on) {
    this.visible[layer] = on;
    const g = { zones: "zones", withdrawal: "withdrawal", sectors: "sectors", posts: "posts", sensors: "sensors", patrols: "patrols" }[layer];
    if (g) {
      if (on) this.groups[g].addTo(this.map);
      else this.groups[g].remove();
      if (g === "sectors" || g === "posts") this._placeLabels();
    } else {
      this.index = null; // findings / incidents / ellipses: rebuild the points
      this.render();
    }
  }

  /** The filtered data (GET /dashboard/features): every point of the selection, or of the view. */
  setData(data) {
    this.data = data;
    this.clusters = null;
    this.index = null;
    this.render();
  }

  /** Clusters counted by the server per grid cell (GET /dashboard/clusters): a year's overview,
   * drawn without fetching the points. */
  setClusters(clusters) {
    this.clusters = clusters;
    this.data = null;
    this.index = null;
    this.render();
  }

  _renderServerClusters() {
    const c = this.clusters;
    this.groups.points.clearLayers();
    this.groups.ellipses.clearLayers();
    const b = this.map.getBounds().pad(0.15);
    const parties = Object.entries(c.by_party);
    const items = [];
    for (let k = 0; k < c.n; k++) {
      const lat = c.lat[k];
      const lon = c.lon[k];
      if (!b.contains([lat, lon])) continue;
      const shares = [];
      if (this.visible.findings) for (const [p, col] of parties) if (col[k]) shares.push([p, col[k]]);
      if (this.visible.incidents && c.incidents[k]) shares.push(["", c.incidents[k]]);
      const total = shares.reduce((a, [, n]) => a + n, 0);
      if (!total) continue;
      shares.sort((x, y) => y[1] - x[1]);
      items.push({ lat, lon, total, shares, label: this._clusterLabel(total, shares), onClick: () => this.map.flyTo([lat, lon], Math.min(this.map.getZoom() + 2, 16), { duration: 0.4 }) });
    }
    this.clusterLayer.setItems(items, this._shareColour());
    this.drawn = { clusters: items.length, singles: 0, dom: true, server: true };
    this.obstacles = [...this.clusterLayer.boxes()];
    this._placeLabels();
  }

  /** What a cluster's button says: its count, then each share. */
  _clusterLabel(total, shares) {
    return `Cluster of ${total}: ` + shares.map(([key, n]) => `${n} ${key ? partyName(this.legend, key) : "other incidents"}`).join(", ");
  }

  /** The colour of a cluster's share: the party's, grey for incidents without findings (""). */
  _shareColour() {
    return (key) => (key ? this.colourOf(key) : "#9a9a9a");
  }

  _buildIndex() {
    const d = this.data;
    const codes = d.codes;
    const pts = [];
    const F = d.findings;
    if (this.visible.findings) {
      for (let i = 0; i < F.n; i++) {
        pts.push({ type: "Feature", geometry: { type: "Point", coordinates: [F.lon[i], F.lat[i]] }, properties: { s: 0, i, k: codes.party[F.party[i]] || "undetermined" } });
      }
    }
    const I = d.incidents;
    if (this.visible.incidents && I.n) {
      for (let i = 0; i < I.n; i++) {
        pts.push({ type: "Feature", geometry: { type: "Point", coordinates: [I.lon[i], I.lat[i]] }, properties: { s: 1, i, k: "" } });
      }
    }
    const index = new Supercluster({
      radius: 56,
      maxZoom: 10,
      minPoints: 3,
      map: (p) => ({ c: { [p.k]: 1 } }),
      reduce: (acc, p) => {
        for (const [k, n] of Object.entries(p.c)) acc.c[k] = (acc.c[k] || 0) + n;
      },
    });
    index.load(pts);
    this.index = index;
  }

  /** Draw what is in view: clusters, single points (symbols or dots) and error circles. */
  render() {
    if (this.clusters && this.map._loaded) return this._renderServerClusters();
    if (!this.data || !this.map._loaded) return; // no view yet: nothing to draw into
    if (!this.index) this._buildIndex();
    const b = this.map.getBounds().pad(0.15);
    const z = this.map.getZoom();
    const items = this.index.getClusters([Math.max(b.getWest(), -180), Math.max(b.getSouth(), -85), Math.min(b.getEast(), 180), Math.min(b.getNorth(), 85)], Math.round(z));
    this.groups.points.clearLayers();
    this.groups.ellipses.clearLayers();
    const singles = items.filter((c) => !c.properties.cluster);
    const dom = singles.length <= MAX_DOM_POINTS;
    const F = this.data.findings;
    const I = this.data.incidents;
    const codes = this.data.codes;
    const obstacles = [];
    const block = (lat, lon, half) => {
      const p = this.map.latLngToContainerPoint([lat, lon]);
      obstacles.push([p.x - half, p.y - half, p.x + half, p.y + half]);
    };
    const clusters = [];
    for (const c of items) {
      const [lon, lat] = c.geometry.coordinates;
      if (c.properties.cluster) {
        const shares = Object.entries(c.properties.c).sort((a, b) => b[1] - a[1]);
        const total = c.properties.point_count;
        const onClick = () => {
          const zoom = Math.min(this.index.getClusterExpansionZoom(c.properties.cluster_id), 14);
          this.map.flyTo([lat, lon], zoom, { duration: 0.4 });
        };
        clusters.push({ lat, lon, total, shares, label: this._clusterLabel(total, shares), onClick });
        continue;
      }
      const { s, i } = c.properties;
      const id = s === 0 ? `f${F.pk[i]}` : `i${I.pk[i]}`;
      const sel = this.selected === id;
      block(lat, lon, dom ? 12 : 5);
      if (s === 0) {
        const party = codes.party[F.party[i]] || "undetermined";
        const colour = this.colourOf(party);
        const rule = codes.rule[F.rule[i]];
        const ruleType = this.ruleTypes.get(rule) || "zone_ban";
        const p = F.p[i];
        const tip = `${humanise(codes.kind[F.kind[i]])}: ${rule} — ${partyName(this.legend, party)}, ${likelihood(p)} (${fmtProb(p)})`;
        let layer;
        if (dom) {
          const sidc = sidcOf(codes.kind[F.kind[i]], codes.wc[F.wc[i]]);
          if (sidc) {
            const ic = milIcon(sidc, colour);
            const ring = sel ? " selected" : "";
            layer = L.marker([lat, lon], { pane: "points", title: tip, alt: tip, opacity: 0.55 + 0.45 * p, icon: L.icon({ iconUrl: ic.url, iconSize: [ic.w, ic.h], iconAnchor: [ic.ax, ic.ay], className: `mil${ring}` }) });
          } else {
            layer = L.marker([lat, lon], { pane: "points", title: tip, alt: tip, icon: L.divIcon({ className: `shape${sel ? " selected" : ""}`, html: shapeSvg(ruleType, colour, { opacity: 0.45 + 0.55 * p, selected: sel }), iconSize: [16, 16] }) });
          }
        } else {
          layer = L.circleMarker([lat, lon], { renderer: this.dotRenderer, radius: 4, fillColor: colour, fillOpacity: 0.45 + 0.55 * p, color: "#111", weight: 0.6 });
          layer.bindTooltip(tip);
        }
        layer.on("click", () => this.onSelect(id));
        this.groups.points.addLayer(layer);
        if (dom && this.visible.ellipses && z >= 9 && F.unc[i]) this._circle(lat, lon, F.unc[i], colour);
      } else {
        const tip = `${humanise(codes.kind[I.kind[i]])} (no finding) — ${humanise(codes.status[I.status[i]])}`;
        const layer = dom
          ? L.marker([lat, lon], { pane: "points", title: tip, alt: tip, icon: L.divIcon({ className: `incident${sel ? " selected" : ""}`, html: incidentSvg(sel ? 14 : 10), iconSize: sel ? [14, 14] : [10, 10] }) })
          : L.circleMarker([lat, lon], { renderer: this.dotRenderer, radius: 2.5, fillColor: "#fff", fillOpacity: 0.8, color: "#444", weight: 1 });
        layer.on("click", () => this.onSelect(id));
        this.groups.points.addLayer(layer);
        if (dom && this.visible.ellipses && z >= 9 && I.unc[i]) this._circle(lat, lon, I.unc[i], "#666");
      }
    }
    this.clusterLayer.setItems(clusters, this._shareColour());
    this.drawn = { clusters: clusters.length, singles: singles.length, dom, server: false };
    this.obstacles = [...obstacles, ...this.clusterLayer.boxes()];
    this._placeLabels();
  }

  _circle(lat, lon, sigma, colour) {
    this.groups.ellipses.addLayer(L.circle([lat, lon], { pane: "ellipses", radius: K95 * sigma, color: colour, weight: 0.8, opacity: 0.7, fillOpacity: 0.06, interactive: false }));
  }

  /** Highlight a finding or incident ("f12" / "i34"); draw its 95 % ellipse from its detail. */
  select(id, detail = null, { pan = false } = {}) {
    this.selected = id;
    this.groups.selected.clearLayers();
    if (detail && Number.isFinite(detail.lat) && Number.isFinite(detail.lon)) {
      const shape = errorShape(detail);
      this.groups.selected.addLayer(L.polygon(shape, { pane: "selected", color: "#000", weight: 1.5, dashArray: "4 3", fillColor: "#000", fillOpacity: 0.06, interactive: false }));
      this.groups.selected.addLayer(L.circleMarker([detail.lat, detail.lon], { pane: "selected", radius: 11, color: "#000", weight: 2, fill: false, interactive: false }));
      if (Number.isFinite(detail.origin_lat) && Number.isFinite(detail.origin_lon)) {
        this.groups.selected.addLayer(L.polyline([[detail.origin_lat, detail.origin_lon], [detail.lat, detail.lon]], { pane: "selected", color: "#000", weight: 1.5, dashArray: "2 4", interactive: false }));
        this.groups.selected.addLayer(L.circle([detail.origin_lat, detail.origin_lon], { pane: "selected", radius: K95 * (detail.origin_uncertainty_m || 0), color: "#000", weight: 1, fillOpacity: 0.04, interactive: false }));
      }
      if (detail.ambiguous && Number.isFinite(detail.alt_lat) && Number.isFinite(detail.alt_lon)) {
        // the second fix of an ambiguous acoustic event (the mirror image across the sensors'
        // line): a hollow ring joined to the first, with its probability
        const tip = `second fix, probability ${(detail.alt_weight ?? 0).toFixed(2)}`;
        this.groups.selected.addLayer(L.polyline([[detail.alt_lat, detail.alt_lon], [detail.lat, detail.lon]], { pane: "selected", color: "#b00", weight: 1.2, dashArray: "1 5", interactive: false }));
        this.groups.selected.addLayer(L.circleMarker([detail.alt_lat, detail.alt_lon], { pane: "selected", radius: 9, color: "#b00", weight: 2, dashArray: "3 3", fill: false, interactive: false }).bindTooltip(tip, { permanent: true, direction: "right", className: "alt-fix" }));
      }
      if (pan) {
        // Centre it in the part of the map the panel leaves free.
        const z = Math.max(this.map.getZoom(), 11);
        const panel = document.querySelector("#panel");
        const dx = panel && !panel.hidden ? panel.offsetWidth / 2 : 0;
        const pt = this.map.project([detail.lat, detail.lon], z).add([dx, 0]);
        this.map.setView(this.map.unproject(pt, z), z, { animate: false });
      }
    }
    this.render();
  }

  clearSelection() {
    this.selected = null;
    this.groups.selected.clearLayers();
    this.render();
  }

  /** The legend: layer switches, party colours, rule shapes, symbols. */
  legendElement(onToggle, { incidents = true } = {}) {
    const sensorSw = (fill, stroke, dash) => `<svg width="12" height="12"><circle cx="6" cy="6" r="4.5" fill="${fill}" stroke="${stroke}" stroke-width="1.5" ${dash ? 'stroke-dasharray="2 2"' : ""}/></svg>`;
    const box = el("div", { class: "legend-inner" });
    const toggle = (key, label, swatch) =>
      el("label", { class: "toggle" }, el("input", { type: "checkbox", checked: this.visible[key], "data-layer": key, onchange: (e) => onToggle(key, e.target.checked) }), swatch, label);
    const sw = (html) => el("span", { class: "sw", "aria-hidden": "true" }, Object.assign(document.createElement("span"), { innerHTML: html }));
    const parts = [
      el("h3", { text: "Layers" }),
      toggle("findings", " Findings", null),
      incidents ? toggle("incidents", " Other incidents", sw(incidentSvg(10))) : null,
      incidents ? toggle("ellipses", " 95 % error circles (zoom in)", null) : null,
      toggle("zones", " Zones", null),
      toggle("withdrawal", " Withdrawal lines", null),
      ...[...(this.withdrawalInfo || new Map())].map(([km, names]) =>
        el("div", { class: "key sub", title: names.join("; ") }, sw(`<svg width="22" height="8"><path d="M0 4 H22" stroke="${this.withdrawalColours.get(km)}" stroke-width="2" stroke-dasharray="5 3"/></svg>`), ` ${km} km: ${shortNames(names)}`),
      ),
      toggle("sectors", " Sectors", sw('<svg width="22" height="8"><path d="M0 4 H22" stroke="#555" stroke-width="1.5" stroke-dasharray="3 3"/></svg>')),
      incidents ? toggle("posts", " Observation posts", sw('<svg width="12" height="12"><path d="M6 1 L11 11 H1 Z" fill="#fff" stroke="#111" stroke-width="1.3"/></svg>')) : null,
      this.sensorCount ? toggle("sensors", ` Acoustic sensors (${this.sensorsActive} active)`, sw(sensorSw(SENSOR_COLOUR, "#333"))) : null,
      this.sensorCount && this.sensorsActive < this.sensorCount ? el("div", { class: "key sub" }, sw(sensorSw("#fff", "#555", true)), ` retired (${this.sensorCount - this.sensorsActive})`) : null,
      this.patrolCount ? toggle("patrols", ` Patrol tracks (${this.patrolCount})`, sw(`<svg width="22" height="8"><path d="M0 4 H22" stroke="${PATROL_COLOUR}" stroke-width="2.5"/></svg>`)) : null,
      el("h3", { text: "Responsible party" }),
      ...[this.legend.left, this.legend.right, "undetermined"].map((p) => el("div", { class: "key" }, sw(`<svg width="12" height="12"><circle cx="6" cy="6" r="5" fill="${this.colourOf(p)}" stroke="#111"/></svg>`), ` ${partyName(this.legend, p)}`)),
      el("h3", { text: "Rule type" }),
      ...RULE_TYPES.map((t) => el("div", { class: "key" }, sw(shapeSvg(t, "#bbb", { size: 13 })), ` ${humanise(t)}`)),
      el("p", { class: "small muted", text: "Weapons, troops, vehicles, drones: APP-6 / MIL-STD-2525 symbols in the party's colour. Fainter: lower probability." }),
    ];
    box.append(...parts.filter(Boolean)); // DOM append() would write a null as "null"
    return box;
  }
}

/** The Natural Earth countries on a map, clipped to a box around the agreement ([w, s, e, n],
 * degrees): Leaflet re-projects every vertex of a layer at each zoom, and the world at 1:10m is
 * ~500,000. The view is kept inside the box, so the clipped edges are never on screen. */
const bases = new Map(); // url + box -> promise of the clipped countries: the map and the planner share one

/** The base map's countries clipped to ``box`` (lon/lat), decoded in a worker: the 3.6 MB world
 * at 1:10m is parsed and clipped off the page's thread, which meanwhile draws the data (the main
 * thread's work on it was most of a first load's second); on the page's thread if no worker. */
function baseFeatures(url, box) {
  const href = new URL(url, location.href).href;
  const key = `${href}|${box}`;
  if (!bases.has(key)) {
    const inPage = () => fetch(href).then((r) => r.json()).then((topo) => countriesIn(topo, box));
    let p;
    try {
      const w = new Worker("/static/basemap-worker.js");
      p = new Promise((ok, fail) => {
        w.onmessage = (e) => (e.data.error ? fail(new Error(e.data.error)) : ok(e.data.features));
        w.onerror = (e) => {
          e.preventDefault();
          fail(new Error(e.message || "the base map's worker failed"));
        };
        w.postMessage({ url: href, box });
      })
        .finally(() => w.terminate())
        .catch(inPage);
    } catch {
      p = inPage();
    }
    bases.set(key, p);
  }
  return bases.get(key);
}

export async function addBaseMap(map, renderer, url, box) {
  const features = await baseFeatures(url, box);
  if (box) {
    const bounds = L.latLngBounds([box[1], box[0]], [box[3], box[2]]);
    map.setMaxBounds(bounds);
    map.options.maxBoundsViscosity = 1.0;
    map.setMinZoom(Math.max(map.getBoundsZoom(bounds, true), 3));
  }
  L.geoJSON({ type: "FeatureCollection", features }, {
    renderer,
    interactive: false,
    style: { fillColor: "#f3f1ea", fillOpacity: 1, color: "#a8a294", weight: 0.8 },
  }).addTo(map);
}


/** Distance (px) from (x, y) to the segment a-b (container points). */
function segmentDistance(x, y, a, b) {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const t = dx || dy ? Math.max(0, Math.min(1, ((x - a.x) * dx + (y - a.y) * dy) / (dx * dx + dy * dy))) : 0;
  return Math.hypot(x - (a.x + t * dx), y - (a.y + t * dy));
}

/** Whether a lon/lat point lies inside a ring of [lon, lat] vertices (even-odd rule). */
export function inRing(x, y, ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Weapon class names, shortened for the legend ("Main battle tank (gun)" -> "Main battle tank"). */
function shortNames(names) {
  return names.map((n) => n.split(" (")[0]).join(", ");
}

/** The 95 % error region of an incident as lat/lon points: the acoustic ellipse when the report
 * gives one ("95 % ellipse A x B m, major axis C deg"), else a circle of 2.45 sigma. */
export function errorShape(d) {
  const m = /95 % ellipse (\d+(?:\.\d+)?) x (\d+(?:\.\d+)?) m, major axis (-?\d+(?:\.\d+)?) deg/.exec(d.narrative || "");
  // semi-axes: the narrative's ellipse figures are full semi-axis lengths in metres
  const a = m ? Number(m[1]) : K95 * (d.uncertainty_m || 0);
  const b = m ? Number(m[2]) : a;
  const theta = ((m ? Number(m[3]) : 0) * Math.PI) / 180; // azimuth of the major axis, clockwise from north
  const mPerDegLat = 111320;
  const mPerDegLon = 111320 * Math.cos((d.lat * Math.PI) / 180);
  const out = [];
  for (let k = 0; k < 72; k++) {
    const t = (2 * Math.PI * k) / 72;
    const u = a * Math.cos(t); // along the major axis
    const v = b * Math.sin(t);
    const east = u * Math.sin(theta) + v * Math.cos(theta);
    const north = u * Math.cos(theta) - v * Math.sin(theta);
    out.push([d.lat + north / mPerDegLat, d.lon + east / mPerDegLon]);
  }
  return out;
}
