// DOM helpers. Every string goes in as text (textContent / attributes), never as HTML:
// hostnames, process names and command lines come from monitored hosts and may be hostile.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
  return el;
}

export const severityOrder = { critical: 4, high: 3, medium: 2, low: 1 };

export function badge(text, kind = text) {
  return h("span", { class: `badge badge-${kind || "none"}` }, text || "none");
}

export function when(iso) {
  if (!iso) return "never";
  const d = new Date(iso);
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (Math.abs(s) < 60) return "just now";
  if (Math.abs(s) < 3600) return `${Math.round(s / 60)} min ago`;
  if (Math.abs(s) < 86400) return `${Math.round(s / 3600)} h ago`;
  return d.toISOString().slice(0, 16).replace("T", " ");
}

let toastTimer;
export function toast(message, error = false) {
  let el = document.getElementById("toast");
  if (!el) {
    el = h("div", { id: "toast", role: "status", "aria-live": "polite" });
    document.body.append(el);
  }
  el.className = error ? "toast error" : "toast";
  el.textContent = message;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.className = "toast hidden"; }, 4000);
}

export function copyButton(text, label = "Copy") {
  return h("button", {
    class: "copy", type: "button", title: "Copy to clipboard",
    onclick: async (e) => {
      try { await navigator.clipboard.writeText(text); toast("Copied"); }
      catch { toast("Select the text and copy it by hand", true); }
      e.target.blur();
    },
  }, label);
}

export function table(columns, rows, { empty = "Nothing here yet.", onRow, sortable = false } = {}) {
  let sortKey = null;
  let dir = 1;
  const tbody = h("tbody");
  const render = () => {
    let list = rows.slice();
    if (sortKey !== null) {
      const col = columns[sortKey];
      const key = col.sort || col.value;
      list.sort((a, b) => {
        const x = key(a); const y = key(b);
        return (x > y ? 1 : x < y ? -1 : 0) * dir;
      });
    }
    clear(tbody, list.length ? list.map((row) => h("tr", {
      class: onRow ? "clickable" : null,
      tabindex: onRow ? "0" : null,
      onclick: onRow ? () => onRow(row) : null,
      onkeydown: onRow ? (e) => { if (e.key === "Enter") onRow(row); } : null,
    }, columns.map((c) => h("td", { "data-label": c.title }, c.render ? c.render(row) : c.value(row))))) :
      h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, empty)));
  };
  const head = h("tr", {}, columns.map((c, i) => h("th", {
    scope: "col", class: sortable ? "sortable" : null, tabindex: sortable ? "0" : null,
    onclick: sortable ? () => { dir = sortKey === i ? -dir : 1; sortKey = i; render(); } : null,
  }, c.title)));
  render();
  return h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, head), tbody));
}

export function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", {}, label), input, hint ? h("small", {}, hint) : null);
}

export function card(title, ...body) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, ...body);
}

export function kv(obj) {
  return h("dl", { class: "kv" }, Object.entries(obj || {}).flatMap(([k, v]) => [
    h("dt", {}, k),
    h("dd", {}, v !== null && typeof v === "object" ? JSON.stringify(v) : String(v ?? "")),
  ]));
}

export function barChart(series, key, label) {
  // An SVG drawn here: no chart library for a few bars.
  const w = 300; const hgt = 80; const max = Math.max(1, ...series.map((d) => d[key]));
  const bw = w / Math.max(series.length, 1);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${hgt + 14}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${label} per day`);
  series.forEach((d, i) => {
    const bh = (d[key] / max) * hgt;
    const r = document.createElementNS(svg.namespaceURI, "rect");
    r.setAttribute("x", String(i * bw + 1)); r.setAttribute("y", String(hgt - bh));
    r.setAttribute("width", String(Math.max(bw - 2, 1))); r.setAttribute("height", String(bh));
    r.setAttribute("class", "bar");
    const t = document.createElementNS(svg.namespaceURI, "title");
    t.textContent = `${d.date}: ${d[key]}`;
    r.append(t);
    svg.append(r);
  });
  return h("figure", { class: "chart" }, svg, h("figcaption", {}, `${label} (max ${max})`));
}
