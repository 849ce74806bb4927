// The estate view: one node per host in its group, host-to-host edges. A click expands a
// host's services, ports and identities in place; a double click opens its neighbourhood.
// Positions are computed from sorted ids (no physics), so a refresh never reshuffles, and
// a refresh updates the drawn graph in place, keeping zoom, pan and expanded hosts.
import { api } from "../api.js";
import { h, clear, badge, kv, toast } from "../ui.js";
import cytoscape from "../vendor/cytoscape.esm.min.mjs";

const SEVERITY = { critical: "#b3261e", high: "#e8710a", medium: "#c9a400", low: "#5f7d95" };
const CELL = 74; // px between host centres in a group
const GAP = 60; // px between groups

const STYLE = [
  { selector: "node", style: { label: "data(label)", "font-size": 9, color: "#1d2733", "text-valign": "bottom", "text-margin-y": 3,
    "min-zoomed-font-size": 4, "text-max-width": 70, "text-wrap": "ellipsis", "background-color": "#8fa3b8", width: 14, height: 14 } },
  { selector: 'node[type = "group"]', style: { shape: "round-rectangle", "background-color": "#eef2f6", "background-opacity": 0.6,
    "border-width": 1, "border-color": "#b8c4d0", "text-valign": "top", "text-halign": "center", "text-margin-y": -4,
    "font-size": 16, "font-weight": "bold", color: "#4a5a6a", padding: 14, "text-max-width": 600, "text-wrap": "none",
    label: (n) => `${n.data("label")} · ${n.data("hosts")} host${n.data("hosts") === 1 ? "" : "s"}` } },
  { selector: 'node[type = "group"][?max_severity]', style: { "border-color": (n) => SEVERITY[n.data("max_severity")] || "#b8c4d0", "border-width": 2 } },
  { selector: 'node[type = "host"]', style: { shape: "round-rectangle", "background-color": "#2f7d5b", "font-weight": "bold",
    width: (n) => 18 + Math.min(n.data("exposed_ports") || 0, 8) * 3.5, height: (n) => 14 + Math.min(n.data("exposed_ports") || 0, 8) * 2.5 } },
  // hosts with incidents keep a readable label when the whole estate is on screen
  { selector: 'node[type = "host"][?max_severity]', style: { "background-color": (n) => SEVERITY[n.data("max_severity")] || "#2f7d5b", "font-size": 13 } },
  { selector: 'node[type = "host"][status = "silent"]', style: { "background-opacity": 0.45, "border-width": 2, "border-style": "dashed", "border-color": "#607080" } },
  { selector: 'node[type = "credential"]', style: { shape: "hexagon", "background-color": "#7b5ea7", width: 22, height: 20, "font-size": 8 } },
  { selector: 'node[type = "service"]', style: { shape: "ellipse", "background-color": "#3c8d5a", width: 12, height: 12, "font-size": 7 } },
  { selector: 'node[type = "port"]', style: { shape: "diamond", "background-color": "#8fa3b8", width: 10, height: 10, "font-size": 7 } },
  { selector: 'node[type = "port"][exposure = "exposed"]', style: { "background-color": "#d08a2c" } },
  { selector: 'node[type = "identity"]', style: { shape: "triangle", "background-color": "#7b5ea7", width: 12, height: 12, "font-size": 7 } },
  { selector: "node.expanded", style: { "border-width": 3, "border-color": "#1a73e8" } },
  { selector: "node.match", style: { "overlay-color": "#ffd54f", "overlay-opacity": 0.55, "overlay-padding": 6 } },
  { selector: "node:selected", style: { "overlay-color": "#1a73e8", "overlay-opacity": 0.25 } },
  { selector: "edge", style: { width: 1, "line-color": "#c3ccd6", "curve-style": "bezier", "target-arrow-shape": "none", opacity: 0.8 } },
  { selector: 'edge[type = "connects"]', style: { width: 2, "line-color": "#24507a", "target-arrow-shape": "triangle", "target-arrow-color": "#24507a", "arrow-scale": 0.7 } },
  { selector: 'edge[type = "shares_key"]', style: { width: 1.5, "line-style": "dashed", "line-color": "#7b5ea7" } },
  { selector: 'edge[type = "shares_key"][?root]', style: { width: 2.5, "line-color": "#b3261e" } },
  { selector: 'edge[type = "shares_login"]', style: { width: 1.5, "line-style": "dotted", "line-color": "#5f7d95" } },
  { selector: 'edge[type = "key_on"], edge[type = "login_on"]', style: { width: 0.6, "line-color": "#cbbfe0", opacity: 0.5 } },
  { selector: 'edge[type = "key_on"][?root]', style: { "line-color": "#e3a0a0" } },
  { selector: "edge.detail", style: { width: 0.8, "line-color": "#b8c4d0", "target-arrow-shape": "triangle", "target-arrow-color": "#b8c4d0", "arrow-scale": 0.5 } },
  { selector: ".faded", style: { opacity: 0.15 } },
  { selector: "node.blast", style: { "overlay-color": "#e8710a", "overlay-opacity": 0.35, "overlay-padding": 7, opacity: 1 } },
  { selector: "node.blast-source", style: { "overlay-color": "#b3261e", "overlay-opacity": 0.45, "overlay-padding": 9, opacity: 1 } },
  { selector: "edge.blast", style: { width: 3.5, "line-color": "#e8710a", "target-arrow-color": "#e8710a", opacity: 1, "z-index": 10 } },
];

