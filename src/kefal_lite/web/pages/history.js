// A host's history: a timeline of what changed (one line per snapshot, with the incidents
// opened at that moment), filtered by time and kind, and a diff between two times.
// Route: #/hosts/{id}/history?since=&until=&kind=&from=&to=
import { api } from "../api.js";
import { h, clear, badge, card, table } from "../ui.js";

// Its styles, once: a file of its own rather than more of styles.css.
if (!document.querySelector('link[href="/pages/history.css"]')) {
  document.head.append(h("link", { rel: "stylesheet", href: "/pages/history.css" }));
}

export const KINDS = ["process", "listening", "connection", "login", "account", "key", "address", "host"];
const CHANGE_BADGE = { added: "high", removed: "low", modified: "medium" };

// datetime-local inputs speak the browser's local time; the API speaks UTC ISO 8601.
function toInput(iso) {
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}
function fromInput(value) { return value ? new Date(value).toISOString() : null; }
// The input shows minutes only: an untouched input keeps the exact time it was given.
function keep(input, iso) { return input.value === toInput(iso) ? iso : fromInput(input.value); }
function stamp(iso) { return new Date(iso).toISOString().slice(0, 19).replace("T", " ") + "Z"; }

function change(c) {
  const arrow = c.before !== null && c.after !== null ? [h("code", {}, c.before), " → ", h("code", {}, c.after)]
    : c.after !== null ? h("code", {}, c.after) : c.before !== null ? h("code", {}, c.before) : null;
  return h("li", { class: "change" }, badge(c.change, CHANGE_BADGE[c.change]), " ",
    h("span", { class: "kind" }, c.kind), " ", h("strong", {}, c.subject), arrow ? [" ", arrow] : null);
}

// One line per moment: the changes of a snapshot and the incidents opened with it.
export function timeline(changes, incidents) {
  const lines = new Map();
  const line = (at) => {
    if (!lines.has(at)) lines.set(at, { at, changes: [], incidents: [] });
    return lines.get(at);
  };
  for (const c of changes) line(c.at).changes.push(c);
  for (const i of incidents) line(i.first_seen_at).incidents.push(i);
  return [...lines.values()].sort((a, b) => (a.at < b.at ? 1 : -1));
}

export async function historyPage(ctx, main, hostId) {
  const p = ctx.params;
  const until = p.get("until") || new Date().toISOString();
  const since = p.get("since") || new Date(new Date(until).getTime() - 86400000).toISOString();
  const kind = p.get("kind") || "";
  const base = `#/hosts/${encodeURIComponent(hostId)}/history`;
  const reroute = (over) => {
    const q = new URLSearchParams({ since, until, kind, from: p.get("from") || "", to: p.get("to") || "", ...over });
    for (const [k, v] of [...q.entries()]) if (!v) q.delete(k);
    ctx.go(`${base}?${q}`);
  };

  const host = await api(`/api/v1/hosts/${encodeURIComponent(hostId)}`);
  const q = new URLSearchParams({ since, until, limit: "5000" });
  if (kind) q.set("kind", kind);
  const [changes, incidents] = await Promise.all([
    api(`/api/v1/hosts/${encodeURIComponent(hostId)}/changes?${q}`),
    api(`/api/v1/incidents?host_id=${encodeURIComponent(hostId)}&status=all&limit=500`),
  ]);
  const opened = incidents.items.filter((i) => i.first_seen_at >= since && i.first_seen_at <= until);
  const lines = timeline(changes.items, kind ? [] : opened);

  const sinceIn = h("input", { type: "datetime-local", name: "since", value: toInput(since) });
  const untilIn = h("input", { type: "datetime-local", name: "until", value: toInput(until) });
  const kindIn = h("select", { name: "kind", "aria-label": "Kind" },
    h("option", { value: "" }, "every kind"),
    KINDS.map((k) => h("option", { value: k, selected: k === kind }, k)));
  const filters = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    reroute({ since: keep(sinceIn, since) || since, until: keep(untilIn, until) || until, kind: kindIn.value });
  } }, h("label", {}, "From ", sinceIn), " ", h("label", {}, "to ", untilIn), " ", kindIn, " ",
  h("button", { type: "submit" }, "Show"));

  const timelineBox = h("ol", { class: "timeline", "aria-label": "Timeline" },
    lines.length ? lines.map((l) => h("li", { class: "moment" },
      h("time", { datetime: l.at }, stamp(l.at)),
      l.incidents.map((i) => h("p", { class: "incident" }, badge(i.severity), " ",
        h("a", { href: `#/incidents?id=${encodeURIComponent(i.id)}` }, i.title))),
      l.changes.length ? h("ul", { class: "changes" }, l.changes.map(change)) : null))
      : h("li", { class: "empty muted" }, "Nothing changed in this window."));

  // The diff view: two times, the snapshots in force then, and what differs.
  const fromIn = h("input", { type: "datetime-local", name: "from", value: toInput(p.get("from") || since) });
  const toIn = h("input", { type: "datetime-local", name: "to", value: toInput(p.get("to") || until) });
  const diffBox = h("div", {});
  const diffForm = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    reroute({ from: keep(fromIn, p.get("from") || since), to: keep(toIn, p.get("to") || until) });
  } }, h("label", {}, "Compare ", fromIn), " ", h("label", {}, "with ", toIn), " ",
  h("button", { type: "submit" }, "Compare"));
  if (p.get("from")) {
    const dq = new URLSearchParams({ from: p.get("from"), to: p.get("to") || until });
    if (kind) dq.set("kind", kind);
    try {
      const d = await api(`/api/v1/hosts/${encodeURIComponent(hostId)}/diff?${dq}`);
      clear(diffBox, h("p", { class: "muted" }, `Snapshot of ${stamp(d.from.at)} against ${stamp(d.to.at)}: ${d.total} difference(s).`),
        table([
          { title: "Change", value: (c) => c.change, render: (c) => badge(c.change, CHANGE_BADGE[c.change]) },
          { title: "Kind", value: (c) => c.kind },
          { title: "Subject", value: (c) => c.subject, render: (c) => h("code", {}, c.subject) },
          { title: "Before", value: (c) => c.before ?? "" },
          { title: "After", value: (c) => c.after ?? "" },
        ], d.items, { sortable: true, empty: "The two snapshots do not differ." }));
    } catch (err) {
      clear(diffBox, h("p", { class: "error" }, err.message));
    }
  }

  clear(main,
    h("p", {}, h("a", { href: `#/hosts/${encodeURIComponent(hostId)}` }, `← ${host.hostname}`)),
    h("h1", {}, `History of ${host.hostname}`),
    h("p", { class: "muted" }, `${changes.total} change(s) and ${opened.length} incident(s) from ${stamp(since)} to ${stamp(until)}.`),
    filters,
    card("Timeline", timelineBox),
    card("Diff between two times", diffForm, diffBox));
}
