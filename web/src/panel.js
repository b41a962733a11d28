// The incident panel: the finding(s), their explanation and numbers, the probability in words and
// figures, the report and what it links to, the review history, and the analyst's actions.

import { api, ApiError, can, download } from "./api.js";
import { Evidence } from "./evidence.js";
import { el, fmtKm, fmtM, fmtProb, fmtTime, humanise, likelihood, partyName } from "./util.js";

/** "P = 0.56", or "P > 0.99" where the figure is a bound. */
const pIs = (p) => {
  const f = fmtProb(p);
  return /^[<>]/.test(f) ? `P ${f}` : `P = ${f}`;
};

const nFindings = (inc) => inc.findings.length;
const RELIABILITY = { A: "completely reliable", B: "usually reliable", C: "fairly reliable", D: "not usually reliable", E: "unreliable", F: "reliability cannot be judged" };
const CREDIBILITY = { 1: "confirmed", 2: "probably true", 3: "possibly true", 4: "doubtful", 5: "improbable", 6: "truth cannot be judged" };

export class Panel {
  constructor(root, ctx) {
    this.root = root;
    this.body = root.querySelector("#panel-body");
    this.title = root.querySelector("#panel-title");
    this.ctx = ctx; // {role, legend, colourOf, sectorLabel, onChanged, onClose, onOpen}
    root.querySelector("#panel-close").addEventListener("click", () => ctx.onClose());
    root.addEventListener("keydown", (e) => {
      if (e.key === "Escape") ctx.onClose();
    });
    this.seq = 0;
  }

  hide() {
    this._dropEvidence();
    this.root.hidden = true;
    document.body.dataset.panel = "";
    this.current = null;
  }

  /** Show "f<finding pk>" or "i<incident pk>"; resolves to the incident's detail (or null). */
  async show(id, { incidentPk = null, focus = true } = {}) {
    const seq = ++this.seq;
    this.current = id;
    this.root.hidden = false;
    document.body.dataset.panel = "1";
    this.title.textContent = "Loading…";
    this.body.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
    if (focus) this.title.focus?.();
    try {
      const role = this.ctx.role;
      if (!can(role, "incidents")) {
        // A liaison: the released finding only, never the raw report.
        const f = await api(`/findings/${id.slice(1)}`);
        if (seq !== this.seq) return null;
        this._renderLiaison(f);
        return { lat: f.lat, lon: f.lon, uncertainty_m: null, narrative: "" };
      }
      let ipk = incidentPk;
      if (id.startsWith("i")) ipk = Number(id.slice(1));
      if (!ipk) ipk = (await api(`/findings/${id.slice(1)}`)).incident_pk;
      const inc = await api(`/incidents/${ipk}`);
      const hist = can(role, "history") ? await api(`/incidents/${ipk}/history`) : null;
      if (seq !== this.seq) return null;
      this._render(inc, hist, id);
      return inc;
    } catch (e) {
      if (seq !== this.seq) return null;
      this.title.textContent = "Not available";
      this.body.replaceChildren(el("p", { class: "error", text: e instanceof ApiError ? `${e.message}${e.fix ? ` — ${e.fix}` : ""}` : String(e) }));
      return null;
    }
  }

  _dropEvidence() {
    this.evidence?.dispose();
    this.evidence = null;
  }

  _party(id) {
    const sw = el("span", { class: "sw", "aria-hidden": "true" });
    sw.style.background = this.ctx.colourOf(id);
    return el("span", { class: "party" }, sw, partyName(this.ctx.legend, id));
  }

  _ruleLabel(ruleId) {
    const r = this.ctx.legend.rules.find((x) => x.id === ruleId);
    return r && r.description ? `${ruleId} — ${r.description}` : ruleId;
  }

  _findingCard(f, { highlight = false, inc = null } = {}) {
    const p = f.probability;
    const bar = el("span", { class: "pbar", "aria-hidden": "true" }, el("span"));
    bar.firstChild.style.width = `${Math.round(p * 100)}%`;
    bar.firstChild.style.background = this.ctx.colourOf(f.responsible);
    return el(
      "article",
      { class: `finding${highlight ? " highlight" : ""}`, "data-finding": f.pk },
      el("h3", {}, this._ruleLabel(f.rule_id)),
      el(
        "dl",
        { class: "kv" },
        el("dt", { text: "Responsible" }), el("dd", {}, this._party(f.responsible)),
        el("dt", { text: "Probability" }), el("dd", { class: "prob" }, el("strong", { text: f.likelihood || likelihood(p) }), ` (${fmtProb(p)}) `, bar),
        el("dt", { text: "Rule type" }), el("dd", { text: humanise(f.rule_type) }),
        el("dt", { text: "Status" }), el("dd", {}, el("span", { class: `status s-${f.status}`, text: humanise(f.status === "open" ? "awaiting review" : f.status) }), f.released_at ? el("span", { class: "status s-released", text: "released to the parties" }) : null),
      ),
      el("p", { class: "expl" }, el("span", { class: "label", text: "Basis: " }), f.explanation),
      can(this.ctx.role, "proof") ? this._proof(f.pk) : "", // the public: no token, no proof
      inc ? this._findingActions(inc, f) : null,
    );
  }

