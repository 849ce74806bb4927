import { api, session } from "../api.js";
import { h, clear, badge, ago, table, card, kv, barChart, field, toast } from "../ui.js";

export async function adminPage(ctx, main, userId) {
  if (userId) return userDetail(main, userId);
  const [dash, users] = await Promise.all([api("/api/v1/admin/dashboard?days=30"), api("/api/v1/admin/users?limit=500")]);
  const t = dash.totals;
  const q = h("input", { type: "search", placeholder: "Search users", "aria-label": "Search users" });
  const userBox = h("div");
  const renderUsers = (items) => clear(userBox, table([
    { title: "User", value: (u) => u.username },
    { title: "Email", value: (u) => u.email || "" },
    { title: "Role", value: (u) => u.role },
    { title: "Plan", value: (u) => `${u.plan} (${u.billing_state})` },
    { title: "Agents", value: (u) => u.agents },
    { title: "Last active", value: (u) => u.last_active_at || "", render: (u) => ago(u.last_active_at) },
  ], items, { sortable: true, onRow: (u) => ctx.go(`#/admin/${encodeURIComponent(u.id)}`) }));
  q.addEventListener("input", async () => renderUsers((await api(`/api/v1/admin/users?limit=500&q=${encodeURIComponent(q.value)}`)).items));
  renderUsers(users.items);
  const auditBox = h("div");
  const action = h("input", { placeholder: "action, e.g. login_failed", "aria-label": "Filter by action" });
  const loadAudit = async () => {
    const a = await api(`/api/v1/admin/audit?limit=100${action.value ? `&action=${encodeURIComponent(action.value)}` : ""}`);
    clear(auditBox, table([
      { title: "When", value: (r) => r.at, render: (r) => ago(r.at) },
      { title: "Actor", value: (r) => r.actor }, { title: "Action", value: (r) => r.action },
      { title: "Target", value: (r) => r.target || "" }, { title: "Client", value: (r) => r.client || "" },
    ], a.items, { empty: "No entries." }));
  };
  action.addEventListener("change", loadAudit);
  const newUser = h("input", { required: true, "aria-label": "New username", placeholder: "username" });
  const newPw = h("input", { type: "password", required: true, minlength: 10, "aria-label": "Password", placeholder: "password (10+ characters)", autocomplete: "new-password" });
  const role = h("select", { "aria-label": "Role" }, h("option", { value: "user" }, "user"), h("option", { value: "admin" }, "admin"));
  clear(main, h("h1", {}, "Admin"),
    h("div", { class: "stats" },
      [["users", t.users], ["active agents", t.agents], ["hosts online", t.hosts_online], ["hosts silent", t.hosts_silent], ["snapshots kept", t.snapshots]]
        .map(([label, n]) => h("div", { class: "stat" }, h("strong", {}, n), h("span", {}, label))),
      Object.entries(t.open_incidents).map(([s, n]) => h("div", { class: `stat ${n ? `sev-${s}` : ""}` }, h("strong", {}, n), h("span", {}, `${s} open`)))),
    card("Last 30 days", h("div", { class: "charts" },
      barChart(dash.daily, "snapshots", "Snapshots"), barChart(dash.daily, "incidents", "Incidents"),
      barChart(dash.daily, "active_agents", "Active agents"), barChart(dash.daily, "new_users", "New users"))),
    card("Users", q, userBox, h("form", { class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      try { await api("/api/v1/admin/users", { method: "POST", body: { username: newUser.value, password: newPw.value, role: role.value } }); toast("User created"); ctx.go("#/admin"); }
      catch (err) { toast(err.message, true); }
    } }, newUser, newPw, role, h("button", { type: "submit" }, "Add user"))),
    card("Audit log", h("div", { class: "toolbar" }, action, h("button", { type: "button", class: "secondary", onclick: exportCsv }, "Export CSV")), auditBox));
  await loadAudit();
}

async function exportCsv() {
  // The session token is a header, so the download goes through fetch rather than a link.
  const res = await fetch("/api/v1/admin/audit?format=csv", { headers: { Authorization: `Bearer ${session.token}` } });
  const url = URL.createObjectURL(await res.blob());
  const a = h("a", { href: url, download: "kefal-audit.csv" });
  document.body.append(a); a.click(); a.remove(); URL.revokeObjectURL(url);
}

async function userDetail(main, id) {
  const d = await api(`/api/v1/admin/users/${encodeURIComponent(id)}`);
  clear(main, h("p", {}, h("a", { href: "#/admin" }, "← Admin")), h("h1", {}, d.user.username),
    card("Account", kv({ ...d.user })), card("Billing", kv(d.billing)),
    card("Agents", table([{ title: "Name", value: (a) => a.name }, { title: "Host", value: (a) => a.hostname || "" },
      { title: "Status", value: (a) => a.status }, { title: "Last seen", value: (a) => a.last_seen_at || "", render: (a) => ago(a.last_seen_at) }], d.agents)),
    card("Recent incidents", table([{ title: "Severity", value: (i) => i.severity, render: (i) => badge(i.severity) },
      { title: "Incident", value: (i) => i.title }, { title: "Status", value: (i) => i.status }], d.recent_incidents)));
}
