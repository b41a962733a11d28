// The page's state lives in the URL, so that a shared link opens the same view: the view, the
// filters, the map's centre and zoom, the selected finding or incident, the daily view's day, the
// planner's two scenarios.

export const FILTERS = ["kind", "rule", "party", "sector", "status", "source", "in_force", "in_area"];
const DAY = /^\d{4}-\d{2}-\d{2}$/;
const SCENARIO = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const VIEWS = ["map", "queue", "daily", "planner"];

export function readState(search = location.search) {
  const u = new URLSearchParams(search);
  const list = (k) => (u.get(k) || "").split(",").map((s) => s.trim()).filter(Boolean);
  const num = (k) => {
    const v = Number.parseFloat(u.get(k));
    return Number.isFinite(v) ? v : null;
  };
  const day = (k) => (DAY.test(u.get(k) || "") ? u.get(k) : null);
  const view = VIEWS.includes(u.get("view")) ? u.get("view") : null;
  const scenario = (k) => (SCENARIO.test(u.get(k) || "") ? u.get(k) : null);
  const state = { view, start: day("start"), end: day("end"), z: num("z"), lat: num("lat"), lon: num("lon"), sel: null, day: day("day"), a: scenario("a"), b: scenario("b") };
  for (const f of FILTERS) state[f] = list(f);
  const sel = u.get("sel") || "";
  if (/^[fi]\d+$/.test(sel)) state.sel = sel;
  return state;
}

export function writeState(state, { push = false } = {}) {
  const u = new URLSearchParams();
  if (state.view) u.set("view", state.view);
  if (state.start) u.set("start", state.start);
  if (state.end) u.set("end", state.end);
  for (const f of FILTERS) if (state[f] && state[f].length) u.set(f, state[f].join(","));
  if (state.z !== null && state.z !== undefined) u.set("z", String(state.z));
  if (state.lat !== null && state.lat !== undefined) u.set("lat", state.lat.toFixed(4));
  if (state.lon !== null && state.lon !== undefined) u.set("lon", state.lon.toFixed(4));
  if (state.sel) u.set("sel", state.sel);
  if (state.day) u.set("day", state.day);
  if (state.view === "planner" && state.a) u.set("a", state.a);
  if (state.view === "planner" && state.b) u.set("b", state.b);
  const url = `${location.pathname}?${u.toString()}`;
  if (url === location.pathname + location.search) return;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

/** The API filter parameters of a state (those of GET /dashboard/features and GET /export). */
export function filterParams(state) {
  return {
    start: state.start,
    end: state.end,
    kind: state.kind,
    rule: state.rule,
    party: state.party,
    sector: state.sector,
    status: state.status,
    source_type: state.source,
    in_force: oneOf(state.in_force),
    in_area: oneOf(state.in_area),
  };
}

/** A yes/no filter: "true" or "false" when one of the two is ticked, else null (both: all). */
function oneOf(values) {
  return values && values.length === 1 && ["true", "false"].includes(values[0]) ? values[0] : null;
}
