// The observation form: a monitor's statement as they write it ("three undetermined explosions
// 3-5 km south-east between 21:00 and 23:30"), sent to POST /incidents/observations. The server
// places it at the centre of the arc-and-range sector (as `truceline import --format smm`).

import { api, ApiError } from "./api.js";
import { el } from "./util.js";

const KINDS = [
  ["undetermined explosion", "Undetermined explosion(s)"],
  ["explosion", "Explosion(s)"],
  ["bursts", "Small-arms fire (bursts, shots)"],
  ["projectile", "Projectile"],
  ["muzzle_flash", "Muzzle flash"],
  ["illumination flare", "Illumination flare"],
  ["heavy_weapon", "Heavy weapon"],
  ["drone_flight", "Drone flight"],
];

const field = (label, input, hint) =>
  el("label", { class: "obs-field" }, `${label} `, input, hint ? el("span", { class: "muted small", text: ` ${hint}` }) : "");

/** Build the form into `box`; `centre()` gives the map's centre [lon, lat]; `done(result)` after a send. */
export function observationForm(box, { centre, done }) {
  const inp = (name, attrs = {}) => el("input", { name, id: `obs-${name}`, ...attrs });
  const form = el(
    "form",
    { id: "obs-form", class: "obs-form", novalidate: true },
    field("Report id", inp("id", { required: true, placeholder: "SMM-2025-03-01-OP07-1" })),
    el(
      "fieldset",
      {},
      el("legend", { text: "Where the monitors stood (WGS84)" }),
      field("Lon", inp("observer_lon", { type: "number", step: "any" })),
      field("Lat", inp("observer_lat", { type: "number", step: "any" })),
      el("button", { type: "button", id: "obs-centre", text: "Map centre", onclick: () => {
        const [lon, lat] = centre();
        form.observer_lon.value = lon.toFixed(5);
        form.observer_lat.value = lat.toFixed(5);
      } }),
    ),
    el(
      "fieldset",
      {},
      el("legend", { text: "When (with the UTC offset the report uses)" }),
      field("From", inp("observed_from", { placeholder: "2025-03-01T21:00+02:00" })),
      field("To", inp("observed_to", { placeholder: "2025-03-01T23:30+02:00" })),
    ),
    el(
      "fieldset",
      {},
      el("legend", { text: "Direction and distance" }),
      field("Direction", inp("bearing", { placeholder: "SE, W to N, 135" }), "or the arc in degrees:"),
      field("From °", inp("bearing_from_deg", { type: "number", min: 0, max: 360, step: "any" })),
      field("to °", inp("bearing_to_deg", { type: "number", min: 0, max: 360, step: "any" })),
      field("Distance km, from", inp("distance_min_km", { type: "number", min: 0, step: "any" })),
      field("to", inp("distance_max_km", { type: "number", min: 0, step: "any" })),
    ),
    field("What", el("select", { name: "kind", id: "obs-kind" }, ...KINDS.map(([v, t]) => el("option", { value: v, text: t })))),
    field("How many", inp("count", { type: "number", min: 1, step: 1, value: 1 })),
    el("label", { class: "obs-field" }, inp("threat_to_monitors", { type: "checkbox" }), " The monitors were fired at or near"),
    field("Source", el("select", { name: "source_type", id: "obs-source_type" }, el("option", { value: "patrol", text: "Patrol" }), el("option", { value: "observation_post", text: "Observation post" }))),
    field("Narrative", el("textarea", { name: "narrative", id: "obs-narrative", rows: 2 })),
    el("button", { type: "submit", id: "obs-send", text: "Send the observation" }),
    el("p", { id: "obs-result", class: "small", role: "status", "aria-live": "polite" }),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const out = form.querySelector("#obs-result");
    const obs = {};
    for (const x of form.querySelectorAll("input, select, textarea")) {
      if (x.type === "checkbox") obs[x.name] = x.checked;
      else if (x.value.trim() !== "") obs[x.name] = x.value.trim();
    }
    out.textContent = "Sending…";
    try {
      const res = await api("/incidents/observations", { method: "POST", body: { observations: [obs] } });
      const r = res.results[0];
      out.dataset.status = r.status;
      out.textContent =
        r.status === "rejected"
          ? `Not stored: ${r.field ? `${r.field}: ` : ""}${r.reason}`
          : `${r.status === "accepted" ? "Stored" : "Already stored"} as incident ${r.pk}${r.findings ? ` (${r.findings} finding${r.findings === 1 ? "" : "s"})` : ""}.`;
      if (r.status !== "rejected") done(r);
    } catch (err) {
      out.dataset.status = "error";
      out.textContent = err instanceof ApiError ? `${err.message}${err.fix ? ` — ${err.fix}` : ""}` : String(err);
    }
  });
  box.replaceChildren(form);
}
