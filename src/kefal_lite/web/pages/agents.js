import { api } from "../api.js";
import { h, clear, badge, when, table, card, copyButton, toast } from "../ui.js";

export async function agentsPage(ctx, main) {
  const server = location.origin;
  const user = ctx.me.username;
  const steps = [
    ["On the host, install kefal-lite for root (the agent reads every process)", "sudo pipx install --global kefal-lite   # pipx 1.5+; or: sudo python3 -m venv /opt/kefal && sudo /opt/kefal/bin/pip install kefal-lite"],
    ["Enroll it (asks for your password)", `sudo kefal-lite agent enroll --server ${server} --username ${user}`],
    ["Run it at boot", "sudo kefal-lite agent install-service && sudo systemctl daemon-reload && sudo systemctl enable --now kefal-lite-agent"],
    ["Or try it once first", "sudo kefal-lite agent once --print"],
  ];
  const tokenBox = h("div", { role: "status" });
  const list = h("div");
  const load = async () => {
    const agents = await api("/api/v1/agents?limit=500");
    clear(list, table([
      { title: "Name", value: (a) => a.name },
      { title: "Host", value: (a) => a.hostname || "(no snapshot yet)" },
      { title: "Status", value: (a) => a.status, render: (a) => badge(a.status, "status") },
      { title: "Version", value: (a) => a.agent_version || "" },
      { title: "Last seen", value: (a) => a.last_seen_at || "", render: (a) => when(a.last_seen_at) },
      { title: "", value: () => "", render: (a) => a.status === "active" ? h("span", { class: "row-actions" },
        h("button", { type: "button", class: "secondary", onclick: () => rotate(a) }, "Rotate token"),
        h("button", { type: "button", class: "danger", onclick: () => revoke(a) }, "Revoke")) : "" },
    ], agents.items, { empty: "No agents yet: run the commands above on a host." }));
  };
  const revoke = async (a) => {
    if (!confirm(`Revoke ${a.name}? Its token stops working at once.`)) return;
    try { await api(`/api/v1/agents/${encodeURIComponent(a.id)}`, { method: "DELETE", raw: true }); toast("Revoked"); await load(); }
    catch (err) { toast(err.message, true); }
  };
  const rotate = async (a) => {
    try {
      const r = await api(`/api/v1/agents/${encodeURIComponent(a.id)}/rotate-token`, { method: "POST" });
      const cfg = JSON.stringify({ server, agent_id: r.agent_id, token: r.token });
      clear(tokenBox, card(`New token for ${a.name}: shown once`,
        h("p", {}, "The old token no longer works. Put this in the agent's config file (agent.json):"),
        h("div", { class: "cmd" }, h("code", {}, cfg), copyButton(cfg))));
      await load();
    } catch (err) { toast(err.message, true); }
  };
  clear(main, h("h1", {}, "Agents"),
    card("Add a host", h("ol", { class: "steps" }, steps.map(([title, cmd]) => h("li", {}, h("strong", {}, title), h("div", { class: "cmd" }, h("code", {}, cmd), copyButton(cmd))))),
      h("p", { class: "muted" }, `Agents must reach ${server}. If that is 127.0.0.1, start the server with --host 0.0.0.0 and use its LAN address.`)),
    tokenBox, card("Enrolled agents", list));
  await load();
  ctx.setRefresh(load);
}