  /** Review of this finding alone (the incident stays awaiting review while others are open). */
  _findingActions(inc, f) {
    if (!can(this.ctx.role, "review")) return null;
    const id = `fc-${f.pk}`;
    const comment = el("input", { type: "text", id, class: "finding-comment", maxlength: 4000, placeholder: "Comment (needed to reject or send back)" });
    const msg = el("span", { class: "action-msg small", role: "status", "aria-live": "polite" });
    const act = async (action) => {
      msg.textContent = "Saving…";
      msg.className = "action-msg small";
      try {
        await api(`/incidents/${inc.pk}/review`, { method: "POST", body: { action, comment: comment.value, findings: [f.pk] } });
        msg.textContent = `${humanise(action)}: recorded.`;
        await this.ctx.onChanged(inc.pk);
      } catch (e) {
        msg.className = "action-msg small error";
        msg.textContent = e instanceof ApiError ? `${e.message}${e.fix ? ` — ${e.fix}` : ""}` : String(e);
      }
    };
    const button = (action, text, status) =>
      el("button", { type: "button", class: "small-button", "data-finding-action": action, disabled: f.status === status, "aria-label": `${text} this finding (${f.rule_id})`, onclick: () => act(action) }, text);
    return el(
      "div",
      { class: "finding-actions", role: "group", "aria-label": `Review this finding (${f.rule_id})` },
      el("label", { for: id, class: "sr-only", text: `Comment on the finding ${f.rule_id}` }),
      comment,
      button("verify", "Verify", "verified"),
      button("reject", "Reject", "rejected"),
      button("send_back", "Send back", "sent_back"),
      msg,
    );
  }

  /** The finding's ledger proof, to check against a published root (`python -m truceline.ledger_verify`). */
  _proof(pk) {
    const msg = el("span", { class: "muted small", role: "status" });
    const get = async () => {
      msg.textContent = "";
      try {
        const out = await download(`/findings/${pk}/proof`, `finding-${pk}-proof.json`);
        msg.textContent = ` saved ${out.name}`;
      } catch (e) {
        msg.textContent = ` ${e instanceof ApiError ? `${e.message}${e.fix ? ` — ${e.fix}` : ""}` : String(e)}`;
      }
    };
    return el("p", { class: "proof" }, el("button", { type: "button", class: "small-button", onclick: get, title: "The ledger entry with its Merkle path to the day's root" }, "Ledger proof"), msg);
  }

