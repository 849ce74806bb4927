import { api } from "../api.js";
import { h, clear, badge, ago, table, card, copyButton, kv, toast, field } from "../ui.js";
import { blastRadius } from "../blast.js";

export async function incidentsPage(ctx, main) {
  const p = ctx.params;
  // What still needs a person (open, acknowledged or stale) by default, and the filter is
  // always sent explicitly, so the list never depends on the API's own default.
  const wanted = p.get("status") || "active";
  const status = h("select", { "aria-label": "Status" }, [["active", "needs attention"], ["open"], ["acknowledged"], ["stale"], ["dismissed"], ["resolved"], ["all", "any status"]]
    .map(([s, label]) => h("option", { value: s, selected: wanted === s }, label || s)));
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
  // Bulk: ids ticked in the list, acted on together; each id gets its own result.
  const selected = new Set();
  let shown = [];
  const count = h("span", { class: "muted", "aria-live": "polite" });
  const all = h("input", { type: "checkbox", "aria-label": "Select all shown" });
  const bulkReason = h("input", { placeholder: "reason (optional)", "aria-label": "Bulk reason" });
  const bulkButtons = [["acknowledge", "Acknowledge"], ["resolve", "Resolve"], ["dismiss", "Dismiss"]].map(([action, label]) =>
    h("button", { type: "button", class: action === "acknowledge" ? null : "secondary", onclick: () => bulk(action) }, `${label} selected`));
  const syncBulk = () => {
    count.textContent = `${selected.size} selected`;
    bulkButtons.forEach((b) => { b.disabled = selected.size === 0; });
    all.checked = shown.length > 0 && shown.every((i) => selected.has(i.id));
    listBox.querySelectorAll("input[data-id]").forEach((box) => { box.checked = selected.has(box.dataset.id); });
  };
  all.addEventListener("change", () => {
    shown.forEach((i) => (all.checked ? selected.add(i.id) : selected.delete(i.id)));
    syncBulk();
  });
  const bulk = async (action) => {
    try {
      const r = await api("/api/v1/incidents/bulk", { method: "POST", body: { ids: [...selected], action, reason: bulkReason.value || null } });
      const failed = r.results.filter((x) => x.result !== "ok");
      toast(`${r.ok} ${action === "dismiss" ? "dismissed" : action + "d"}` + (failed.length ? `, ${failed.length} skipped (${failed[0].detail})` : ""), failed.length > 0);
      selected.clear();
      bulkReason.value = "";
      await load();
    } catch (err) { toast(err.message, true); }
  };
  const bulkBar = h("div", { class: "toolbar bulk", role: "group", "aria-label": "Bulk actions" },
    h("label", { class: "check" }, all, " all"), count, bulkReason, bulkButtons);
  clear(main, h("div", { class: "toolbar" }, h("h1", {}, "Incidents"), status, severity, host), bulkBar, h("div", { class: "split" }, listBox, detail));

  const load = async () => {
    const q = new URLSearchParams({ limit: "100" });
    q.set("status", status.value);
    if (severity.value) q.set("severity", severity.value);
    if (host.value) q.set("host_id", host.value);
    const data = await api(`/api/v1/incidents?${q}`);
    shown = data.items;
    const ids = new Set(shown.map((i) => i.id));
    [...selected].forEach((id) => { if (!ids.has(id)) selected.delete(id); });
    clear(listBox, h("p", { class: "muted" }, `${data.total} incident(s)`), table([
      { title: "", value: () => "", render: (i) => h("input", { type: "checkbox", "data-id": i.id, "aria-label": "Select", checked: selected.has(i.id),
        onclick: (e) => e.stopPropagation(), onkeydown: (e) => e.stopPropagation(),
        onchange: (e) => { if (e.target.checked) selected.add(i.id); else selected.delete(i.id); syncBulk(); } }) },
      { title: "Severity", value: (i) => i.severity, render: (i) => badge(i.severity) },
      { title: "Incident", value: (i) => i.title },
      { title: "Host", value: (i) => i.hostname },
      { title: "Status", value: (i) => i.status, render: (i) => badge(i.status, "status") },
      { title: "Fix", value: (i) => i.remediation.status, render: (i) => badge(i.remediation.status, "status") },
      { title: "Seen", value: (i) => i.last_seen_at, render: (i) => ago(i.last_seen_at) },
    ], data.items, { empty: topo.hosts.length ? "No incidents match." : "No hosts report yet.", onRow: (i) => show(i.id) }));
    syncBulk();
  };
  const show = async (id) => {
    const inc = await api(`/api/v1/incidents/${encodeURIComponent(id)}`);
    const done = async (call, message) => {
      try {
        await call();
        toast(message);
        await Promise.all([load(), show(id)]);
      } catch (err) { toast(err.message, true); }
    };
    renderDetail(detail, inc,
      (path, body) => done(() => api(`/api/v1/incidents/${encodeURIComponent(id)}/${path}`, { method: "POST", body }), "Done"),
      (body) => done(() => api("/api/v1/suppressions", { method: "POST", body }), "Suppressed: listed in Settings"));
  };
  await load();
  if (p.get("id")) await show(p.get("id"));
  ctx.setRefresh(async () => { await load(); const open = detail.dataset.id; if (open) await show(open); });
}

