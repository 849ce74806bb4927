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
import { orgPage, currentOrgId, switchOrg } from "./pages/org.js";
import { sessionsPage } from "./pages/sessions.js";

const root = document.getElementById("app");
const state = { me: null, orgs: [], refresh: null, timer: null };
const INVITE = "kefal.invite"; // an invitation link opened before signing in

const NAV = [
  ["#/", "Overview"], ["#/graph", "Graph"], ["#/hosts", "Hosts"], ["#/incidents", "Incidents"],
  ["#/invariants", "Invariants"], ["#/agents", "Agents"], ["#/org", "Organization"], ["#/settings", "Settings"],
];

// The organization switcher: every organization of the user; choosing one swaps the
// session for one bound to it.
function orgSwitcher() {
  if (state.orgs.length < 2) return null;
  const current = currentOrgId();
  return h("select", { class: "org-switch", "aria-label": "Organization", onchange: async (e) => {
    try { await switchOrg(e.target.value); state.me = null; if (events) { events.close(); events = null; } render(); }
    catch (err) { toast(err.message, true); }
  } }, state.orgs.map((o) => h("option", { value: o.id, selected: o.id === current }, o.name)));
}

function layout(main) {
  const route = location.hash.split("?")[0] || "#/";
  const links = [...NAV];
  if (state.me && state.me.role === "admin") links.splice(7, 0, ["#/admin", "Admin"]);
  const nav = h("nav", { class: "nav", "aria-label": "Main" },
    h("a", { href: "#/", class: "brand" }, "kefal-lite"),
    h("button", { class: "menu", type: "button", "aria-label": "Menu",
      onclick: () => nav.classList.toggle("open") }, "☰"),
    h("ul", {}, links.map(([href, label]) => h("li", {},
      h("a", { href, "aria-current": (route === href || (href !== "#/" && route.startsWith(href))) ? "page" : null }, label)))),
    orgSwitcher(),
    h("span", { class: "who" }, state.me ? `${state.me.username} (${state.me.role})` : ""),
    h("button", { type: "button", class: "logout", onclick: () => window.dispatchEvent(new Event("kefal:signout")) }, "Log out"),
  );
  return [nav, h("main", { id: "main", tabindex: "-1" }, main)];
}

function invitePanel(token) {
  const done = () => { sessionStorage.removeItem(INVITE); location.hash = "#/"; render(); };
  const box = h("div", { class: "page invite" });
  const ask = () => clear(box,
    h("h1", {}, "Invitation to an organization"),
    h("p", {}, "This link invites your account into an organization. Accept only if you expected it and trust who sent it: what you do there, its members and admins see."),
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: async () => {
        sessionStorage.removeItem(INVITE);
        try {
          const joined = await api("/api/v1/invitations/accept", { method: "POST", body: { token } });
          state.orgs = (await api("/api/v1/orgs")).items;
          clear(box,
            h("h1", {}, `You joined ${joined.name} as ${joined.role}`),
            h("p", {}, "You are still working in your current organization."),
            h("div", { class: "actions" },
              h("button", { type: "button", onclick: async () => { await switchOrg(joined.id); state.me = null; location.hash = "#/org"; render(); } }, `Switch to ${joined.name}`),
              h("button", { type: "button", onclick: done }, "Stay here")));
        } catch (err) { toast(err.message, true); done(); }
      } }, "Accept"),
      h("button", { type: "button", onclick: done }, "Decline")));
  ask();
  return box;
}

async function render() {
  clearInterval(state.timer);
  state.refresh = null;
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query || "");
  if (path === "/invite" && params.get("token")) {
    sessionStorage.setItem(INVITE, params.get("token"));
    if (!session.token) { location.hash = "#/login"; return; }
  }
  if (path.startsWith("/reset") || path === "/login" || path === "/forgot" || !session.token) {
    clear(root, await authPage(path, params, onLogin));
    return;
  }
  if (!state.me) {
    try { state.me = await api("/api/v1/auth/me"); } catch { session.token = null; return render(); }
    try { state.orgs = (await api("/api/v1/orgs")).items; } catch { state.orgs = []; }
  }
  // An invitation link joins nothing by itself (issue #17, hole 9): a link from anyone
  // could otherwise move this session into their organization. Ask; join on Accept;
  // then offer, not force, the switch.
  const pending = sessionStorage.getItem(INVITE);
  if (pending) {
    clear(root, layout(invitePanel(pending)));
    return;
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
      case "org": page = orgPage; break;
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
