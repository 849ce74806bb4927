// Where this account is logged in: each login is a session; end one, or all of them.
import { api, session } from "../api.js";
import { h, clear, toast, table, ago, badge } from "../ui.js";

// "Firefox on Linux" from a user agent; the full string stays in the cell's title.
export function device(ua) {
  if (!ua) return "unknown client";
  const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox" : /Chrom(e|ium)\//.test(ua) ? "Chrome"
    : /Safari\//.test(ua) ? "Safari" : /curl\//.test(ua) ? "curl" : /python|httpx|requests/i.test(ua) ? "a script" : null;
  const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Windows/.test(ua) ? "Windows"
    : /Mac OS X|Macintosh/.test(ua) ? "macOS" : /Linux|X11/.test(ua) ? "Linux" : null;
  if (browser && os) return `${browser} on ${os}`;
  return browser || os || ua.slice(0, 40);
}

export async function sessionsPage(ctx, main) {
  const box = h("div");
  const load = async () => {
    const { items } = await api("/api/v1/auth/sessions");
    clear(box, table([
      { title: "Device", value: (s) => device(s.user_agent), render: (s) => h("span", { title: s.user_agent || "" },
        device(s.user_agent), s.current ? [" ", badge("this device", "active")] : null) },
      { title: "Address", value: (s) => s.client || "" },
      { title: "Logged in", value: (s) => s.created_at, render: (s) => ago(s.created_at) },
      { title: "Last active", value: (s) => s.last_seen_at, render: (s) => ago(s.last_seen_at) },
      { title: "", value: () => "", render: (s) => h("button", {
        type: "button", class: s.current ? "secondary" : "danger",
        "aria-label": s.current ? "Log out of this device" : `Revoke the session of ${device(s.user_agent)} from ${s.client || "unknown"}`,
        onclick: async () => {
          if (s.current) { window.dispatchEvent(new Event("kefal:signout")); return; }
          try { await api(`/api/v1/auth/sessions/${encodeURIComponent(s.id)}`, { method: "DELETE" }); toast("Session ended"); load(); }
          catch (err) { toast(err.message, true); }
        },
      }, s.current ? "Log out" : "Revoke") },
    ], items, { empty: "No sessions." }));
  };
  await load();
  ctx.setRefresh(load);
  clear(main, h("h1", {}, "Sessions"),
    h("p", { class: "muted" }, "Each login is a session, valid 24 hours. Revoking one logs that device out at once."),
    box,
    h("div", { class: "actions" },
      h("button", { type: "button", class: "danger", onclick: async () => {
        try {
          await api("/auth/logout-all", { method: "POST" });
          session.token = null; toast("Logged out everywhere."); ctx.go("#/login");
        } catch (err) { toast(err.message, true); }
      } }, "Log out everywhere")));
}
