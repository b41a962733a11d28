// The server's API, with the caller's token. The token lives in sessionStorage: this tab only,
// gone when the tab closes, never in the URL.

export const API = "/api/v1";
const KEY = "truceline.token";

export const getToken = () => sessionStorage.getItem(KEY) || "";
export const setToken = (t) => (t ? sessionStorage.setItem(KEY, t) : sessionStorage.removeItem(KEY));

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.fix = e.fix || "";
    this.field = e.field || "";
  }
}

function headers(extra = {}) {
  const h = { Accept: "application/json", ...extra };
  const t = getToken();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

async function fail(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  throw new ApiError(res.status, body);
}

/** GET or POST JSON; throws ApiError with the server's message and fix. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const res = await fetch(API + path, {
    method,
    signal,
    headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) await fail(res);
  return res.json();
}

/** POST a multipart form (file uploads); the browser sets the boundary. */
export async function apiForm(path, form) {
  const res = await fetch(API + path, { method: "POST", headers: headers(), body: form });
  if (!res.ok) await fail(res);
  return res.json();
}

/** The body as a Blob (attachments' bytes), with the token: for object URLs. */
export async function apiBlob(path) {
  const res = await fetch(API + path, { headers: headers({ Accept: "*/*" }) });
  if (!res.ok) await fail(res);
  return res.blob();
}

/** The body as text (HTML reports). */
export async function apiText(path) {
  const res = await fetch(API + path, { headers: headers({ Accept: "text/html" }) });
  if (!res.ok) await fail(res);
  return res.text();
}

/** Download a file from the API (exports, PDFs) with the token, under the server's file name. */
export async function download(path, fallbackName) {
  const res = await fetch(API + path, { headers: headers({ Accept: "*/*" }) });
  if (!res.ok) await fail(res);
  const blob = await res.blob();
  const cd = res.headers.get("Content-Disposition") || "";
  const m = /filename="([^"]+)"/.exec(cd);
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = m ? m[1] : fallbackName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  return { size: blob.size, name: a.download };
}

/** Query string from a plain object (arrays comma-joined, empty values left out). */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "" || (Array.isArray(v) && v.length === 0)) continue;
    u.set(k, Array.isArray(v) ? v.join(",") : String(v));
  }
  const s = u.toString();
  return s ? `?${s}` : "";
}

// What each role may see, mirrored from truceline.services.auth.ROLE_PERMISSIONS to choose which
// views to offer; the server enforces it on every call whatever the page does. "attach" and
// "release_files": attachments:submit and attachments:release; "submit": incidents:submit.
const CAN = {
  admin: ["proof", "map", "incidents", "review", "history", "draft", "daily", "statistics", "planner", "sensors", "attach", "release_files", "submit"],
  analyst: ["proof", "map", "incidents", "review", "history", "draft", "daily", "statistics", "planner", "sensors", "attach", "release_files", "submit"],
  monitor: ["map", "incidents", "daily", "sensors", "attach", "submit"],
  liaison: ["proof", "map", "daily", "statistics"],
  sensor: [],
  public: ["map", "daily"], // the published map: released findings, the agreement's public layers
};
export const can = (role, what) => (CAN[role] || []).includes(what);