function byId(a, b) { return a.data.id < b.data.id ? -1 : a.data.id > b.data.id ? 1 : 0; }

// Groups as boxes of hosts on a square-ish grid, packed on shelves; credential hubs in a row
// above. Everything is a function of the sorted ids, so the same estate lands the same way.
export function layoutEstate(nodes) {
  const pos = {};
  const groups = nodes.filter((n) => n.data.type === "group").sort(byId);
  const members = new Map(groups.map((g) => [g.data.id, []]));
  const loose = [];
  nodes.filter((n) => n.data.type === "host").forEach((n) => (members.get(n.data.parent) || loose).push(n));
  const boxes = groups.map((g) => {
    const list = members.get(g.data.id).sort((a, b) => (a.data.label < b.data.label ? -1 : a.data.label > b.data.label ? 1 : byId(a, b)));
    const cols = Math.max(1, Math.ceil(Math.sqrt(list.length)));
    return { list, cols, w: cols * CELL, hgt: Math.ceil(list.length / cols) * CELL };
  });
  const area = boxes.reduce((s, b) => s + (b.w + GAP) * (b.hgt + GAP), 0);
  const maxW = Math.max(CELL * 4, Math.sqrt(area * 1.8)); // about a laptop screen's shape
  let x = 0; let y = 0; let rowH = 0;
  for (const b of boxes) {
    if (x > 0 && x + b.w > maxW) { x = 0; y += rowH + GAP; rowH = 0; }
    b.list.forEach((n, i) => { pos[n.data.id] = { x: x + (i % b.cols) * CELL + CELL / 2, y: y + Math.floor(i / b.cols) * CELL + CELL / 2 }; });
    x += b.w + GAP; rowH = Math.max(rowH, b.hgt);
  }
  loose.sort(byId).forEach((n, i) => { pos[n.data.id] = { x: i * CELL, y: y + rowH + GAP * 2 }; });
  nodes.filter((n) => n.data.type === "credential").sort(byId)
    .forEach((n, i) => { pos[n.data.id] = { x: i * CELL * 1.5, y: -GAP * 2 }; });
  return pos;
}

function place(elements) {
  const pos = layoutEstate(elements.nodes);
  return elements.nodes.map((n) => (pos[n.data.id] ? { ...n, position: pos[n.data.id] } : n)).concat(elements.edges);
}

