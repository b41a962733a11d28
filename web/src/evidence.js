// The incident panel's "Evidence files": the incident's attachments (type, size, hash, what the
// file says about itself against the report, C2PA, released or not), image thumbnails and a viewer
// (the bytes fetched with the token as a Blob, shown from an object URL), an upload control for
// the roles that may file, and Release for analysts and admins. The server decides who sees what
// (liaisons and the public: released files only); the page only chooses what to offer.

import { api, apiBlob, apiForm, ApiError, can, download } from "./api.js";
import { el, fmtTime } from "./util.js";

const errText = (e) => (e instanceof ApiError ? `${e.message}${e.fix ? ` — ${e.fix}` : ""}` : String(e));

/** 1 234 B, 56.7 kB, 8.9 MB (decimal units, as the size limits are set). */
export function fmtBytes(n) {
  if (n < 1000) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

const kindOf = (mediaType) => {
  const t = String(mediaType || "");
  if (t === "application/pdf") return "pdf";
  const top = t.split("/")[0];
  return ["image", "audio", "video"].includes(top) ? top : "other";
};

// Browsers draw these image types; TIFF and HEIC/AVIF may not, so they get no thumbnail.
const DRAWABLE = new Set(["image/jpeg", "image/png", "image/webp", "image/gif"]);

/** The evidence section of one incident; `el` is the section, filled as the list arrives. */
export class Evidence {
  constructor(inc, role) {
    this.inc = inc;
    this.role = role;
    this.urls = []; // object URLs to revoke when the panel moves on
    this.blobs = new Map(); // sha256 -> Promise<Blob>
    this.list = el("div", { class: "evidence-list", "aria-live": "polite" }, el("p", { class: "muted small", text: "Loading the evidence files…" }));
    this.el = el("section", { class: "evidence", "data-incident": inc.pk }, el("h3", { class: "section", text: "Evidence files" }), this.list, this._upload());
    this.load();
  }

  /** Free the object URLs (the panel shows something else). */
  dispose() {
    for (const u of this.urls) URL.revokeObjectURL(u);
    this.urls = [];
    this.blobs.clear();
    this.disposed = true;
  }

  async load() {
    try {
      const rows = await api(`/incidents/${this.inc.pk}/attachments`);
      if (this.disposed) return;
      this.rows = rows;
      this.list.replaceChildren(
        rows.length
          ? el("ul", { class: "attachments" }, ...rows.map((a) => this._item(a)))
          : el("p", { class: "muted small", text: "No file is attached to this incident." }),
      );
      this.el.dataset.count = String(rows.length);
    } catch (e) {
      if (this.disposed) return;
      this.list.replaceChildren(el("p", { class: "error small", text: errText(e) }));
    }
  }

  /** The bytes as served to this caller (verified by the server against their hash). */
  _blob(a) {
    if (!this.blobs.has(a.sha256)) {
      const p = apiBlob(`/attachments/${a.sha256}`);
      p.catch(() => this.blobs.delete(a.sha256));
      this.blobs.set(a.sha256, p);
    }
    return this.blobs.get(a.sha256);
  }

  async _url(a) {
    const blob = await this._blob(a);
    const typed = blob.type === a.media_type ? blob : new Blob([blob], { type: a.media_type });
    const u = URL.createObjectURL(typed);
    this.urls.push(u);
    return u;
  }

  _item(a) {
    const kind = kindOf(a.media_type);
    const flag =
      a.consistent === false
        ? el("span", { class: "flag inconsistent", text: "inconsistent with the report" })
        : a.consistent === true
          ? el("span", { class: "flag consistent", text: "consistent with the report" })
          : el("span", { class: "flag unknown", text: "states no time or position" });
    const shaMsg = el("span", { class: "muted small", role: "status" });
    const copy = async () => {
      try {
        await navigator.clipboard.writeText(a.sha256);
        shaMsg.textContent = " copied";
      } catch {
        shaMsg.textContent = ` ${a.sha256}`; // no clipboard (insecure context): show it whole to select
      }
    };
    const thumb = el("button", { type: "button", class: `thumb thumb-${kind}`, "aria-label": `View ${a.filename || a.media_type}`, title: "View", onclick: () => this.view(a) });
    if (kind === "image" && DRAWABLE.has(a.media_type)) {
      const img = el("img", { alt: `Thumbnail of ${a.filename || "the photo"}`, loading: "lazy" });
      thumb.append(img);
      this._url(a)
        .then((u) => {
          if (!this.disposed) img.src = u;
        })
        .catch((e) => thumb.replaceChildren(el("span", { class: "error small", text: errText(e) })));
    } else {
      thumb.append(el("span", { class: "thumb-label", text: kind === "other" ? a.media_type : kind.toUpperCase() }));
    }
    const rows = [
      ["Type", a.media_type],
      ["Size", fmtBytes(a.size_bytes)],
      ["SHA-256", el("span", {}, el("code", { class: "sha", title: a.sha256, text: `${a.sha256.slice(0, 12)}…` }), " ", el("button", { type: "button", class: "small-button copy-sha", "aria-label": `Copy the SHA-256 of ${a.filename || "the file"}`, onclick: copy }, "Copy"), shaMsg)],
      ["Check", el("span", {}, flag, a.consistency ? el("span", { class: "why small", text: ` ${a.consistency}` }) : null)],
      ["C2PA", a.c2pa],
      ["Whole", a.integrity],
      ["Filed", `${fmtTime(a.filed_at)}${a.filed_by ? ` by ${a.filed_by}` : ""}`],
      ["Released", this._released(a)],
    ];
    return el(
      "li",
      { class: "attachment", "data-pk": String(a.pk), "data-sha256": a.sha256, "data-consistent": String(a.consistent), "data-released": String(a.released) },
      thumb,
      el(
        "div",
        { class: "att-body" },
        el("p", { class: "att-name" }, el("strong", { text: a.filename || "(no name)" })),
        el("dl", { class: "kv att-kv" }, ...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)])),
      ),
    );
  }

  _released(a) {
    if (a.released) {
      const how = a.keep_location ? "location kept" : a.released_sha256 && a.released_sha256 !== a.sha256 ? `location removed, copy ${a.released_sha256.slice(0, 12)}…` : "";
      return el("span", {}, el("span", { class: "status s-released", text: "released" }), ` ${fmtTime(a.released_at)}${how ? ` (${how})` : ""}`);
    }
    if (!can(this.role, "release_files")) return "not released";
    const kinds = kindOf(a.media_type);
    const strippable = kinds === "image";
    const keep = el("input", { type: "checkbox", class: "keep-location", id: `keep-${a.pk}`, checked: !strippable });
    if (!strippable) keep.disabled = true; // video, audio, PDFs cannot be stripped: released as filed
    const msg = el("span", { class: "action-msg small", role: "status", "aria-live": "polite" });
    const release = async () => {
      msg.textContent = "Releasing…";
      msg.className = "action-msg small";
      try {
        await api(`/attachments/${a.pk}/release`, { method: "POST", body: { keep_location: keep.checked } });
        msg.textContent = "Released.";
        await this.load();
      } catch (e) {
        msg.className = "action-msg small error";
        msg.textContent = errText(e);
      }
    };
    return el(
      "span",
      { class: "release" },
      "not released ",
      el("button", { type: "button", class: "small-button release-file", onclick: release, title: "Release this file to the liaisons and the public" }, "Release"),
      " ",
      el("label", { for: `keep-${a.pk}`, class: "small" }, keep, strippable ? " keep its location" : " as filed (cannot be stripped)"),
      " ",
      msg,
    );
  }

  /** The viewer: images in an overlay, audio and video with their players, PDFs and others saved. */
  async view(a) {
    const kind = kindOf(a.media_type);
    if (kind === "pdf" || kind === "other" || (kind === "image" && !DRAWABLE.has(a.media_type))) {
      try {
        await download(`/attachments/${a.sha256}`, a.filename || `${a.sha256}`);
      } catch (e) {
        window.alert(errText(e));
      }
      return;
    }
    const close = () => {
      overlay.remove();
      document.removeEventListener("keydown", onKey, true);
      opener?.focus?.();
    };
    const onKey = (e) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        close();
      }
    };
    const opener = document.activeElement;
    const stage = el("div", { class: "viewer-stage" }, el("p", { class: "muted", text: "Loading…" }));
    const closeBtn = el("button", { type: "button", class: "viewer-close", "aria-label": "Close the viewer", onclick: close }, "×");
    const overlay = el(
      "div",
      { class: "viewer", role: "dialog", "aria-modal": "true", "aria-label": `Evidence file ${a.filename || a.sha256}`, onclick: (e) => e.target === overlay && close() },
      el("div", { class: "viewer-box" }, el("div", { class: "viewer-head" }, el("strong", { text: a.filename || a.media_type }), el("code", { class: "small", text: ` ${a.sha256}` }), closeBtn), stage),
    );
    document.addEventListener("keydown", onKey, true);
    document.body.append(overlay);
    closeBtn.focus();
    try {
      const u = await this._url(a);
      const media =
        kind === "image"
          ? el("img", { src: u, alt: a.filename || "Evidence photo", class: "viewer-media" })
          : el(kind, { src: u, controls: true, class: "viewer-media" });
      stage.replaceChildren(media);
    } catch (e) {
      stage.replaceChildren(el("p", { class: "error", text: errText(e) }));
    }
  }

  /** File input (multiple): each file sent on its own, so one refusal does not hold back the rest. */
  _upload() {
    if (!can(this.role, "attach")) return null;
    const id = `att-file-${this.inc.pk}`;
    const input = el("input", { type: "file", id, multiple: true, class: "att-input" });
    const results = el("ul", { class: "upload-results", "aria-live": "polite" });
    const send = el("button", { type: "button", class: "small-button att-send", disabled: true }, "Attach");
    input.addEventListener("change", () => {
      send.disabled = !input.files.length;
    });
    send.addEventListener("click", async () => {
      const files = [...input.files];
      if (!files.length) return;
      send.disabled = true;
      results.replaceChildren();
      for (const f of files) {
        const li = el("li", { "data-name": f.name, class: "upload-result" }, `${f.name} (${fmtBytes(f.size)}): sending…`);
        results.append(li);
        const form = new FormData();
        form.append("file", f, f.name);
        try {
          const [a] = await apiForm(`/incidents/${this.inc.pk}/attachments`, form);
          li.dataset.outcome = a.created ? "filed" : "already";
          li.textContent = `${f.name}: ${a.created ? "filed" : "already filed"} as ${a.media_type}, SHA-256 ${a.sha256.slice(0, 12)}…${a.consistent === false ? " — inconsistent with the report" : ""}`;
        } catch (e) {
          li.dataset.outcome = "refused";
          li.className = "upload-result error";
          li.textContent = `${f.name}: refused — ${errText(e)}`;
        }
      }
      input.value = "";
      await this.load();
    });
    return el(
      "div",
      { class: "att-upload" },
      el("label", { for: id, class: "label", text: "Attach files (photos, video, audio, PDF)" }),
      el("div", { class: "buttons" }, input, send),
      results,
    );
  }
}
