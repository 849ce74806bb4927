import { api } from "../api.js";
import { h, clear, badge, when, table, card, copyButton, toast } from "../ui.js";

export async function agentsPage(ctx, main) {
  const server = location.origin;
  const user = ctx.me.username;
  const loopback = ["127.0.0.1", "localhost", "[::1]"].includes(location.hostname);
  // The one line: a fresh enrollment token in an install command built by the server
  // (its URL, and the certificate pin when it serves a self-signed one).
  const lineBox = h("div", { class: "install-line" });
  const uses = h("select", { name: "max_uses", "aria-label": "Hosts this line may enroll" },
    h("option", { value: "1" }, "one host"), h("option", { value: "0" }, "any number of hosts (a fleet)"));
  const hours = h("select", { name: "expires_in_hours", "aria-label": "Valid for" },
    h("option", { value: "1" }, "1 hour"), h("option", { value: "24", selected: true }, "24 hours"),
    h("option", { value: "168" }, "7 days"));
  const createLine = async () => {
    try {
      const t = await api("/api/v1/enrollment-tokens", { method: "POST",
        body: { max_uses: Number(uses.value), expires_in_hours: Number(hours.value) } });
      clear(lineBox,
        h("div", { class: "cmd" }, h("code", { "data-testid": "install-command" }, t.install_command), copyButton(t.install_command)),
        h("p", { class: "muted" }, `Shown once. Enrolls ${t.max_uses === 0 ? "any number of hosts" : "one host"} until ${new Date(t.expires_at).toLocaleString()}.`
          + (t.pin ? ` The agent will accept only this server's certificate (${t.pin.slice(0, 23)}…).` : "")
          + " Add --no-service --prefix DIR to install without root or systemd; --uninstall removes it."));
      await loadTokens();
    } catch (err) { toast(err.message, true); }
  };
  const tokens = h("div");
  const loadTokens = async () => {
    const r = await api("/api/v1/enrollment-tokens?limit=20");
    clear(tokens, r.items.length ? table([
      { title: "Created", value: (t) => t.created_at, render: (t) => when(t.created_at) },
      { title: "Expires", value: (t) => t.expires_at, render: (t) => when(t.expires_at) },
      { title: "Used", value: (t) => t.uses, render: (t) => `${t.uses}${t.max_uses ? ` of ${t.max_uses}` : " (no limit)"}` },
      { title: "", value: () => "", render: (t) => t.revoked_at ? badge("revoked", "status")
        : h("button", { type: "button", class: "secondary", onclick: () => revokeToken(t) }, "Revoke") },
    ], r.items) : h("p", { class: "muted" }, "No install lines made yet."));
  };
  const revokeToken = async (t) => {
    try { await api(`/api/v1/enrollment-tokens/${encodeURIComponent(t.id)}`, { method: "DELETE", raw: true }); toast("Revoked"); await loadTokens(); }
    catch (err) { toast(err.message, true); }
  };
  const steps = [
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
    card("Add a host",
      h("p", {}, "Paste one line on the host (Debian, Ubuntu, RHEL and alikes, with sudo): it installs the agent from this server, enrolls it and starts it as a service."),
      h("div", { class: "install-form" }, h("label", {}, "For ", uses), h("label", {}, " valid for ", hours),
        h("button", { type: "button", onclick: createLine }, "Create install line")),
      lineBox,
      loopback ? h("p", { class: "warn-text" }, `Other hosts cannot reach ${server}: start the server with --host 0.0.0.0 (and --tls) and open this page at its LAN address, or set public_url.`) : "",
      h("details", {}, h("summary", {}, "Hosts with kefal-lite already installed (from a clone)"),
        h("ol", { class: "steps" }, steps.map(([title, cmd]) => h("li", {}, h("strong", {}, title), h("div", { class: "cmd" }, h("code", {}, cmd), copyButton(cmd))))))),
    tokenBox, card("Enrolled agents", list), card("Install lines", tokens));
  await loadTokens();
  await load();
  ctx.setRefresh(load);
}
