import { api } from "../api.js";
import { h, clear, badge, ago, card } from "../ui.js";

export async function overviewPage(ctx, main) {
  const load = async () => {
    const [topo, open, ...bySeverity] = await Promise.all([
      api("/api/v1/topology"),
      api("/api/v1/incidents?status=open&limit=8"),
      ...["critical", "high", "medium", "low"].map((s) => api(`/api/v1/incidents?status=open&severity=${s}&limit=1`)),
    ]);
    const hosts = topo.hosts;
    const silent = hosts.filter((x) => x.status === "silent");
    const counts = ["critical", "high", "medium", "low"].map((s, i) => [s, bySeverity[i].total]);
    clear(main,
      h("h1", {}, "Overview"),
      hosts.length === 0 ? card("No hosts yet",
        h("p", {}, "Nothing reports to this server so far. Install the agent on a machine and enroll it: the commands are on the Agents page."),
        h("a", { class: "button", href: "#/agents" }, "Enroll your first host")) : null,
      h("div", { class: "stats" },
        h("a", { class: "stat", href: "#/hosts" }, h("strong", {}, hosts.length - silent.length), h("span", {}, "hosts online")),
        h("a", { class: `stat ${silent.length ? "warn" : ""}`, href: "#/hosts" }, h("strong", {}, silent.length), h("span", {}, "hosts silent")),
        counts.map(([s, n]) => h("a", { class: `stat ${n ? `sev-${s}` : ""}`, href: `#/incidents?status=open&severity=${s}` }, h("strong", {}, n), h("span", {}, `${s} open`)))),
      card("Newest open incidents", open.items.length ? h("ul", { class: "list" }, open.items.map((i) =>
        h("li", {}, badge(i.severity), " ", h("a", { href: `#/incidents?id=${encodeURIComponent(i.id)}` }, i.title),
          h("span", { class: "muted" }, ` · ${i.hostname} · `, ago(i.last_seen_at))))) :
        h("p", { class: "muted" }, hosts.length ? "No open incidents. Quiet is good." : "Incidents appear here once hosts report.")),
      silent.length ? card("Agents that went silent", h("ul", { class: "list" }, silent.map((x) =>
        h("li", {}, h("a", { href: `#/hosts/${encodeURIComponent(x.host_id)}` }, x.hostname), h("span", { class: "muted" }, " · last seen ", ago(x.last_seen_at)))))) : null,
    );
  };
  await load();
  ctx.setRefresh(load);
}
