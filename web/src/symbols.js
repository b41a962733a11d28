// Map symbols: MIL-STD-2525C symbols (milsymbol) for the kinds that have one, and the daily
// report's marker shapes per rule type for the rest, filled with the colour of the party held
// responsible. Frames are "neutral" (a square) for both parties: the mission is impartial, and
// the colour, not the frame, says whose it is.

// Only the letter-SIDC standard (2525C) is loaded: the package's default entry registers every
// standard (APP-6 B/D, 2525 B-E), which triples the page's script for nothing used here.
import { ms, std2525c } from "../node_modules/milsymbol/index.mjs";

ms.addIcons(std2525c);

// 2525C letter SIDCs (15 characters): S (warfighting), N (neutral), G/A (ground/air), P (present).
const BY_WEAPON = {
  tank: "SNGPUCA----", // armour
  apc: "SNGPUCIZ---", // mechanised infantry
  mortar: "SNGPUCFM---", // mortar
  artillery_lt_100mm: "SNGPUCF----", // field artillery
  artillery_100mm_plus: "SNGPUCF----",
  mlrs: "SNGPUCFR---", // rocket artillery
  heavy_mlrs: "SNGPUCFR---",
  tactical_missile: "SNGPUCM----", // missile
  drone: "SNAPMFQ----", // UAV
};
const BY_KIND = {
  armed_personnel: "SNGPUCI----", // infantry
  heavy_weapon: "SNGPE------", // ground equipment
  vehicle_movement: "SNGPEV-----", // ground vehicle
  drone_flight: "SNAPMFQ----", // UAV
  fortification_works: "SNGPUCE----", // engineer
};

/** The SIDC for an incident's kind (and weapon class), or null when the kind has none. */
export function sidcOf(kind, weaponClass) {
  if (kind === "heavy_weapon" || kind === "vehicle_movement") return BY_WEAPON[weaponClass] || BY_KIND[kind];
  return BY_KIND[kind] || null;
}

const cache = new Map();

/** A milsymbol as {url, w, h, ax, ay} (data URL and anchor), cached by symbol and colour. */
export function milIcon(sidc, colour, size = 18) {
  const key = `${sidc}|${colour}|${size}`;
  let v = cache.get(key);
  if (!v) {
    const s = new ms.Symbol(sidc, { size, fillColor: colour, frameColor: "#111", iconColor: "#111", outlineWidth: 2, outlineColor: "white", standard: "2525" });
    const a = s.getAnchor();
    const sz = s.getSize();
    v = { url: s.toDataURL(), w: sz.width, h: sz.height, ax: a.x, ay: a.y, valid: s.isValid() };
    cache.set(key, v);
  }
  return v;
}

// The daily report's shapes per rule type (matplotlib markers there, SVG paths here).
const SHAPES = {
  fire_across: "M8 0.8 L10 6 L15.6 6.2 L11.2 9.7 L12.8 15.2 L8 12 L3.2 15.2 L4.8 9.7 L0.4 6.2 L6 6 Z",
  withdrawal: "M2.5 2.5 H13.5 V13.5 H2.5 Z",
  zone_ban: "M8 1 L15 8 L8 15 L1 8 Z",
  count_cap: "M5.5 1.5 H10.5 V5.5 H14.5 V10.5 H10.5 V14.5 H5.5 V10.5 H1.5 V5.5 H5.5 Z",
  drone_flight: "M1.5 2.5 H14.5 L8 14.5 Z",
  movement_restriction: "M8 2 A6 6 0 1 1 7.99 2 Z",
};
export const RULE_TYPES = Object.keys(SHAPES);

/** An SVG string of a rule-type marker, filled with colour; opacity follows the probability. */
export function shapeSvg(ruleType, colour, { size = 16, opacity = 1, stroke = "#111", selected = false } = {}) {
  const d = SHAPES[ruleType] || SHAPES.movement_restriction;
  const ring = selected ? `<circle cx="8" cy="8" r="7.6" fill="none" stroke="#000" stroke-width="1.4" stroke-dasharray="2 1.5"/>` : "";
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 16 16" aria-hidden="true"><path d="${d}" fill="${colour}" fill-opacity="${opacity.toFixed(2)}" stroke="${stroke}" stroke-width="0.9"/>${ring}</svg>`;
}

/** An incident without findings: a small hollow circle. */
export function incidentSvg(size = 10) {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 10 10" aria-hidden="true"><circle cx="5" cy="5" r="3.6" fill="#fff" fill-opacity="0.85" stroke="#444" stroke-width="1.2"/></svg>`;
}

/** A cluster's diameter (px): larger for larger counts. */
export function clusterSize(count) {
  return count < 10 ? 30 : count < 100 ? 36 : count < 1000 ? 42 : 48;
}

/** The count written in a cluster ("12k" from 10,000 on). */
export function clusterLabel(count) {
  return count >= 10000 ? `${Math.round(count / 1000)}k` : String(count);
}
