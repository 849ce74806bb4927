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
  if (Number.isNaN(d.getTime())) return String(iso);
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  const a = Math.abs(s);
  const unit = a < 60 ? null : a < 3600 ? [Math.round(a / 60), "min"] : a < 86400 ? [Math.round(a / 3600), "h"] :
    a < 60 * 86400 ? [Math.round(a / 86400), "d"] : a < 730 * 86400 ? [Math.round(a / (30 * 86400)), "mo"] : [Math.round(a / (365 * 86400)), "y"];
  if (!unit) return "just now";
  return s >= 0 ? `${unit[0]} ${unit[1]} ago` : `in ${unit[0]} ${unit[1]}`;
}

// A relative time ("3 min ago") with the exact ISO time on hover and for screen readers.
export function ago(iso) {
  if (!iso) return h("span", { class: "muted" }, "never");
  return h("time", { datetime: iso, title: iso }, when(iso));
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

// `view` (optional, kept by the caller) remembers sort and page across re-renders, so a
// live refresh does not jump back to page 1. With `pageSize`, the whole list is sorted,
// then one page shown.
export function table(columns, rows, { empty = "Nothing here yet.", onRow, sortable = false, pageSize = 0, view = {} } = {}) {
  view.sortKey ??= null; view.dir ??= 1; view.page ??= 0;
  const tbody = h("tbody");
  const pager = h("div", { class: "pager" });
  const render = () => {
    let list = rows.slice();
    if (view.sortKey !== null && columns[view.sortKey]) {
      const col = columns[view.sortKey];
      const key = col.sort || col.value;
      list.sort((a, b) => {
        const x = key(a); const y = key(b);
        return (x > y ? 1 : x < y ? -1 : 0) * view.dir;
      });
    }
    if (pageSize) {
      const pages = Math.max(1, Math.ceil(list.length / pageSize));
      view.page = Math.min(Math.max(view.page, 0), pages - 1);
      const first = view.page * pageSize;
      const shown = list.slice(first, first + pageSize);
      clear(pager, list.length > pageSize ? [
        h("button", { type: "button", class: "secondary", disabled: view.page === 0, onclick: () => { view.page -= 1; render(); } }, "← Previous"),
        h("span", { class: "muted" }, `${first + 1}–${first + shown.length} of ${list.length}`),
        h("button", { type: "button", class: "secondary", disabled: view.page >= pages - 1, onclick: () => { view.page += 1; render(); } }, "Next →"),
      ] : []);
      list = shown;
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
    onclick: sortable ? () => { view.dir = view.sortKey === i ? -view.dir : 1; view.sortKey = i; render(); } : null,
  }, c.title)));
  render();
  return h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, head), tbody), pager);
}

export function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", {}, label), input, hint ? h("small", {}, hint) : null);
}

export function card(title, ...body) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, ...body);
}

// Timestamps as the API sends them (RFC 3339): shown relative, exact on hover.
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?$/;

export function kv(obj) {
  return h("dl", { class: "kv" }, Object.entries(obj || {}).flatMap(([k, v]) => [
    h("dt", {}, k),
    h("dd", {}, v instanceof Node ? v : ISO.test(String(v)) ? ago(v) : v !== null && typeof v === "object" ? JSON.stringify(v) : String(v ?? "")),
  ]));
}

export function barChart(series, key, label) {
  // An SVG drawn here: no chart library for a few bars.
  const w = 300; const hgt = 80; const peak = Math.max(0, ...series.map((d) => d[key] || 0));
  const max = Math.max(1, peak);
  const bw = w / Math.max(series.length, 1);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${hgt + 14}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${label} per day`);
  const axis = document.createElementNS(svg.namespaceURI, "line");
  axis.setAttribute("x1", "0"); axis.setAttribute("x2", String(w));
  axis.setAttribute("y1", String(hgt + 0.5)); axis.setAttribute("y2", String(hgt + 0.5));
  axis.setAttribute("class", "axis");
  svg.append(axis);
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
  if (!peak) {
    // Nothing to draw yet: a sentence instead of an empty frame with a made-up scale.
    return h("figure", { class: "chart empty" }, h("p", { class: "chart-empty" }, "no data yet"), h("figcaption", {}, label));
  }
  return h("figure", { class: "chart" }, svg, h("figcaption", {}, `${label} (peak ${peak} a day)`));
}
