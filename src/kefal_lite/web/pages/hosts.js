import { api } from "../api.js";
import { h, clear, badge, ago, table, card, toast } from "../ui.js";
import { mcpCard } from "./mcp.js";

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
        { title: "Last seen", value: (x) => x.last_seen_at, render: (x) => ago(x.last_seen_at) },
      ], topo.hosts, { sortable: true, empty: "No hosts yet: enroll one from the Agents page.", onRow: (x) => ctx.go(`#/hosts/${encodeURIComponent(x.host_id)}`) }));
  };
  await load();
  ctx.setRefresh(load);
}

export async function hostPage(ctx, main, hostId) {
  // Built once; a refresh replaces the boxes' contents only, so the process filter keeps
  // its text, focus, tab and page while the live data changes under it.
  const head = h("div");
  const incidentsBox = h("div");
  const portsBox = h("div");
  const usersBox = h("div");
  const keysBox = h("div");
  const procs = processView();
  const group = groupEditor(hostId);
  clear(main, h("p", {}, h("a", { href: "#/hosts" }, "← Hosts")), head, group.form,
    card("Open incidents", incidentsBox), card("Listening ports", portsBox), procs.card,
    card("Users", usersBox), card("SSH authorized keys", keysBox), mcpCard(hostId));
  const load = async () => {
    const host = await api(`/api/v1/hosts/${encodeURIComponent(hostId)}`);
    const snap = host.latest_snapshot || {};
    clear(head,
      h("h1", {}, host.hostname, " ", badge(host.status)),
      h("p", { class: "muted" }, `${snap.os || ""} ${snap.kernel || ""} · agent ${snap.agent_version || "?"} · last seen `, ago(host.last_seen_at), " · ",
        h("a", { href: `#/graph?host=${encodeURIComponent(host.host_id)}` }, "graph"),
        " · ", h("a", { href: `#/hosts/${encodeURIComponent(host.host_id)}/history` }, "history"),
        host.suppressed ? [" · ", h("a", { href: "#/settings", class: "suppressed" }, `${host.suppressed} finding(s) suppressed`)] : null),
      host.learning ? h("p", { class: "muted", "data-learning": "" },
        "Learning what is normal on this host (", host.learning_until ? ["ends ", ago(host.learning_until)] : "until its first snapshots",
        "): new ports, processes and peers are recorded, not alerted.") : null);
    group.show(host.group);
    clear(incidentsBox, table([
      { title: "Severity", value: (i) => i.severity, render: (i) => badge(i.severity) },
      { title: "Incident", value: (i) => i.title, render: (i) => h("a", { href: `#/incidents?id=${encodeURIComponent(i.id)}` }, i.title) },
      { title: "Seen", value: (i) => i.last_seen_at, render: (i) => ago(i.last_seen_at) },
    ], host.open_incidents, { empty: "No open incidents on this host." }));
    clear(portsBox, table([
      { title: "Port", value: (p) => `${p.port}/${p.protocol || "tcp"}` },
      { title: "Address", value: (p) => p.address ?? "?" },
      { title: "Exposure", value: (p) => exposure(p.address), render: (p) => badge(exposure(p.address), exposure(p.address) === "exposed" ? "high" : "low") },
      { title: "Process", value: (p) => p.process || "?" },
    ], snap.listening_ports || [], { sortable: true }));
    procs.show(snap);
    clear(usersBox, h("p", {}, "Logged in: ", (snap.logged_in_users || []).join(", ") || "nobody"),
      table([
        { title: "Account", value: (u) => u.name }, { title: "UID", value: (u) => u.uid ?? "" },
        { title: "Groups", value: (u) => (u.groups || []).join(", ") }, { title: "Shell", value: (u) => u.shell || "" },
      ], snap.users || [], { sortable: true }));
    clear(keysBox, table([
      { title: "User", value: (k) => k.user }, { title: "Fingerprint", value: (k) => k.fingerprint, render: (k) => h("code", {}, k.fingerprint) },
      { title: "Comment", value: (k) => k.comment || "" },
    ], snap.ssh_authorized_keys || [], { empty: "No keys reported." }));
  };
  await load();
  ctx.setRefresh(load);
}

// The host's group (prod, dev, ...): the estate graph draws the host in it, the lateral
// pack compares keys across groups. Built once: a refresh updates the saved value but not
// what the person is typing.
function groupEditor(hostId) {
  let saved = null;
  const input = h("input", { name: "group", maxlength: "64", "aria-label": "Group" });
  const clearButton = h("button", { type: "button", class: "secondary" }, "Clear");
  const show = (value) => {
    const typing = document.activeElement === input || input.value !== (saved || "");
    saved = value || null;
    if (!typing) input.value = saved || "";
    input.placeholder = saved ? "" : "none: grouped by subnet";
    clearButton.classList.toggle("hidden", !saved);
  };
  const save = async (value) => {
    try {
      const r = await api(`/api/v1/hosts/${encodeURIComponent(hostId)}`, { method: "PATCH", body: { group: value } });
      input.value = r.group || "";
      show(r.group);
      toast(r.group ? `Group set to ${r.group}` : "Grouped by subnet again");
    } catch (err) { toast(err.message, true); }
  };
  clearButton.addEventListener("click", () => save(null));
  const form = h("form", { class: "inline group-edit host-group", onsubmit: (e) => { e.preventDefault(); save(input.value.trim() || null); } },
    h("label", { class: "field" }, h("span", {}, "Group"), input), h("button", { type: "submit" }, "Save"), clearButton);
  return { form, show };
}

