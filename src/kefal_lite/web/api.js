// The dashboard is the API's first client: everything goes through these calls.
// The session token lives in sessionStorage: same-origin only, gone with the tab.

const TOKEN = "kefal.session";

export const session = {
  get token() { return sessionStorage.getItem(TOKEN); },
  set token(value) { if (value) sessionStorage.setItem(TOKEN, value); else sessionStorage.removeItem(TOKEN); },
};

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : (detail || []).map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ") || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

export async function api(path, { method = "GET", body, raw = false } = {}) {
  const headers = {};
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401 && session.token && !path.startsWith("/auth/")) {
    session.token = null;
    window.dispatchEvent(new Event("kefal:logout"));
  }
  if (raw) return res;
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, data && data.detail);
  return data;
}
