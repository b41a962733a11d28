// The map's clusters drawn on one canvas, with a transparent button over each for the pointer,
// the keyboard and screen readers.
//
// A cluster as a Leaflet marker costs a DOM element holding an SVG (parsed, styled, laid out and
// painted one by one) and its event listeners: hundreds of them made each zoom of a year's map
// wait on the page's own work. Here a zoom draws every cluster in one pass on a canvas, and the
// buttons are made from one HTML string: plain elements with no content to paint.

import L from "leaflet";
import { clusterLabel, clusterSize } from "./symbols.js";

// The canvas covers the view and this share of it beyond each edge, so a short drag shows the
// clusters next to the view before the redraw at its end (as the markers did).
const PAD = 0.15;
const RING = 5; // width (px) of the ring of party colours

export const ClusterLayer = L.Layer.extend({
  options: { pane: "points" },

  initialize(options) {
    L.setOptions(this, options);
    this._items = [];
  },

  onAdd() {
    const pane = this.getPane();
    this._canvas = L.DomUtil.create("canvas", "cluster-canvas leaflet-zoom-hide", pane);
    this._hits = L.DomUtil.create("div", "cluster-hits leaflet-zoom-hide", pane);
    // One listener for every button; a click on a cluster is not a click on the map.
    L.DomEvent.on(this._hits, "click", (e) => {
      const b = e.target.closest("button[data-k]");
      if (b && this._items[b.dataset.k]) this._items[b.dataset.k].onClick();
    });
    L.DomEvent.disableClickPropagation(this._hits);
    this._draw();
  },

  onRemove() {
    this._canvas.remove();
    this._hits.remove();
    this._canvas = this._hits = null;
  },

  // The clusters of the old zoom keep their places on the map until the new zoom's come.
  getEvents() {
    return { zoomend: this._draw, viewreset: this._draw };
  },

  /** Draw these clusters, replacing those drawn: each {lat, lon, total, shares: [[key, n], ...]
   * largest first, label, onClick}; ``colourOf(key)`` gives a share's colour. */
  setItems(items, colourOf) {
    this._items = items;
    this._colourOf = colourOf;
    this._draw();
  },

  /** Each drawn cluster's box on the screen (container pixels), for what must not cover it. */
  boxes() {
    return this._drawn || [];
  },

  _draw() {
    if (!this._map || !this._canvas) return;
    const map = this._map;
    const size = map.getSize();
    const pad = size.multiplyBy(PAD).round();
    const topLeft = map.containerPointToLayerPoint([0, 0]).subtract(pad);
    const w = size.x + 2 * pad.x;
    const h = size.y + 2 * pad.y;
    const dpr = window.devicePixelRatio || 1;
    const cv = this._canvas;
    if (cv.width !== Math.round(w * dpr) || cv.height !== Math.round(h * dpr)) {
      cv.width = Math.round(w * dpr);
      cv.height = Math.round(h * dpr);
      cv.style.width = `${w}px`;
      cv.style.height = `${h}px`;
    }
    L.DomUtil.setPosition(cv, topLeft);
    const ctx = cv.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    const origin = map.containerPointToLayerPoint([0, 0]);
    const buttons = [];
    const drawn = [];
    this._items.forEach((c, k) => {
      const p = map.latLngToLayerPoint([c.lat, c.lon]);
      const x = p.x - topLeft.x;
      const y = p.y - topLeft.y;
      const s = clusterSize(c.total);
      if (x < -s || y < -s || x > w + s || y > h + s) return;
      drawCluster(ctx, x, y, s, c.total, c.shares, this._colourOf);
      const l = Math.round(p.x - s / 2);
      const t = Math.round(p.y - s / 2);
      const label = escapeAttr(c.label);
      buttons.push(`<button type="button" class="cluster" data-k="${k}" title="${label}" aria-label="${label}" style="left:${l}px;top:${t}px;width:${s}px;height:${s}px"></button>`);
      drawn.push([p.x - origin.x - s / 2, p.y - origin.y - s / 2, p.x - origin.x + s / 2, p.y - origin.y + s / 2]);
    });
    this._hits.innerHTML = buttons.join("");
    this._drawn = drawn;
  },
});

/** A cluster as the SVG markers drew it: a white disc, a ring in the shares' colours from the top
 * clockwise, the count in the middle. */
function drawCluster(ctx, x, y, size, count, shares, colourOf) {
  const r = size / 2 - 3;
  ctx.beginPath();
  ctx.arc(x, y, r, 0, 2 * Math.PI);
  ctx.fillStyle = "rgba(255, 255, 255, 0.92)";
  ctx.fill();
  const total = shares.reduce((a, s) => a + s[1], 0) || 1;
  ctx.lineWidth = RING;
  let a0 = -Math.PI / 2;
  for (const [key, n] of shares) {
    if (!n) continue;
    const a1 = a0 + (2 * Math.PI * n) / total;
    ctx.beginPath();
    ctx.arc(x, y, r, a0, n === total ? a0 + 2 * Math.PI : a1);
    ctx.strokeStyle = colourOf(key);
    ctx.stroke();
    a0 = a1;
  }
  ctx.font = `700 ${size < 36 ? 11 : 12}px "DejaVu Sans", Arial, sans-serif`;
  ctx.fillStyle = "#111";
  ctx.fillText(clusterLabel(count), x, y + 0.5);
}

function escapeAttr(s) {
  return String(s).replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
}
