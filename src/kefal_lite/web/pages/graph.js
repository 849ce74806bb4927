import { api } from "../api.js";
import { h, clear, badge, kv } from "../ui.js";
import cytoscape from "../vendor/cytoscape.esm.min.mjs";

const COLORS = { critical: "#b3261e", high: "#e8710a", medium: "#c9a400", low: "#5f7d95" };

// One table for the node styles and the legend, so the legend cannot drift from the graph.
const KINDS = [
  { key: "host", label: "host", selector: 'node[type = "host"]', shape: "round-rectangle", color: "#24507a" },
  { key: "service", label: "service", selector: 'node[type = "service"]', shape: "ellipse", color: "#3c8d5a" },
  { key: "port", label: "port", selector: 'node[type = "port"]', shape: "diamond", color: "#8fa3b8" },
  { key: "exposed", label: "exposed port", selector: 'node[type = "port"][exposure = "exposed"]', shape: "diamond", color: "#d08a2c" },
  { key: "identity", label: "identity", selector: 'node[type = "identity"]', shape: "triangle", color: "#7b5ea7" },
];
const SIZES = { host: { width: 34, height: 24, "font-size": 11, "font-weight": "bold" }, port: { width: 12, height: 12, "font-size": 8 } };

// Labels: long names end in "…" on two lines at most, vanish when zoomed out so far they
// would be unreadable, and the layout reserves room for them (nodeDimensionsIncludeLabels).
const STYLE = [
  { selector: "node", style: { label: "data(label)", "font-size": 9, color: "#1d2733", "text-valign": "bottom", "text-margin-y": 3, "background-color": "#8fa3b8", width: 16, height: 16,
    "text-wrap": "ellipsis", "text-max-width": 110, "min-zoomed-font-size": 7, "text-background-color": "#ffffff", "text-background-opacity": 0.7, "text-background-padding": 1 } },
  ...KINDS.map((k) => ({ selector: k.selector, style: { shape: k.shape, "background-color": k.color, ...(SIZES[k.key] || {}) } })),
  { selector: "node[?max_severity]", style: { "border-width": 4, "border-color": (n) => COLORS[n.data("max_severity")] || "#999" } },
  { selector: "node.nolabel", style: { "text-opacity": 0, "text-background-opacity": 0 } },
  { selector: "node.match", style: { "overlay-color": "#ffd54f", "overlay-opacity": 0.5, "overlay-padding": 6, "text-opacity": 1, "text-background-opacity": 0.7 } },
  { selector: "node:selected", style: { "overlay-color": "#1a73e8", "overlay-opacity": 0.3, "text-opacity": 1, "text-background-opacity": 0.7, "z-index": 10 } },
  { selector: "edge", style: { width: 1, "line-color": "#b8c4d0", "curve-style": "bezier", "target-arrow-shape": "triangle", "target-arrow-color": "#b8c4d0", "arrow-scale": 0.6 } },
  { selector: 'edge[type = "connects"]', style: { width: 2.5, "line-color": "#24507a", "target-arrow-color": "#24507a", label: "data(port)", "font-size": 8, "text-background-color": "#ffffff", "text-background-opacity": 0.7 } },
];

const PRIORITY = { host: 0, service: 1, identity: 2, port: 3 };

// What the layout could not keep apart: the less important of two overlapping labels is
// hidden (hosts first, ports last); selecting or finding a node shows its label again.
// Positions and label boxes scale together, so one pass after the layout holds at any zoom.
function declutter(cy) {
  cy.nodes().removeClass("nolabel");
  const kept = [];
  const nodes = cy.nodes().toArray().sort((a, b) => (PRIORITY[a.data("type")] ?? 9) - (PRIORITY[b.data("type")] ?? 9));
  cy.batch(() => {
    for (const n of nodes) {
      const box = n.boundingBox({ includeLabels: true, includeOverlays: false });
      const hit = kept.some((k) => box.x1 < k.x2 && k.x1 < box.x2 && box.y1 < k.y2 && k.y1 < box.y2);
      if (hit) n.addClass("nolabel"); else kept.push(box);
    }
  });
}

export async function graphPage(ctx, main) {
  const topo = await api("/api/v1/topology");
  const focus = ctx.params.get("host") || "";
  const hostSelect = h("select", { "aria-label": "Neighbourhood", onchange: () => ctx.go(hostSelect.value ? `#/graph?host=${encodeURIComponent(hostSelect.value)}` : "#/graph") },
    h("option", { value: "" }, "All hosts"), topo.hosts.map((x) => h("option", { value: x.host_id, selected: x.host_id === focus }, x.hostname)));
  const search = h("input", { type: "search", placeholder: "Search nodes", "aria-label": "Search nodes" });
  const panel = h("aside", { class: "panel" }, h("p", { class: "muted" }, "Select a node to see its details and incidents."));
  const canvas = h("div", { id: "cy", role: "img", "aria-label": "Graph of hosts, services, ports and identities" });
  clear(main, h("div", { class: "toolbar" }, h("h1", {}, "Graph"), hostSelect, search,
    h("span", { class: "legend" }, KINDS.map((k) => {
      const swatch = h("span", { class: `swatch shape-${k.shape}`, "aria-hidden": "true" });
      swatch.style.backgroundColor = k.color;  // CSSOM, not a style attribute: the CSP allows it
      return h("span", { class: "lg", "data-kind": k.key, "data-shape": k.shape }, swatch, k.label);
    }))),
    topo.hosts.length ? h("div", { class: "graph-wrap" }, canvas, panel) : h("p", {}, "No hosts yet: ", h("a", { href: "#/agents" }, "enroll one"), "."));
  if (!topo.hosts.length) return;
  const elements = await api(`/api/v1/graph${focus ? `?host_id=${encodeURIComponent(focus)}` : ""}`);
  const big = elements.nodes.length > 600;
  const cy = cytoscape({ container: canvas, elements, style: STYLE, wheelSensitivity: 0.3 });
  cy.layout(big ? { name: "grid", avoidOverlap: true, nodeDimensionsIncludeLabels: true, padding: 20 } :
    { name: "cose", animate: false, randomize: true, nodeDimensionsIncludeLabels: true, nodeRepulsion: 12000, nodeOverlap: 40,
      idealEdgeLength: 70, componentSpacing: 90, padding: 30 }).run();
  declutter(cy);
  canvas.cy = cy;  // for the browser test and the console; a property, not a global
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
