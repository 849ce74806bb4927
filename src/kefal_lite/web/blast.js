// "Blast radius: N hosts" for an incident's host: what an intruder there reaches next, and
// why, from GET /api/v1/graph/paths. Text only, like every other view.
import { api } from "./api.js";
import { h, clear } from "./ui.js";

export function blastRadius(hostId) {
  const box = h("section", { class: "blast", "aria-live": "polite" }, h("h3", {}, "Blast radius"), h("p", { class: "muted" }, "Computing…"));
  api(`/api/v1/graph/paths?from=${encodeURIComponent(hostId)}`).then((res) => {
    const n = res.reachable;
    clear(box, h("h3", {}, `Blast radius: ${n} host${n === 1 ? "" : "s"}`),
      n ? h("ol", { class: "paths" }, res.paths.slice(0, 25).map((p) => h("li", {},
        h("strong", {}, p.hostname), ` · ${p.hops} hop${p.hops === 1 ? "" : "s"} · ${p.privilege}`,
        h("ul", {}, p.steps.map((s) => h("li", {}, `${s.from_hostname} → ${s.to_hostname}: ${s.reason}`)))))) :
        h("p", { class: "muted" }, "No other host is reachable from this one by the facts kefal-lite has."),
      n > 25 ? h("p", { class: "muted" }, `and ${n - 25} more`) : null,
      h("p", {}, h("a", { href: `#/graph?blast=${encodeURIComponent(hostId)}` }, "Show on the graph")));
  }).catch((err) => clear(box, h("h3", {}, "Blast radius"), h("p", { class: "error" }, err.message)));
  return box;
}
