import { api } from "../api.js";
import { h, clear, badge, ago, table, card, copyButton, kv, toast, field } from "../ui.js";

export async function incidentsPage(ctx, main) {
  const p = ctx.params;
  // Open by default, sent explicitly (whatever the API's own default is); "any" is a choice.
  const wanted = p.get("status") || "open";
  const status = h("select", { "aria-label": "Status" }, ["open", "acknowledged", "stale", "dismissed", "resolved", "any"].map((s) => h("option", { value: s, selected: wanted === s }, s === "any" ? "any status" : s)));
  const severity = h("select", { "aria-label": "Severity" }, ["", "critical", "high", "medium", "low"].map((s) => h("option", { value: s, selected: (p.get("severity") || "") === s }, s || "any severity")));
  const topo = await api("/api/v1/topology");
  const host = h("select", { "aria-label": "Host" }, h("option", { value: "" }, "any host"), topo.hosts.map((x) => h("option", { value: x.host_id, selected: p.get("host") === x.host_id }, x.hostname)));
  const apply = () => {
    const q = new URLSearchParams();
    q.set("status", status.value);
    if (severity.value) q.set("severity", severity.value);
    if (host.value) q.set("host", host.value);
    ctx.go(`#/incidents?${q}`);
  };
  [status, severity, host].forEach((s) => s.addEventListener("change", apply));
  const listBox = h("div");
  const detail = h("aside", { class: "panel detail" }, h("p", { class: "muted" }, "Select an incident."));
  clear(main, h("div", { class: "toolbar" }, h("h1", {}, "Incidents"), status, severity, host), h("div", { class: "split" }, listBox, detail));

  const load = async () => {
    const q = new URLSearchParams({ limit: "100" });
    if (status.value !== "any") q.set("status", status.value);
    if (severity.value) q.set("severity", severity.value);
    if (host.value) q.set("host_id", host.value);
    const data = await api(`/api/v1/incidents?${q}`);
    clear(listBox, h("p", { class: "muted" }, `${data.total} incident(s)`), table([
      { title: "Severity", value: (i) => i.severity, render: (i) => badge(i.severity) },
      { title: "Incident", value: (i) => i.title },
      { title: "Host", value: (i) => i.hostname },
      { title: "Status", value: (i) => i.status, render: (i) => badge(i.status, "status") },
      { title: "Fix", value: (i) => i.remediation.status, render: (i) => badge(i.remediation.status, "status") },
      { title: "Seen", value: (i) => i.last_seen_at, render: (i) => ago(i.last_seen_at) },
    ], data.items, { empty: topo.hosts.length ? "No incidents match." : "No hosts report yet.", onRow: (i) => show(i.id) }));
  };
  const show = async (id) => {
    const inc = await api(`/api/v1/incidents/${encodeURIComponent(id)}`);
    renderDetail(detail, inc, async (path, body) => {
      try {
        await api(`/api/v1/incidents/${encodeURIComponent(id)}/${path}`, { method: "POST", body });
        toast("Done");
        await Promise.all([load(), show(id)]);
      } catch (err) { toast(err.message, true); }
    });
  };
  await load();
  if (p.get("id")) await show(p.get("id"));
  ctx.setRefresh(async () => { await load(); const open = detail.dataset.id; if (open) await show(open); });
}

function renderDetail(panel, inc, act) {
  panel.dataset.id = inc.id;
  const rem = inc.remediation;
  const reason = h("input", { placeholder: "why this is fine here (optional)", "aria-label": "Dismiss reason" });
  const until = h("input", { type: "datetime-local" });
  const can = (s) => ["open", "acknowledged", "stale"].includes(inc.status) && s;
  clear(panel,
    h("h2", {}, inc.title),
    h("p", {}, badge(inc.severity), " ", badge(inc.status, "status"), " ", inc.attack ? h("a", { href: `https://attack.mitre.org/techniques/${inc.attack.replace(".", "/")}/`, rel: "noreferrer noopener", target: "_blank" }, inc.attack) : null,
      inc.contributed_by ? h("span", { class: "muted" }, ` · community rule by ${inc.contributed_by}`) : null),
    kv({ host: inc.hostname, subject: inc.subject, first_seen: inc.first_seen_at, last_seen: inc.last_seen_at, occurrences: inc.occurrences,
      ...(inc.resolved_by ? { resolved_by: inc.resolved_by } : {}) }),
    h("h3", {}, "Evidence"), kv(inc.evidence),
    h("div", { class: "actions" },
      can(inc.status !== "acknowledged") ? h("button", { type: "button", onclick: () => act("acknowledge") }, "Acknowledge") : null,
      can(true) ? h("span", { class: "dismiss" }, reason,
        h("label", { class: "inline-field" }, h("span", {}, "Dismiss until"), until, h("small", { class: "muted" }, "empty: for good")), h("button", { type: "button", class: "secondary",
        onclick: () => act("dismiss", { reason: reason.value || null, expires_at: until.value ? new Date(until.value).toISOString() : null }) }, "Dismiss")) : null),
    h("h3", {}, "Remediation ", badge(rem.status, "status"), rem.source ? h("span", { class: "muted" }, ` · ${rem.source}${rem.mode ? ", " + rem.mode : ""}`) : null),
    rem.error ? h("p", { class: "warn-text" }, rem.error) : null,
    rem.status === "verified" ? h("p", { class: "ok-text" }, "Verified: the next snapshot no longer showed the violation.") : null,
    rem.status === "failed" ? h("p", { class: "error" }, "Failed: the next snapshot still showed the violation.") : null,
    rem.actions.length ? h("ol", { class: "steps" }, rem.actions.map((a) => h("li", {}, h("strong", {}, a.title), h("p", { class: "muted" }, a.why),
      a.commands.map((c) => h("div", { class: "cmd" }, h("code", {}, c), copyButton(c)))))) :
      h("p", { class: "muted" }, rem.status === "pending" ? "Being generated…" : "No remediation yet."),
    h("div", { class: "actions" },
      can(!["pending", "applied"].includes(rem.status)) ? h("button", { type: "button", class: "secondary", onclick: () => act("remediate") }, rem.status === "none" ? "Propose a fix" : "Propose again") : null,
      rem.status === "proposed" ? h("button", { type: "button", onclick: () => act("remediation/accept") }, "Accept") : null,
      rem.status === "proposed" ? h("button", { type: "button", class: "secondary", onclick: () => act("remediation/reject") }, "Reject") : null,
      ["proposed", "accepted"].includes(rem.status) && can(true) ? h("button", { type: "button", onclick: () => act("remediation/applied") }, "I applied it") : null),
    h("h3", {}, "History"),
    h("ol", { class: "history" }, (inc.history || []).map((e) => h("li", {}, ago(e.at), ` ${e.action.replace(/_/g, " ")} by ${e.actor}`))),
  );
}
