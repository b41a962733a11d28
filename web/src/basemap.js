// The base map's countries (world-atlas TopoJSON) as GeoJSON features clipped to a lon/lat box:
// shared by the page and the worker that decodes the base map off the page's thread.

import { feature } from "topojson-client";

/** The countries of ``topo`` clipped a little beyond ``box`` (the cut edges stay off screen). */
export function countriesIn(topo, box) {
  const countries = feature(topo, topo.objects.countries);
  if (!box) return countries.features;
  return clipFeatures(countries.features, [box[0] - 4, Math.max(box[1] - 3, -89), box[2] + 4, Math.min(box[3] + 3, 89)]);
}

/** Clip polygon features to a lon/lat box (Sutherland-Hodgman per ring); drops what falls outside. */
export function clipFeatures(features, [w, s, e, n]) {
  const inside = [(p) => p[0] >= w, (p) => p[0] <= e, (p) => p[1] >= s, (p) => p[1] <= n];
  const cut = [
    (a, b) => [w, a[1] + ((b[1] - a[1]) * (w - a[0])) / (b[0] - a[0])],
    (a, b) => [e, a[1] + ((b[1] - a[1]) * (e - a[0])) / (b[0] - a[0])],
    (a, b) => [a[0] + ((b[0] - a[0]) * (s - a[1])) / (b[1] - a[1]), s],
    (a, b) => [a[0] + ((b[0] - a[0]) * (n - a[1])) / (b[1] - a[1]), n],
  ];
  const clipRing = (ring) => {
    let out = ring;
    for (let k = 0; k < 4 && out.length; k++) {
      const input = out;
      out = [];
      for (let i = 0; i < input.length; i++) {
        const a = input[i];
        const b = input[(i + 1) % input.length];
        const ina = inside[k](a);
        const inb = inside[k](b);
        if (ina) out.push(a);
        if (ina !== inb) out.push(cut[k](a, b));
      }
    }
    return out.length >= 3 ? out : null;
  };
  const clipPolygon = (rings) => {
    const outer = clipRing(rings[0]);
    return outer ? [outer, ...rings.slice(1).map(clipRing).filter(Boolean)] : null;
  };
  const out = [];
  for (const f of features) {
    const g = f.geometry;
    if (!g) continue;
    const polys = (g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : []).map(clipPolygon).filter(Boolean);
    if (polys.length) out.push({ ...f, geometry: { type: "MultiPolygon", coordinates: polys } });
  }
  return out;
}