  _numbers(inc) {
    const rows = [
      ["Observed", `${fmtTime(inc.observed_at)} (precision: ${inc.time_precision})`],
      ["Position", `${inc.lat.toFixed(5)}° N, ${inc.lon.toFixed(5)}° E`],
      ["Position error", `${fmtM(inc.uncertainty_m)} (1 σ); 95 %: ${fmtM(2.4477 * inc.uncertainty_m)}`],
      ["Side of the line", `${partyName(this.ctx.legend, inc.side_party)} (${pIs(inc.p_side)})`],
      ["Distance to the line", fmtKm(Math.abs(inc.distance_km), 2)],
      ["Zones", inc.zones.length ? inc.zones.join(", ") : "none"],
      ["Sector", this.ctx.sectorLabel(inc.sector)],
      ["Count", String(inc.count)],
    ];
    if (inc.origin_lat !== null && inc.origin_lat !== undefined) rows.push(["Fired from", `${inc.origin_lat.toFixed(5)}° N, ${inc.origin_lon.toFixed(5)}° E ± ${fmtM(inc.origin_uncertainty_m)} (1 σ)`]);
    if (inc.ambiguous && inc.alt_lat !== null && inc.alt_lat !== undefined) rows.push(["Second fix (ambiguous)", `${inc.alt_lat.toFixed(5)}° N, ${inc.alt_lon.toFixed(5)}° E, probability ${(inc.alt_weight ?? 0).toFixed(2)} (the mirror image across the sensors' line; the position error covers both)`]);
    if (inc.bearing_deg !== null && inc.bearing_deg !== undefined) rows.push(["Bearing of fire", `${inc.bearing_deg.toFixed(1)}°`]);
    if (inc.party) rows.push(["Party reported acting", partyName(this.ctx.legend, inc.party)]);
    return el("dl", { class: "kv numbers" }, ...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  }

  _report(inc) {
    return el(
      "div",
      { class: "report" },
      el(
        "dl",
        { class: "kv" },
        el("dt", { text: "Report" }), el("dd", {}, el("code", { text: inc.report_id })),
        el("dt", { text: "Source" }), el("dd", { text: humanise(inc.source_type) }),
        el("dt", { text: "Grading" }), el("dd", { text: `${inc.reliability}${inc.credibility} — source ${RELIABILITY[inc.reliability] || "?"}, information ${CREDIBILITY[inc.credibility] || "?"}` }),
        el("dt", { text: "Received" }), el("dd", { text: `${fmtTime(inc.received_at)}${inc.submitted_by ? ` from ${inc.submitted_by}` : ""}` }),
      ),
      inc.narrative ? el("blockquote", { class: "narrative", text: inc.narrative }) : null,
      this._linked(inc),
    );
  }

  /** The other reports of the same fused event (each opens in the panel) and the detections. */
  _linked(inc) {
    const reports = inc.linked_reports || [];
    const dets = inc.detections || [];
    if (!reports.length && !dets.length) {
      return el("p", { class: "muted small", text: "No other reports or detections are linked to this incident." });
    }
    const offset = (s) => {
      const a = Math.abs(s);
      const t = a < 60 ? `${a.toFixed(a < 10 ? 1 : 0)} s` : a < 3600 ? `${(a / 60).toFixed(1)} min` : `${(a / 3600).toFixed(1)} h`;
      return `${s >= 0 ? "+" : "−"}${t}`;
    };
    return el(
      "div",
      { class: "linked" },
      reports.length
        ? el(
            "div",
            {},
            el("p", { class: "label", text: `Same event${inc.event_id ? ` (event ${inc.event_id})` : ""}: ${reports.length} other report${reports.length > 1 ? "s" : ""}` }),
            el(
              "ul",
              { class: "linked-reports" },
              ...reports.map((r) =>
                el(
                  "li",
                  { "data-pk": String(r.pk) },
                  el("button", { type: "button", class: "linkish inline", text: r.report_id, onclick: () => this.ctx.onOpen?.(`i${r.pk}`) }),
                  ` ${humanise(r.source_type)}${r.submitted_by ? ` (${r.submitted_by})` : ""}, ${humanise(r.kind)}, ${fmtM(r.distance_m)} away, ${offset(r.time_offset_s)}`,
                ),
              ),
            ),
          )
        : null,
      dets.length
        ? el(
            "div",
            {},
            el("p", { class: "label", text: `Located from ${dets.length} detection${dets.length > 1 ? "s" : ""}` }),
            el(
              "ul",
              { class: "detections" },
              ...dets.map((d) => el("li", {}, el("code", { class: "det", text: d.sensor_id }), ` ${humanise(d.signal)} at ${d.arrival_time.replace("T", " ").replace(/(\.\d{3})\d*/, "$1")}`)),
            ),
          )
        : null,
    );
  }

  _history(hist) {
    if (!hist) return null;
    if (!hist.length) return el("p", { class: "muted", text: "No review yet." });
    return el(
      "ol",
      { class: "history" },
      ...hist.map((a) => {
        const before = a.before && a.before.status ? a.before.status : null;
        const after = a.after && a.after.status ? a.after.status : a.after && a.after.released_at ? "released" : null;
        return el(
          "li",
          { "data-action": a.action },
          el("time", { datetime: a.at, text: fmtTime(a.at) }), " ",
          el("strong", { text: humanise(a.action) }), ` ${a.entity} ${a.entity_id}`,
          before || after ? ` (${humanise(before || "—")} → ${humanise(after || "—")})` : "",
          el("span", { class: "muted", text: ` by ${a.actor} (${a.role})` }),
          a.comment ? el("div", { class: "comment", text: `“${a.comment}”` }) : null,
        );
      }),
    );
  }

  _actions(inc) {
    if (!can(this.ctx.role, "review")) return null;
    const comment = el("textarea", { id: "review-comment", rows: 2, maxlength: 4000, placeholder: "Comment (needed to reject or send back)" });
    const msg = el("p", { class: "action-msg", role: "status", "aria-live": "polite" });
    const act = async (action) => {
      msg.textContent = "Saving…";
      msg.className = "action-msg";
      try {
        const out = await api(`/incidents/${inc.pk}/review`, { method: "POST", body: { action, comment: comment.value } });
        msg.textContent = `${humanise(action)}: ${out.changes} change${out.changes === 1 ? "" : "s"} recorded.`;
        await this.ctx.onChanged(inc.pk);
      } catch (e) {
        msg.className = "action-msg error";
        msg.textContent = e instanceof ApiError ? `${e.message}${e.fix ? ` — ${e.fix}` : ""}` : String(e);
      }
    };
    const unreleased = inc.findings.filter((f) => f.status === "verified" && !f.released_at).length;
    return el(
      "div",
      { class: "review-actions" },
      el("label", { for: "review-comment", class: "label", text: nFindings(inc) > 1 ? `Review the incident and all ${nFindings(inc)} findings` : "Review the incident" }),
      comment,
      el(
        "div",
        { class: "buttons" },
        el("button", { type: "button", id: "act-verify", class: "primary", disabled: inc.status === "verified", onclick: () => act("verify") }, "Verify"),
        el("button", { type: "button", id: "act-reject", disabled: inc.status === "rejected", onclick: () => act("reject") }, "Reject"),
        el("button", { type: "button", id: "act-send-back", disabled: inc.status === "sent_back", onclick: () => act("send_back") }, "Send back"),
        el("button", { type: "button", id: "act-release", disabled: !unreleased, onclick: () => act("release"), title: "Release the verified findings to the parties" }, `Release${unreleased ? ` (${unreleased})` : ""}`),
      ),
      msg,
    );
  }

  _render(inc, hist, id) {
    const what = humanise(inc.kind) + (inc.weapon_class ? ` (${humanise(inc.weapon_class)})` : "");
    this.title.textContent = what;
    const fpk = id.startsWith("f") ? Number(id.slice(1)) : null;
    const findings = [...inc.findings].sort((a, b) => (a.pk === fpk ? -1 : b.pk === fpk ? 1 : b.probability - a.probability));
    this._dropEvidence();
    this.evidence = new Evidence(inc, this.ctx.role);
    this.body.replaceChildren(
      el("p", { class: "sub" }, el("code", { text: inc.report_id }), ` · ${fmtTime(inc.observed_at)} · `, el("span", { class: `status s-${inc.status}`, text: humanise(inc.status === "new" ? "awaiting review" : inc.status) })),
      el("h3", { class: "section", text: findings.length ? `Finding${findings.length > 1 ? "s" : ""} (${findings.length})` : "No finding" }),
      ...(findings.length ? findings.map((f) => this._findingCard(f, { highlight: f.pk === fpk, inc })) : [el("p", { class: "muted", text: "This report broke no rule in force." })]),
      this._actions(inc),
      el("h3", { class: "section", text: "Numbers" }),
      this._numbers(inc),
      el("h3", { class: "section", text: "Report and linked records" }),
      this._report(inc),
      this.evidence.el,
      hist ? el("h3", { class: "section", text: "Review history" }) : null,
      this._history(hist),
    );
  }

  _renderLiaison(f) {
    this._dropEvidence();
    this.title.textContent = humanise(f.kind) + (f.weapon_class ? ` (${humanise(f.weapon_class)})` : "");
    this.body.replaceChildren(
      el("p", { class: "sub" }, `${fmtTime(f.observed_at)} · released ${fmtTime(f.released_at)}`),
      this._findingCard(f),
      el(
        "dl",
        { class: "kv numbers" },
        el("dt", { text: "Position" }), el("dd", { text: `${f.lat.toFixed(4)}° N, ${f.lon.toFixed(4)}° E` }),
        el("dt", { text: "Side of the line" }), el("dd", { text: partyName(this.ctx.legend, f.side_party) }),
        el("dt", { text: "Distance to the line" }), el("dd", { text: fmtKm(Math.abs(f.distance_km), 2) }),
        el("dt", { text: "Zones" }), el("dd", { text: f.zones.length ? f.zones.join(", ") : "none" }),
        el("dt", { text: "Sector" }), el("dd", { text: this.ctx.sectorLabel(f.sector) }),
      ),
      el("p", { class: "muted small", text: this.ctx.role === "public" ? "Published by the mission. Its source reports are not published." : "Released to the parties. The mission's source reports are not released." }),
    );
  }
}