// A subject as an fnmatch pattern that matches exactly itself; a subject longer than the
// server's 200-character glob limit becomes its escaped prefix followed by "*".
function literalGlob(text) {
  const escape = (t) => t.replace(/[[*?]/g, (c) => `[${c}]`);
  if (escape(text).length <= 200) return escape(text);
  let n = 199;
  while (escape(text.slice(0, n)).length > 199) n -= 1;
  return `${escape(text.slice(0, n))}*`;
}

function renderDetail(panel, inc, act, suppress) {
  panel.dataset.id = inc.id;
  const rem = inc.remediation;
  const reason = h("input", { placeholder: "why this is fine here (optional)", "aria-label": "Reason" });
  const until = h("input", { type: "datetime-local" });
  const can = (s) => ["open", "acknowledged", "stale"].includes(inc.status) && s;
  // novel_value findings carry the baseline field they are about
  const novelty = Boolean(inc.evidence && typeof inc.evidence.field === "string");
  const suppression = (hostId) => ({
    invariant_id: inc.invariant_id, host_id: hostId, subject_glob: literalGlob(inc.subject), incident_id: inc.id,
    reason: (reason.value || `${inc.invariant_name} on ${inc.subject} is expected ${hostId ? `on ${inc.hostname}` : "everywhere"}`).slice(0, 1000),
    expires_at: until.value ? new Date(until.value).toISOString() : null,
  });
  clear(panel,
    h("h2", {}, inc.title),
    h("p", {}, badge(inc.severity), " ", badge(inc.status, "status"), " ", inc.attack ? h("a", { href: `https://attack.mitre.org/techniques/${inc.attack.replace(".", "/")}/`, rel: "noreferrer noopener", target: "_blank" }, inc.attack) : null,
      inc.contributed_by ? h("span", { class: "muted" }, ` · community rule by ${inc.contributed_by}`) : null),
    kv({ host: inc.hostname, subject: inc.subject, first_seen: inc.first_seen_at, last_seen: inc.last_seen_at, occurrences: inc.occurrences,
      ...(inc.resolved_by ? { resolved_by: inc.resolved_by } : {}) }),
    h("h3", {}, "Evidence"), kv(inc.evidence),
    blastRadius(inc.host_id),
    h("div", { class: "actions" },
      can(inc.status !== "acknowledged") ? h("button", { type: "button", onclick: () => act("acknowledge") }, "Acknowledge") : null,
      can(true) ? h("button", { type: "button", class: "secondary", onclick: () => act("resolve", { reason: reason.value || null }) }, "Resolve") : null,
      can(novelty) ? h("button", { type: "button", class: "secondary", title: "This value is normal on this host: learn it and resolve",
        onclick: () => act("baseline") }, "Add to baseline") : null,
      can(true) ? h("span", { class: "dismiss" }, reason,
        h("label", { class: "inline-field" }, h("span", {}, "Dismiss until"), until, h("small", { class: "muted" }, "empty: for good")), h("button", { type: "button", class: "secondary",
        onclick: () => act("dismiss", { reason: reason.value || null, expires_at: until.value ? new Date(until.value).toISOString() : null }) }, "Dismiss")) : null),
    can(true) ? h("div", { class: "actions suppress" }, h("span", { class: "muted" }, "Never again:"),
      h("button", { type: "button", class: "secondary", title: `${inc.invariant_name} on ${inc.subject}, on this host only`,
        onclick: () => suppress(suppression(inc.host_id)) }, "Not on this host"),
      h("button", { type: "button", class: "secondary", title: `${inc.invariant_name} on ${inc.subject}, on every host`,
        onclick: () => suppress(suppression(null)) }, "Not anywhere")) : null,
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
