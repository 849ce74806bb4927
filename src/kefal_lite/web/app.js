// kefal-lite dashboard: hash routes, one module per page, the API as the only backend.
import { api, session, ApiError } from "./api.js";
import { h, clear, toast } from "./ui.js";
import { authPage } from "./pages/auth.js";
import { overviewPage } from "./pages/overview.js";
import { graphPage } from "./pages/graph.js";
import { estatePage } from "./pages/estate.js";
import { hostsPage, hostPage } from "./pages/hosts.js";
import { historyPage } from "./pages/history.js";
import { incidentsPage } from "./pages/incidents.js";
import { invariantsPage } from "./pages/invariants.js";
import { agentsPage } from "./pages/agents.js";
import { adminPage } from "./pages/admin.js";
import { settingsPage } from "./pages/settings.js";
import { sessionsPage } from "./pages/sessions.js";

const root = document.getElementById("app");
const state = { me: null, refresh: null, timer: null };

const NAV = [
  ["#/", "Overview"], ["#/graph", "Graph"], ["#/hosts", "Hosts"], ["#/incidents", "Incidents"],
  ["#/invariants", "Invariants"], ["#/agents", "Agents"], ["#/settings", "Settings"],
];

function layout(main) {
  const route = location.hash.split("?")[0] || "#/";
  const links = [...NAV];
  if (state.me && state.me.role === "admin") links.splice(6, 0, ["#/admin", "Admin"]);
  const nav = h("nav", { class: "nav", "aria-label": "Main" },
    h("a", { href: "#/", class: "brand" }, "kefal-lite"),
    h("button", { class: "menu", type: "button", "aria-label": "Menu",
      onclick: () => nav.classList.toggle("open") }, "☰"),
    h("ul", {}, links.map(([href, label]) => h("li", {},
      h("a", { href, "aria-current": (route === href || (href !== "#/" && route.startsWith(href))) ? "page" : null }, label)))),
    h("span", { class: "who" }, state.me ? `${state.me.username} (${state.me.role})` : ""),
    h("button", { type: "button", class: "logout", onclick: () => window.dispatchEvent(new Event("kefal:signout")) }, "Log out"),
  );
  return [nav, h("main", { id: "main", tabindex: "-1" }, main)];
}

async function render() {
  clearInterval(state.timer);
  state.refresh = null;
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query || "");
  if (path.startsWith("/reset") || path === "/login" || path === "/forgot" || !session.token) {
    clear(root, await authPage(path, params, onLogin));
    return;
  }
  if (!state.me) {
    try { state.me = await api("/api/v1/auth/me"); } catch { session.token = null; return render(); }
  }
  const main = h("div", { class: "page" }, h("p", { class: "muted" }, "Loading…"));
  clear(root, layout(main));
  const parts = path.split("/").filter(Boolean);
  const ctx = { me: state.me, params, go, setRefresh: (fn) => { state.refresh = fn; } };
  let page;
  try {
    switch (parts[0] || "") {
      case "": page = overviewPage; break;
      case "graph": page = params.get("host") ? graphPage : estatePage; break;
      case "hosts": page = parts[1] ? (c, m) => hostPage(c, m, decodeURIComponent(parts[1])) : hostsPage;
        if (parts[2] === "history") page = (c, m) => historyPage(c, m, decodeURIComponent(parts[1]));
        break;
      case "incidents": page = incidentsPage; break;
      case "invariants": page = invariantsPage; break;
      case "agents": page = agentsPage; break;
      case "admin": page = state.me.role === "admin" ? (c, m) => adminPage(c, m, parts[1] && decodeURIComponent(parts[1])) : null; break;
      case "settings": page = settingsPage; break;
      case "sessions": page = sessionsPage; break;
      default: page = null;
    }
    if (!page) { clear(main, h("h1", {}, "Not found"), h("p", {}, "There is no such page.")); return; }
    await page(ctx, main);
  } catch (err) {
    clear(main, h("h1", {}, "Something went wrong"), h("p", { class: "error" }, err instanceof ApiError ? err.message : String(err)));
  }
  listen();
  // Live: pages that show changing state re-render quietly every 15 s.
  state.timer = setInterval(() => { if (state.refresh && !document.hidden) state.refresh(); }, 15000);
}

function go(hash) { if (location.hash === hash) render(); else location.hash = hash; }

// Live updates: the event stream (one ticket per connection, since EventSource cannot
// send the session header) triggers a quiet refresh of the current page; the 15 s poll
// stays as the fallback.
let events = null;
let debounce = null;
async function listen() {
  if (events || !session.token) return;
  try {
    const { ticket } = await api("/api/v1/events/ticket", { method: "POST" });
    events = new EventSource(`/api/v1/events?ticket=${encodeURIComponent(ticket)}`);
    const poke = () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => { if (state.refresh && !document.hidden) state.refresh(); }, 400);
    };
    ["incident.opened", "incident.updated", "incident.resolved", "host.silent", "host.recovered"]
      .forEach((type) => events.addEventListener(type, poke));
    events.onerror = () => { events.close(); events = null; setTimeout(listen, 5000); };
  } catch { events = null; setTimeout(listen, 15000); }
}

async function onLogin(token) {
  session.token = token;
  state.me = null;
  go("#/");
}

window.addEventListener("hashchange", render);
window.addEventListener("kefal:logout", () => { state.me = null; toast("Your session ended; log in again.", true); go("#/login"); });
window.addEventListener("kefal:me", async () => { state.me = await api("/api/v1/auth/me"); });
// A plain "Log out" (this browser only): the server ends this session (a copy of the token
// is dead too), the other sessions go on; then the token is forgotten and the stream closed.
window.addEventListener("kefal:signout", async () => {
  try { await api("/auth/logout", { method: "POST", raw: true }); } catch { /* offline: forget it anyway */ }
  session.token = null;
  state.me = null;
  if (events) { events.close(); events = null; }
  toast("Logged out of this browser.");
  go("#/login");
});
render();
