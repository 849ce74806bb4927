// MCP servers on one host (GET /api/v1/mcp-servers?host_id=): riskiest first, with the
// reasons. Text only, like every page: names and arguments come from the host.
import { api } from "../api.js";
import { h, badge, table, card } from "../ui.js";

const LEVEL = { critical: "critical", high: "high", medium: "medium", low: "low" };

export function mcpCard(hostId) {
  const body = h("div", { "data-mcp": "" }, h("p", { class: "muted" }, "Loading…"));
  const el = card("AI agent tooling (MCP servers)", body);
  api(`/api/v1/mcp-servers?host_id=${encodeURIComponent(hostId)}`).then((page) => {
    body.replaceChildren(table([
      { title: "Risk", value: (s) => s.risk.score, render: (s) => badge(`${s.risk.level} ${s.risk.score}`, LEVEL[s.risk.level]) },
      { title: "Server", value: (s) => s.name, render: (s) => h("span", {}, h("strong", {}, s.name), s.configured ? "" : [" ", badge("not configured", "high")]) },
      { title: "Client", value: (s) => s.client || "" },
      { title: "Account", value: (s) => s.user || "" },
      { title: "Runs", value: (s) => [s.command, ...(s.args || [])].filter(Boolean).join(" ") || s.url || "", render: (s) => h("code", {}, [s.command, ...(s.args || [])].filter(Boolean).join(" ") || s.url || "") },
      { title: "Why", value: (s) => s.risk.reasons.map((r) => r.text).join("; "), render: (s) => h("ul", {}, s.risk.reasons.map((r) => h("li", {}, r.text))) },
      { title: "Secrets", value: (s) => (s.secrets_inline ? "inline" : ""), render: (s) => (s.secrets_inline ? badge(`inline: ${s.secret_in.join(", ")}`, "high") : (s.env_names || []).join(", ")) },
      { title: "Running", value: (s) => s.running.length, render: (s) => s.running.map((p) => `${p.pid}`).join(", ") },
      { title: "Config", value: (s) => s.config_path || "", render: (s) => h("code", {}, s.config_path || "") },
    ], page.items, { sortable: true, empty: "No MCP servers configured or running on this host." }));
  }).catch((err) => body.replaceChildren(h("p", { class: "muted" }, `MCP servers unavailable: ${err.message || err}`)));
  return el;
}
