import { api } from "../api.js";
import { h, clear, badge, when, table, card } from "../ui.js";

export async function hostsPage(ctx, main) {
  const load = async () => {
    const topo = await api("/api/v1/topology");
    clear(main, h("h1", {}, "Hosts"),
      table([
        { title: "Host", value: (x) => x.hostname, render: (x) => h("a", { href: `#/hosts/${encodeURIComponent(x.host_id)}` }, x.hostname) },
        { title: "Status", value: (x) => x.status, render: (x) => badge(x.status) },
        { title: "OS", value: (x) => `${x.os || ""} ${x.kernel || ""}` },
        { title: "Services", value: (x) => x.services },
        { title: "Ports", value: (x) => x.ports },
        { title: "Identities", value: (x) => x.identities },
        { title: "Open incidents", value: (x) => x.open_incidents },
        { title: "Worst", value: (x) => x.max_severity || "", sort: (x) => ({ critical: 4, high: 3, medium: 2, low: 1 }[x.max_severity] || 0), render: (x) => x.max_severity ? badge(x.max_severity) : "" },
        { title: "Last seen", value: (x) => x.last_seen_at, render: (x) => when(x.last_seen_at) },
      ], topo.hosts, { sortable: true, empty: "No hosts yet: enroll one from the Agents page.", onRow: (x) => ctx.go(`#/hosts/${encodeURIComponent(x.host_id)}`) }));
  };
  await load();
  ctx.setRefresh(load);
}

export async function hostPage(ctx, main, hostId) {
  const load = async () => {
    const host = await api(`/api/v1/hosts/${encodeURIComponent(hostId)}`);
    const snap = host.latest_snapshot || {};
    clear(main,
      h("p", {}, h("a", { href: "#/hosts" }, "← Hosts")),
      h("h1", {}, host.hostname, " ", badge(host.status)),
      h("p", { class: "muted" }, `${snap.os || ""} ${snap.kernel || ""} · agent ${snap.agent_version || "?"} · last seen ${when(host.last_seen_at)} · `,
        h("a", { href: `#/graph?host=${encodeURIComponent(host.host_id)}` }, "graph"),
        " · ", h("a", { href: `#/hosts/${encodeURIComponent(host.host_id)}/history` }, "history"),
        host.suppressed ? [" · ", h("a", { href: "#/settings", class: "suppressed" }, `${host.suppressed} finding(s) suppressed`)] : null),
      card("Open incidents", table([
        { title: "Severity", value: (i) => i.severity, render: (i) => badge(i.severity) },
        { title: "Incident", value: (i) => i.title, render: (i) => h("a", { href: `#/incidents?id=${encodeURIComponent(i.id)}` }, i.title) },
        { title: "Seen", value: (i) => when(i.last_seen_at) },
      ], host.open_incidents, { empty: "No open incidents on this host." })),
      card("Listening ports", table([
        { title: "Port", value: (p) => `${p.port}/${p.protocol || "tcp"}` },
        { title: "Address", value: (p) => p.address ?? "?" },
        { title: "Exposure", value: (p) => exposure(p.address), render: (p) => badge(exposure(p.address), exposure(p.address) === "exposed" ? "high" : "low") },
        { title: "Process", value: (p) => p.process || "?" },
      ], snap.listening_ports || [], { sortable: true })),
      card(`Processes (${(snap.processes || []).length})`, table([
        { title: "PID", value: (p) => p.pid },
        { title: "Name", value: (p) => p.name },
        { title: "User", value: (p) => p.user || "" },
        { title: "CPU %", value: (p) => p.cpu_percent ?? 0 },
        { title: "Command line", value: (p) => p.cmdline || p.exe || "", render: (p) => h("code", {}, p.cmdline || p.exe || "") },
      ], snap.processes || [], { sortable: true })),
      card("Users", h("p", {}, "Logged in: ", (snap.logged_in_users || []).join(", ") || "nobody"),
        table([
          { title: "Account", value: (u) => u.name }, { title: "UID", value: (u) => u.uid ?? "" },
          { title: "Groups", value: (u) => (u.groups || []).join(", ") }, { title: "Shell", value: (u) => u.shell || "" },
        ], snap.users || [], { sortable: true })),
      card("SSH authorized keys", table([
        { title: "User", value: (k) => k.user }, { title: "Fingerprint", value: (k) => k.fingerprint, render: (k) => h("code", {}, k.fingerprint) },
        { title: "Comment", value: (k) => k.comment || "" },
      ], snap.ssh_authorized_keys || [], { empty: "No keys reported." })),
    );
  };
  await load();
  ctx.setRefresh(load);
}

function exposure(address) {
  if (address === null || address === undefined || address === "") return "unknown";
  const a = String(address).replace(/^\[|\]$/g, "").toLowerCase();
  return a.startsWith("127.") || a === "::1" || a === "localhost" ? "loopback" : "exposed";
}