const PAGE = 50;
const GROUPS = [
  ["services", "Services", "Daemons started by init (parent PID 1)."],
  ["listening", "Listening", "Processes that own a listening socket."],
  ["everything", "Everything", "Every process the agent saw."],
];

// Linux kernel threads are children of kthreadd (PID 2): dozens of kworker/… lines with no
// binary or command line, noise when looking for what the host runs.
function isKernelThread(p, linux) {
  return linux && (p.pid === 2 || p.ppid === 2);
}

function processView() {
  const st = { group: "services", q: "", kernel: false, view: {}, snap: {} };
  const box = h("div");
  const title = h("h2", {}, "Processes");
  const hint = h("p", { class: "muted" });
  const tabButtons = GROUPS.map(([key]) => h("button", {
    type: "button", role: "tab", class: "tab", "data-group": key,
    onclick: () => { st.group = key; st.view.page = 0; render(); },
  }));
  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "Process groups" }, tabButtons);
  const filter = h("input", { type: "search", placeholder: "filter: name, user or command line", "aria-label": "Filter processes" });
  const kernel = h("input", { type: "checkbox" });
  const kernelLabel = h("span");
  const toggle = h("label", { class: "check" }, kernel, kernelLabel);
  filter.addEventListener("input", () => { st.q = filter.value; st.view.page = 0; render(); });
  kernel.addEventListener("change", () => { st.kernel = kernel.checked; st.view.page = 0; render(); });
  const render = () => {
    const snap = st.snap;
    const linux = String(snap.os || "").toLowerCase() === "linux";
    const all = snap.processes || [];
    const ports = snap.listening_ports || [];
    const byPid = new Map();
    const byName = new Map();
    for (const lp of ports) {
      const label = `${lp.port}/${lp.protocol || "tcp"}`;
      if (lp.pid != null) byPid.set(lp.pid, [...(byPid.get(lp.pid) || []), label]);
      else if (lp.process) byName.set(lp.process, [...(byName.get(lp.process) || []), label]);
    }
    const portsOf = (p) => [...new Set([...(byPid.get(p.pid) || []), ...(byName.get(p.name) || [])])];
    const kthreads = all.filter((p) => isKernelThread(p, linux)).length;
    const user = all.filter((p) => !isKernelThread(p, linux));
    const groups = {
      services: user.filter((p) => p.ppid === 1),
      listening: user.filter((p) => portsOf(p).length),
      everything: st.kernel ? all : user,
    };
    GROUPS.forEach(([key, label], i) => {
      tabButtons[i].textContent = `${label} (${groups[key].length})`;
      tabButtons[i].setAttribute("aria-selected", String(st.group === key));
    });
    const [, , about] = GROUPS.find(([key]) => key === st.group);
    hint.textContent = about;
    kernelLabel.textContent = ` show kernel threads (${kthreads})`;
    toggle.classList.toggle("hidden", st.group !== "everything" || !kthreads);
    title.textContent = `Processes (${all.length})`;
    const q = st.q.trim().toLowerCase();
    const rows = q ? groups[st.group].filter((p) => [p.name, p.user, p.cmdline, p.exe].some((v) => v && String(v).toLowerCase().includes(q))) : groups[st.group];
    clear(box, table([
      { title: "PID", value: (p) => p.pid },
      { title: "Name", value: (p) => p.name },
      { title: "User", value: (p) => p.user || "" },
      { title: "CPU %", value: (p) => p.cpu_percent ?? 0 },
      { title: "Ports", value: (p) => portsOf(p).join(", ") },
      { title: "Command line", value: (p) => p.cmdline || p.exe || "", render: (p) => h("code", {}, p.cmdline || p.exe || "") },
    ], rows, { sortable: true, pageSize: PAGE, view: st.view, empty: q ? "No process matches the filter." : "None reported." }));
  };
  return {
    card: h("section", { class: "card", id: "processes" }, title,
      h("div", { class: "toolbar" }, tabs, filter, toggle), hint, box),
    show: (snap) => { st.snap = snap; render(); },
  };
}

function exposure(address) {
  if (address === null || address === undefined || address === "") return "unknown";
  const a = String(address).replace(/^\[|\]$/g, "").toLowerCase();
  return a.startsWith("127.") || a === "::1" || a === "localhost" ? "loopback" : "exposed";
}
