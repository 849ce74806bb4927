import { api } from "../api.js";
import { h, clear, badge, kv } from "../ui.js";
import cytoscape from "../vendor/cytoscape.esm.min.mjs";

const COLORS = { critical: "#b3261e", high: "#e8710a", medium: "#c9a400", low: "#5f7d95" };

const STYLE = [
  { selector: "node", style: { label: "data(label)", "font-size": 9, color: "#1d2733", "text-valign": "bottom", "text-margin-y": 3, "background-color": "#8fa3b8", width: 16, height: 16 } },
  { selector: 'node[type = "host"]', style: { shape: "round-rectangle", "background-color": "#24507a", width: 34, height: 24, "font-size": 11, "font-weight": "bold" } },
  { selector: 'node[type = "service"]', style: { shape: "ellipse", "background-color": "#3c8d5a" } },
  { selector: 'node[type = "port"]', style: { shape: "diamond", "background-color": "#8fa3b8", width: 12, height: 12, "font-size": 8 } },
  { selector: 'node[type = "port"][exposure = "exposed"]', style: { "background-color": "#d08a2c" } },
  { selector: 'node[type = "identity"]', style: { shape: "triangle", "background-color": "#7b5ea7" } },
  { selector: "node[?max_severity]", style: { "border-width": 4, "border-color": (n) => COLORS[n.data("max_severity")] || "#999" } },
  { selector: "node.match", style: { "overlay-color": "#ffd54f", "overlay-opacity": 0.5, "overlay-padding": 6 } },
  { selector: "node:selected", style: { "overlay-color": "#1a73e8", "overlay-opacity": 0.3 } },
  { selector: "edge", style: { width: 1, "line-color": "#b8c4d0", "curve-style": "bezier", "target-arrow-shape": "triangle", "target-arrow-color": "#b8c4d0", "arrow-scale": 0.6 } },
  { selector: 'edge[type = "connects"]', style: { width: 2.5, "line-color": "#24507a", "target-arrow-color": "#24507a", label: "data(port)", "font-size": 8 } },
];

export async function graphPage(ctx, main) {
  const topo = await api("/api/v1/topology");
  const focus = ctx.params.get("host") || "";
  const hostSelect = h("select", { "aria-label": "Neighbourhood", onchange: () => ctx.go(hostSelect.value ? `#/graph?host=${encodeURIComponent(hostSelect.value)}` : "#/graph") },
    h("option", { value: "" }, "All hosts"), topo.hosts.map((x) => h("option", { value: x.host_id, selected: x.host_id === focus }, x.hostname)));
  const search = h("input", { type: "search", placeholder: "Search nodes", "aria-label": "Search nodes" });
  const panel = h("aside", { class: "panel" }, h("p", { class: "muted" }, "Select a node to see its details and incidents."));
  const canvas = h("div", { id: "cy", role: "img", "aria-label": "Graph of hosts, services, ports and identities" });
  clear(main, h("div", { class: "toolbar" }, h("h1", {}, "Graph"), hostSelect, search,
    h("span", { class: "legend" }, ["host", "service", "port", "identity"].map((t) => h("span", { class: `lg lg-${t}` }, t)))),
    topo.hosts.length ? h("div", { class: "graph-wrap" }, canvas, panel) : h("p", {}, "No hosts yet: ", h("a", { href: "#/agents" }, "enroll one"), "."));
  if (!topo.hosts.length) return;
  const elements = await api(`/api/v1/graph${focus ? `?host_id=${encodeURIComponent(focus)}` : ""}`);
  const big = elements.nodes.length > 600;
  const cy = cytoscape({ container: canvas, elements, style: STYLE, wheelSensitivity: 0.3,
    layout: big ? { name: "grid" } : { name: "cose", animate: false, nodeRepulsion: 9000, idealEdgeLength: 60 } });
  canvas.dataset.nodes = String(cy.nodes().length);
  window.addEventListener("resize", () => cy.resize(), { passive: true });
  search.addEventListener("input", () => {
    const q = search.value.trim().toLowerCase();
    cy.nodes().removeClass("match");
    if (q) cy.nodes().filter((n) => String(n.data("label")).toLowerCase().includes(q)).addClass("match");
  });
  cy.on("tap", "node", async (evt) => {
    const d = evt.target.data();
    const { id, label, type, ...rest } = d;
    const incidents = await api(`/api/v1/incidents?status=open&host_id=${encodeURIComponent(d.host_id)}&limit=20`);
    clear(panel, h("h2", {}, label), h("p", {}, badge(type, "type"), " ", d.max_severity ? badge(d.max_severity) : null), kv(rest),
      h("p", {}, h("a", { href: `#/hosts/${encodeURIComponent(d.host_id)}` }, "Open host page"), " · ",
        h("a", { href: `#/graph?host=${encodeURIComponent(d.host_id)}` }, "Neighbourhood")),
      h("h3", {}, "Open incidents on this host"),
      incidents.items.length ? h("ul", { class: "list" }, incidents.items.map((i) => h("li", {}, badge(i.severity), " ",
        h("a", { href: `#/incidents?id=${encodeURIComponent(i.id)}` }, i.title)))) : h("p", { class: "muted" }, "None."));
  });
}