export async function estatePage(ctx, main) {
  const blastFrom = ctx.params.get("blast") || "";
  const search = h("input", { type: "search", placeholder: "Find a host", "aria-label": "Find a host" });
  const panel = h("aside", { class: "panel estate-panel" }, h("p", { class: "muted" },
    "Click a host to expand its services, ports and identities; double-click to open its neighbourhood."));
  const canvas = h("div", { id: "cy", class: "estate", role: "img", "aria-label": "Estate graph: hosts grouped by subnet or group, with their connections, shared keys and shared logins" });
  const legend = h("span", { class: "legend estate-legend" },
    h("span", { class: "el el-connects" }, "connects"), h("span", { class: "el el-key" }, "shared key"),
    h("span", { class: "el el-rootkey" }, "shared root key"), h("span", { class: "el el-login" }, "shared login"),
    h("span", { class: "el el-size" }, "size: exposed ports"));
  const summary = h("p", { class: "muted estate-summary", "aria-live": "polite" });
  clear(main, h("div", { class: "toolbar" }, h("h1", {}, "Graph"), search, legend), summary,
    h("div", { class: "graph-wrap" }, canvas, panel));
  const first = await api("/api/v1/graph");
  if (!first.nodes.length) {
    clear(main, h("h1", {}, "Graph"), h("p", {}, "No hosts yet: ", h("a", { href: "#/agents" }, "enroll one"), "."));
    return;
  }
  const cy = cytoscape({ container: canvas, elements: place(first), style: STYLE, layout: { name: "preset", fit: true, padding: 24 },
    minZoom: 0.05, maxZoom: 4, textureOnViewport: true, hideEdgesOnViewport: true });
  const expanded = new Set();
  let selected = null;

  const describe = (doc) => {
    const hosts = doc.nodes.filter((n) => n.data.type === "host");
    const bad = hosts.filter((n) => n.data.max_severity === "critical").length;
    summary.textContent = `${hosts.length} hosts in ${doc.nodes.filter((n) => n.data.type === "group").length} groups · ` +
      `${doc.edges.filter((e) => e.data.type === "connects").length} connections · ${bad} with a critical incident`;
  };
  describe(first);
  canvas.dataset.nodes = String(cy.nodes('[type = "host"]').length);
  window.addEventListener("resize", () => cy.resize(), { passive: true });

  search.addEventListener("input", () => {
    const q = search.value.trim().toLowerCase();
    cy.nodes().removeClass("match");
    if (!q) return;
    const hits = cy.nodes('[type = "host"]').filter((n) => String(n.data("label")).toLowerCase().includes(q)).addClass("match");
    if (hits.length && hits.length < 20) cy.animate({ fit: { eles: hits, padding: 80 }, duration: 200 });
  });

  const collapse = (hostId) => {
    cy.remove(cy.elements().filter((x) => x.data("owner") === hostId));
    cy.getElementById(`host:${hostId}`).removeClass("expanded");
    expanded.delete(hostId);
  };
  const expand = async (hostId) => {
    const hood = await api(`/api/v1/graph?host_id=${encodeURIComponent(hostId)}`);
    const host = cy.getElementById(`host:${hostId}`);
    if (!host.length || expanded.has(hostId)) return;
    const mine = hood.nodes.filter((n) => n.data.host_id === hostId && n.data.type !== "host");
    const ids = new Set(mine.map((n) => n.data.id).concat(`host:${hostId}`));
    const c = host.position();
    const ring = 34 + mine.length * 3;
    cy.batch(() => {
      mine.forEach((n, i) => {
        const a = (2 * Math.PI * i) / Math.max(mine.length, 1);
        cy.add({ group: "nodes", data: { ...n.data, id: `x:${n.data.id}`, owner: hostId }, position: { x: c.x + ring * Math.cos(a), y: c.y + ring * Math.sin(a) } });
      });
      hood.edges.filter((e) => ids.has(e.data.source) && ids.has(e.data.target)).forEach((e) => {
        const end = (id) => (id === `host:${hostId}` ? id : `x:${id}`);
        cy.add({ group: "edges", classes: "detail", data: { ...e.data, id: `x:${e.data.id}`, source: end(e.data.source), target: end(e.data.target), owner: hostId } });
      });
    });
    host.addClass("expanded");
    expanded.add(hostId);
    canvas.dataset.expanded = String(mine.length);
  };

  const showHost = async (d) => {
    const group = h("input", { value: d.group || "", placeholder: d.group ? "" : "by subnet", "aria-label": "Group", maxlength: "64" });
    const save = async (value) => {
      try {
        await api(`/api/v1/hosts/${encodeURIComponent(d.host_id)}`, { method: "PATCH", body: { group: value } });
        toast(value ? `Moved to ${value}` : "Grouped by subnet again");
        await refresh();
      } catch (err) { toast(err.message, true); }
    };
    const incidents = await api(`/api/v1/incidents?status=open&host_id=${encodeURIComponent(d.host_id)}&limit=20`);
    clear(panel, h("h2", {}, d.label), h("p", {}, badge(d.status, "status"), " ", d.max_severity ? badge(d.max_severity) : null),
      kv({ os: d.os || "", addresses: (d.ip_addresses || []).join(", "), exposed_ports: d.exposed_ports, ports: d.ports, services: d.services, last_seen: d.last_seen_at }),
      h("form", { class: "inline group-edit", onsubmit: (e) => { e.preventDefault(); save(group.value.trim() || null); } },
        h("label", { class: "field" }, h("span", {}, "Group"), group), h("button", { type: "submit" }, "Save"),
        d.group ? h("button", { type: "button", class: "secondary", onclick: () => save(null) }, "Clear") : null),
      h("p", {}, h("a", { href: `#/hosts/${encodeURIComponent(d.host_id)}` }, "Host page"), " · ",
        h("a", { href: `#/graph?host=${encodeURIComponent(d.host_id)}` }, "Neighbourhood"), " · ",
        h("a", { href: `#/graph?blast=${encodeURIComponent(d.host_id)}` }, "Blast radius")),
      h("h3", {}, "Open incidents"),
      incidents.items.length ? h("ul", { class: "list" }, incidents.items.map((i) => h("li", {}, badge(i.severity), " ",
        h("a", { href: `#/incidents?id=${encodeURIComponent(i.id)}` }, i.title)))) : h("p", { class: "muted" }, "None."));
  };

  cy.on("tap", 'node[type = "host"]', async (evt) => {
    const d = evt.target.data();
    selected = d.host_id;
    try {
      if (expanded.has(d.host_id)) collapse(d.host_id); else await expand(d.host_id);
      await showHost(d);
    } catch (err) { toast(err.message, true); }
  });
  cy.on("dbltap", 'node[type = "host"]', (evt) => ctx.go(`#/graph?host=${encodeURIComponent(evt.target.data("host_id"))}`));
  cy.on("tap", 'node[type = "credential"]', (evt) => {
    const d = evt.target.data();
    clear(panel, h("h2", {}, d.kind === "ssh_key" ? "Shared SSH key" : "Shared login"),
      kv(d.kind === "ssh_key" ? { fingerprint: d.fingerprint, hosts: d.hosts, root_on: d.root_on } : { account: d.account, hosts: d.hosts }));
  });
  cy.on("tap", "node[owner]", (evt) => {
    const { id, owner, ...rest } = evt.target.data();
    clear(panel, h("h2", {}, rest.label), kv(rest));
  });

  const showBlast = async (hostId) => {
    const res = await api(`/api/v1/graph/paths?from=${encodeURIComponent(hostId)}`);
    cy.elements().removeClass("blast blast-source faded");
    const src = cy.getElementById(`host:${hostId}`);
    if (!src.length) return;
    const lit = cy.collection().union(src);
    for (const p of res.paths) {
      lit.merge(cy.getElementById(`host:${p.host_id}`));
      for (const s of p.steps) {
        const a = `host:${s.from_host_id}`; const b = `host:${s.to_host_id}`;
        const kind = { connection: "connects", ssh_key: "shares_key", login: "shares_login" }[s.kind];
        let e = cy.edges(`[type = "${kind}"]`).filter((x) => (x.data("source") === a && x.data("target") === b) || (kind !== "connects" && x.data("source") === b && x.data("target") === a));
        if (!e.length && kind !== "connects") {
          // drawn through a hub: the hub and its two edges
          const hub = s.kind === "ssh_key" ? `credential:key:${s.fingerprint}` : `credential:login:${s.account}`;
          e = cy.edges().filter((x) => x.data("source") === hub && (x.data("target") === a || x.data("target") === b));
          lit.merge(cy.getElementById(hub));
        }
        lit.merge(e.addClass("blast"));
      }
    }
    cy.elements().not(lit).not('node[type = "group"]').addClass("faded");
    src.addClass("blast-source");
    lit.nodes('[type = "host"]').not(src).addClass("blast");
    clear(panel, h("h2", {}, `Blast radius of ${res.from.hostname}: ${res.reachable} host${res.reachable === 1 ? "" : "s"}`),
      h("p", {}, h("a", { href: "#/graph" }, "Clear")),
      res.paths.length ? h("ol", { class: "paths" }, res.paths.map((p) => h("li", {},
        h("strong", {}, p.hostname), ` · ${p.hops} hop${p.hops === 1 ? "" : "s"} · ${p.privilege}`,
        h("ul", {}, p.steps.map((s) => h("li", {}, `${s.from_hostname} → ${s.to_hostname}: ${s.reason}`)))))) :
        h("p", { class: "muted" }, "Nothing reachable from this host by the facts kefal-lite has."));
    // edges are hidden while the view moves: the count is published once they are back
    cy.animate({ fit: { eles: lit, padding: 60 }, duration: 200,
      complete: () => { canvas.dataset.blast = String(res.reachable); } });
  };

  // A refresh changes data in place: new hosts get their preset position, gone ones go,
  // and the view (zoom, pan, expanded hosts) stays where the person left it.
  const refresh = async () => {
    const doc = await api("/api/v1/graph");
    const pos = layoutEstate(doc.nodes);
    const keep = new Set(doc.nodes.map((n) => n.data.id).concat(doc.edges.map((e) => e.data.id)));
    cy.batch(() => {
      cy.elements().filter((x) => !x.data("owner") && !keep.has(x.id())).remove();
      for (const n of doc.nodes) {
        const el = cy.getElementById(n.data.id);
        if (!el.length) { cy.add({ group: "nodes", data: n.data, position: pos[n.data.id] }); continue; }
        const { id, parent, ...rest } = n.data; // id and parent are not data Cytoscape lets change
        if ((el.data("parent") || null) !== (parent || null)) {
          el.move({ parent: parent || null });
          if (pos[id]) el.position(pos[id]);
        }
        el.data(rest);
      }
      for (const e of doc.edges) {
        const el = cy.getElementById(e.data.id);
        const { id, source, target, ...rest } = e.data;
        if (el.length) el.data(rest); else cy.add({ group: "edges", data: e.data });
      }
    });
    [...expanded].forEach((hid) => { if (!cy.getElementById(`host:${hid}`).length) expanded.delete(hid); });
    describe(doc);
    canvas.dataset.nodes = String(cy.nodes('[type = "host"]').length);
    if (blastFrom) await showBlast(blastFrom);
  };
  ctx.setRefresh(refresh);
  if (blastFrom) await showBlast(blastFrom);
  // for the browser tests: clicks aim at a node's rendered position; a refresh on demand
  canvas.cy = cy;
  canvas.refresh = refresh;
  canvas.dataset.ready = "1";
  return { cy, selected };
}
