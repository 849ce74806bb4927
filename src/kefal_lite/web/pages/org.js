// The organization this session acts in: its members (invite, role, remove), its API keys,
// and the user's other organizations (switch, create).
import { api, session } from "../api.js";
import { h, clear, badge, when, table, card, copyButton, toast, field } from "../ui.js";

const ROLES = ["viewer", "member", "admin", "owner"];
const RANK = Object.fromEntries(ROLES.map((r, i) => [r, i]));

// The session's organization is in the token itself (the server put it there).
export function currentOrgId() {
  try {
    const payload = JSON.parse(atob(session.token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return (payload.extras && payload.extras.org) || payload.sub;
  } catch { return null; }
}

export async function switchOrg(orgId) {
  const r = await api(`/api/v1/orgs/${encodeURIComponent(orgId)}/switch`, { method: "POST" });
  session.token = r.access_token;
}

function roleSelect(value, max, attrs = {}) {
  return h("select", attrs, ROLES.filter((r) => RANK[r] <= RANK[max]).map((r) =>
    h("option", { value: r, selected: r === value }, r)));
}

export async function orgPage(ctx, main) {
  const mine = (await api("/api/v1/orgs")).items;
  const orgId = currentOrgId();
  const org = mine.find((o) => o.id === orgId) || mine[0];
  const role = org ? org.role : "viewer";
  const base = `/api/v1/orgs/${encodeURIComponent(org.id)}`;

  // --- organizations: switch and create
  const newName = h("input", { name: "org-name", required: true, maxlength: 128 });
  const orgs = card("Your organizations",
    table([
      { title: "Name", value: (o) => o.name, render: (o) => h("span", {}, o.name, o.personal ? h("span", { class: "muted" }, " (personal)") : null) },
      { title: "Your role", value: (o) => o.role, render: (o) => badge(o.role, "status") },
      { title: "", value: () => "", render: (o) => o.id === org.id ? h("span", { class: "muted" }, "current")
        : h("button", { type: "button", class: "secondary", onclick: async () => {
          try { await switchOrg(o.id); window.dispatchEvent(new Event("kefal:me")); toast(`Now in ${o.name}`); ctx.go("#/org"); }
          catch (err) { toast(err.message, true); }
        } }, "Switch") },
    ], mine),
    h("form", { class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      try {
        const made = await api("/api/v1/orgs", { method: "POST", body: { name: newName.value } });
        await switchOrg(made.id);
        toast(`Created ${made.name}; you are its owner`);
        ctx.go("#/org");
      } catch (err) { toast(err.message, true); }
    } }, field("New organization", newName), h("button", { type: "submit" }, "Create")));

  // --- members
  const members = h("div");
  const loadMembers = async () => {
    const r = await api(`${base}/members`);
    clear(members, table([
      { title: "User", value: (m) => m.username },
      { title: "Email", value: (m) => m.email || "" },
      { title: "Role", value: (m) => m.role, render: (m) => role === "owner"
        ? roleSelect(m.role, "owner", { "aria-label": `Role of ${m.username}`, onchange: async (e) => {
          try { await api(`${base}/members/${encodeURIComponent(m.user_id)}`, { method: "PATCH", body: { role: e.target.value } }); toast("Role changed"); }
          catch (err) { toast(err.message, true); e.target.value = m.role; }
        } })
        : badge(m.role, "status") },
      { title: "Joined", value: (m) => m.created_at, render: (m) => when(m.created_at) },
      { title: "", value: () => "", render: (m) => (role === "owner" || m.user_id === ctx.me.id)
        ? h("button", { type: "button", class: "secondary", onclick: async () => {
          try {
            await api(`${base}/members/${encodeURIComponent(m.user_id)}`, { method: "DELETE" });
            toast(m.user_id === ctx.me.id ? "You left the organization" : `Removed ${m.username}`);
            if (m.user_id === ctx.me.id) { await switchOrg(ctx.me.id); ctx.go("#/"); } else await loadMembers();
          } catch (err) { toast(err.message, true); }
        } }, m.user_id === ctx.me.id ? "Leave" : "Remove") : null },
    ], r.items));
  };
  const email = h("input", { type: "email", name: "invite-email", required: true });
  const inviteRole = roleSelect("member", role, { name: "invite-role", "aria-label": "Role" });
  const invite = RANK[role] >= RANK.admin ? h("form", { class: "inline", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const inv = await api(`${base}/invitations`, { method: "POST", body: { email: email.value, role: inviteRole.value } });
      toast(`Invitation mailed to ${inv.email}; valid 7 days`);
      email.value = "";
    } catch (err) { toast(err.message, true); }
  } }, field("Invite by email", email), field("as", inviteRole), h("button", { type: "submit" }, "Invite")) : null;

  // --- API keys
  const keys = h("div");
  const shown = h("div", { role: "status" });
  const loadKeys = async () => {
    const r = await api("/api/v1/api-keys");
    clear(keys, table([
      { title: "Name", value: (k) => k.name },
      { title: "Role", value: (k) => k.role, render: (k) => badge(k.role, "status") },
      { title: "Key", value: (k) => k.prefix, render: (k) => h("code", {}, `${k.prefix}…`) },
      { title: "Last used", value: (k) => k.last_used_at || "", render: (k) => k.last_used_at ? when(k.last_used_at) : "never" },
      { title: "", value: () => "", render: (k) => k.revoked_at ? badge("revoked", "status")
        : h("button", { type: "button", class: "secondary", onclick: async () => {
          try { await api(`/api/v1/api-keys/${encodeURIComponent(k.id)}`, { method: "DELETE", raw: true }); toast("Revoked"); await loadKeys(); }
          catch (err) { toast(err.message, true); }
        } }, "Revoke") },
    ], r.items, { empty: "No API keys yet." }));
  };
  const keyName = h("input", { name: "key-name", required: true, maxlength: 128 });
  const keyRole = roleSelect("viewer", role, { name: "key-role", "aria-label": "Key role" });
  const keyForm = h("form", { class: "inline", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const k = await api("/api/v1/api-keys", { method: "POST", body: { name: keyName.value, role: keyRole.value } });
      clear(shown, h("div", { class: "cmd" }, h("code", { "data-testid": "api-key" }, k.key), copyButton(k.key)),
        h("p", { class: "muted" }, "Shown once. Send it as Authorization: Bearer <key>."));
      keyName.value = "";
      await loadKeys();
    } catch (err) { toast(err.message, true); }
  } }, field("Key name", keyName), field("Role", keyRole), h("button", { type: "submit" }, "Create key"));

  const admin = RANK[role] >= RANK.admin;
  clear(main,
    h("h1", {}, org.name, " ", badge(role, "status")),
    orgs,
    card("Members", members, invite),
    admin ? card("API keys", h("p", { class: "muted" }, "For scripts: a key acts in this organization with its role (at most yours)."), keyForm, shown, keys) : null);
  await loadMembers();
  if (admin) await loadKeys();
}

// An invitation link (#/invite?token=…): accepted by the signed-in account, which then
// acts in the organization it joined.
export async function acceptInvite(token) {
  const joined = await api("/api/v1/invitations/accept", { method: "POST", body: { token } });
  await switchOrg(joined.id);
  return joined;
}
