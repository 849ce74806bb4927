import { api } from "../api.js";
import { h, clear, badge, table, card, field, toast, kv } from "../ui.js";

// One example params object per kind: a starting point for the contribute form.
const EXAMPLES = {
  process_in_suspicious_path: { suspicious_paths: ["/tmp"], user: "root" },
  process_name_in: { names: ["xmrig"], users: ["root"] },
  process_cmdline_contains: { patterns: ["/dev/tcp/"] },
  process_exe_deleted: {},
  process_masquerades_kernel_thread: {},
  port_exposed: { ports: [5432] },
  port_listening: { ports: [23] },
  port_owner_not_in: { port: 22, allowed: ["sshd"] },
  port_owner_in: { processes: ["socat"] },
  logged_in_user_in: { users: ["root"] },
  system_account_login: { max_uid: 999, except: ["root"] },
  uid0_not_root: {},
  novel_value: { field: "listening_ports", learning_snapshots: 3 },
  agent_silent: { minutes: 10 },
  timestamp_not_monotonic: {},
  clock_skew: { seconds: 300 },
  uptime_decreased: {},
  process_disappeared: { names: ["auditd"] },
  sustained_cpu: { percent: 90, snapshots: 3 },
  process_count_spike: { factor: 3, min_baseline: 20 },
  any_of: { predicates: [{ kind: "process_name_in", params: { names: ["ngrok"] } }] },
};

export async function invariantsPage(ctx, main) {
  const load = async () => {
    const [active, pending, rejected] = await Promise.all([
      api("/api/v1/invariants"), api("/api/v1/invariants?status=pending"), api("/api/v1/invariants?status=rejected"),
    ]);
    clear(main, h("h1", {}, "Invariants"),
      card("Contribute an invariant", contributeForm(load)),
      card("Your contributions", table([
        { title: "Name", value: (i) => i.name },
        { title: "Kind", value: (i) => i.predicate.kind },
        { title: "Status", value: (i) => i.status, render: (i) => badge(i.status, "status") },
        { title: "", value: () => "", render: (i) => h("button", { type: "button", class: "verify", onclick: () => verify(i.id, main, load) }, i.status === "rejected" ? "Verify again" : "Verify") },
      ], [...pending.items, ...rejected.items], { empty: "None pending or rejected." }), h("div", { id: "report" })),
      card(`In force (${active.total})`, table([
        { title: "Name", value: (i) => i.name, render: (i) => h("span", { title: i.metadata.description || "" }, i.name) },
        { title: "Category", value: (i) => i.category },
        { title: "Kind", value: (i) => i.predicate.kind },
        { title: "Severity", value: (i) => i.severity, sort: (i) => ({ critical: 4, high: 3, medium: 2, low: 1 }[i.severity]), render: (i) => badge(i.severity) },
        { title: "ATT&CK", value: (i) => i.attack || "" },
        { title: "Source", value: source },
      ], active.items, { sortable: true })));
  };
  await load();
}

// Packs ship with the server and have no contributor: they are named by their pack.
function source(i) {
  if (i.source === "pack") return i.metadata.pack ? `pack ${i.metadata.pack}` : "pack";
  return i.contributed_by ? `${i.source} by ${i.contributed_by}` : i.source;
}

function contributeForm(reload) {
  const name = h("input", { required: true, minlength: 3, maxlength: 80, name: "name" });
  const type = h("select", { name: "invariant_type" }, ["structural", "behavioral", "temporal"].map((t) => h("option", { value: t }, t)));
  const severity = h("select", { name: "severity" }, ["high", "critical", "medium", "low"].map((t) => h("option", { value: t }, t)));
  const kind = h("select", { name: "kind" }, Object.keys(EXAMPLES).map((k) => h("option", { value: k }, k)));
  const params = h("textarea", { rows: 4, name: "params", spellcheck: "false" }, JSON.stringify(EXAMPLES.process_in_suspicious_path, null, 1));
  kind.addEventListener("change", () => { params.value = JSON.stringify(EXAMPLES[kind.value], null, 1); });
  const description = h("input", { required: true, maxlength: 500, name: "description" });
  const pitch = h("input", { maxlength: 1000, name: "pitch" });
  const error = h("p", { class: "error", role: "alert" });
  return h("form", { id: "contribute", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    let parsed;
    try { parsed = JSON.parse(params.value || "{}"); } catch { error.textContent = "params is not valid JSON"; return; }
    try {
      await api("/api/v1/invariants/contribute", { method: "POST", body: {
        name: name.value, invariant_type: type.value, severity: severity.value,
        predicate: { kind: kind.value, params: parsed },
        metadata: { description: description.value, ...(pitch.value ? { pitch: pitch.value } : {}) } } });
      toast("Contributed: now verify it");
      await reload();
    } catch (err) { error.textContent = err.message; }
  } }, h("div", { class: "grid" }, field("Name", name), field("Type", type), field("Severity", severity), field("Predicate kind", kind)),
  field("Params (JSON)", params, "Plain values only; patterns are case-insensitive substrings, not regular expressions."),
  field("What it detects", description), field("Why it matters (optional)", pitch), error, h("button", { type: "submit" }, "Contribute"));
}

async function verify(id, main, reload) {
  try {
    const result = await api(`/api/v1/invariants/${encodeURIComponent(id)}/verify`, { method: "POST" });
    await reload();
    const r = result.report;
    const target = main.querySelector("#report");
    clear(target, h("div", { class: `report ${result.status}` },
      h("h3", {}, "Verification: ", badge(result.status, "status")),
      r.reasons.length ? h("ul", {}, r.reasons.map((x) => h("li", {}, x))) : h("p", {}, "It fires on its constructive example, stays quiet on the clean one, and on the whole benign corpus."),
      h("h4", {}, "Constructive"), kv(r.constructive),
      h("h4", {}, `Red team (${r.red_team.corpus_snapshots} benign snapshots)`),
      r.red_team.false_positives.length ? h("ul", {}, r.red_team.false_positives.slice(0, 20).map((f) => h("li", {}, `${f.snapshot}: ${f.title}`))) : h("p", {}, "No false positives."),
      r.red_team.evasions.length ? h("ul", {}, r.red_team.evasions.map((e) => h("li", {}, `${e.variant}: `, e.caught ? badge("caught", "low") : badge("slips", "high")))) : null,
      r.llm ? h("div", {}, h("h4", {}, `Model opinion (${r.llm.model}, advisory)`), h("p", {}, r.llm.constructive || ""), h("p", {}, r.llm.red_team || "")) : null));
  } catch (err) { toast(err.message, true); }
}
