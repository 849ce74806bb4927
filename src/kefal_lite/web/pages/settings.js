import { api, session } from "../api.js";
import { h, clear, card, field, toast, kv, table, ago, badge, when, copyButton } from "../ui.js";

// Recovery codes are shown once, right after they are made: copy them or download them.
function recoveryCodes(codes) {
  const text = codes.join("\n");
  const file = URL.createObjectURL(new Blob([`kefal-lite recovery codes\n\n${text}\n`], { type: "text/plain" }));
  return h("div", { class: "recovery-codes" },
    h("p", {}, h("strong", {}, "Save these recovery codes now: they are not shown again. "),
      "Each one logs you in once in place of a code from your app, if you lose it."),
    h("ol", { class: "codes", "aria-label": "Recovery codes" }, codes.map((c) => h("li", {}, h("code", {}, c)))),
    h("div", { class: "actions" }, copyButton(text, "Copy codes"),
      h("a", { href: file, download: "kefal-lite-recovery-codes.txt", class: "button secondary" }, "Download")));
}

export async function settingsPage(ctx, main) {
  const me = await api("/api/v1/auth/me");
  const email = h("input", { type: "email", value: me.email || "", required: true, autocomplete: "email" });
  const emailPw = h("input", { type: "password", required: true, autocomplete: "current-password" });
  const current = h("input", { type: "password", required: true, autocomplete: "current-password" });
  const next = h("input", { type: "password", required: true, minlength: 10, autocomplete: "new-password" });
  const mfaBox = h("div");
  const renderMfa = async (enabled, codes = null) => {
    const otp = h("input", { inputmode: "numeric", autocomplete: "one-time-code", required: true, "aria-label": "Code", placeholder: "code from your app", size: 16 });
    if (enabled) {
      const { remaining } = await api("/api/v1/auth/mfa/recovery-codes");
      const regenPw = h("input", { type: "password", required: true, autocomplete: "current-password", "aria-label": "Your password", placeholder: "your password" });
      const regenOtp = h("input", { inputmode: "numeric", autocomplete: "one-time-code", required: true, "aria-label": "Code from your app", placeholder: "code from your app", size: 16 });
      clear(mfaBox, h("p", {}, "Two-factor authentication is on."),
        codes ? recoveryCodes(codes) : null,
        h("p", { class: remaining < 3 ? "error" : "muted" }, `${remaining} of 10 recovery codes left.`),
        h("form", { class: "inline", "aria-label": "New recovery codes", onsubmit: async (e) => {
          e.preventDefault();
          try {
            const r = await api("/api/v1/auth/mfa/recovery-codes", { method: "POST", body: { password: regenPw.value, otp: regenOtp.value } });
            toast("New recovery codes: the old ones no longer work"); renderMfa(true, r.recovery_codes);
          } catch (err) { toast(err.message, true); }
        } }, regenPw, regenOtp, h("button", { type: "submit", class: "secondary" }, "New recovery codes")),
        h("form", { class: "inline", "aria-label": "Turn off MFA", onsubmit: async (e) => {
          e.preventDefault();
          try { await api("/api/v1/auth/mfa/disable", { method: "POST", body: { otp: otp.value } }); toast("MFA disabled"); renderMfa(false); }
          catch (err) { toast(err.message, true); }
        } }, otp, h("button", { type: "submit", class: "secondary" }, "Turn off")));
    } else {
      clear(mfaBox, h("p", {}, "Add a second factor with any TOTP app (Aegis, Google Authenticator, 1Password…)."),
        h("button", { type: "button", onclick: async () => {
          try {
            const s = await api("/api/v1/auth/mfa/setup", { method: "POST" });
            clear(mfaBox, h("p", {}, "Add this secret to your app, then type the code it shows:"),
              kv({ secret: s.secret, uri: s.otpauth_uri }),
              h("form", { class: "inline", onsubmit: async (e) => {
                e.preventDefault();
                try {
                  const r = await api("/api/v1/auth/mfa/enable", { method: "POST", body: { otp: otp.value } });
                  toast("MFA enabled"); renderMfa(true, r.recovery_codes);
                } catch (err) { toast(err.message, true); }
              } }, otp, h("button", { type: "submit" }, "Enable")));
          } catch (err) { toast(err.message, true); }
        } }, "Set up MFA"));
    }
  };
  await renderMfa(me.mfa_enabled);
  const deletePw = h("input", { type: "password", required: true, autocomplete: "current-password" });
  const deleteOtp = h("input", { inputmode: "numeric", autocomplete: "one-time-code", required: true });
  const channelsBox = h("div");
  const loadChannels = async () => {
    const list = (await api("/api/v1/notifications/channels")).items;
    clear(channelsBox, table([
      { title: "Name", value: (c) => c.name },
      { title: "URL", value: (c) => c.url },
      { title: "From", value: (c) => c.min_severity, render: (c) => badge(c.min_severity) },
      { title: "Last sent", value: (c) => c.last_success_at || "", render: (c) => ago(c.last_success_at) },
      { title: "Last error", value: (c) => c.last_error || "" },
      { title: "", value: () => "", render: (c) => h("span", { class: "row-actions" },
        h("button", { type: "button", class: "secondary", onclick: async () => {
          const r = await api(`/api/v1/notifications/channels/${encodeURIComponent(c.id)}/test`, { method: "POST" });
          toast(r.ok ? "Test message sent" : `Failed: ${r.error}`, !r.ok); loadChannels();
        } }, "Test"),
        h("button", { type: "button", class: "danger", onclick: async () => {
          await api(`/api/v1/notifications/channels/${encodeURIComponent(c.id)}`, { method: "DELETE", raw: true }); loadChannels();
        } }, "Delete")) },
    ], list, { empty: "No channels: add one to hear about incidents and silent hosts." }));
  };
  const chName = h("input", { required: true, placeholder: "name", "aria-label": "Channel name" });
  const chUrl = h("input", { required: true, placeholder: "ntfy://ntfy.sh/topic, mailto:you@example.org, webhook://host/path", "aria-label": "Channel URL", size: 48 });
  const chSev = h("select", { "aria-label": "Minimum severity" }, ["high", "critical", "medium", "low"].map((x) => h("option", { value: x }, `${x} and above`)));
  const secretBox = h("div");
  await loadChannels();
  // Suppressions are made from an incident ("not on this host" / "not anywhere").
  const suppressionsBox = h("div");
  const loadSuppressions = async () => {
    const [list, topo] = await Promise.all([api("/api/v1/suppressions"), api("/api/v1/topology")]);
    const names = new Map(topo.hosts.map((x) => [x.host_id, x.hostname]));
    clear(suppressionsBox, table([
      { title: "Rule", value: (s) => s.invariant_id || "any rule" },
      { title: "Host", value: (s) => (s.host_id ? names.get(s.host_id) || s.host_id : "any host") },
      { title: "Subject", value: (s) => s.subject_glob || "any", render: (s) => (s.subject_glob ? h("code", {}, s.subject_glob) : "any") },
      { title: "Reason", value: (s) => s.reason },
      { title: "Expires", value: (s) => s.expires_at || "never", render: (s) => (s.active ? (s.expires_at ? s.expires_at.replace("T", " ").slice(0, 16) : "never") : badge("expired", "status")) },
      { title: "Suppressed", value: (s) => s.hits },
      { title: "By", value: (s) => `${s.created_by}, ${when(s.created_at)}` },
      { title: "", value: () => "", render: (s) => h("button", { type: "button", class: "danger", "aria-label": `Delete suppression: ${s.reason}`, onclick: async () => {
        try { await api(`/api/v1/suppressions/${encodeURIComponent(s.id)}`, { method: "DELETE" }); toast("Suppression deleted"); loadSuppressions(); }
        catch (err) { toast(err.message, true); }
      } }, "Delete") },
    ], list.items, { empty: "No suppressions: make one from an incident (\u201cNot on this host\u201d / \u201cNot anywhere\u201d)." }));
  };
  await loadSuppressions();
  const billing = await api("/api/v1/billing/status");
  let billingCard = null;
  if (billing.provider !== "noop") {
    // Only when the operator sells plans: self-hosted servers never show a paywall.
    const plans = (await api("/api/v1/billing/plans")).plans;
    billingCard = card("Plan and billing", kv(billing),
      h("div", { class: "charts" }, plans.map((p) => h("div", { class: "stat" },
        h("strong", {}, `$${p.price_usd_month}`), h("span", {}, `${p.name} · ${p.max_agents ?? "unlimited"} agents`),
        h("button", { type: "button", onclick: async () => {
          try { location.href = (await api("/api/v1/billing/checkout", { method: "POST", body: { plan: p.id } })).approval_url; }
          catch (err) { toast(err.message, true); }
        } }, "Subscribe with PayPal")))),
      billing.state === "active" ? h("button", { type: "button", class: "secondary", onclick: async () => {
        try { await api("/api/v1/billing/cancel", { method: "POST" }); toast("Cancelled: active until the period ends"); ctx.go("#/settings"); }
        catch (err) { toast(err.message, true); }
      } }, "Cancel subscription") : null);
  }
  clear(main, h("h1", {}, "Settings"),
    card("Profile", kv({ username: me.username, role: me.role, plan: me.plan, created: me.created_at })),
    card("Email", h("form", { onsubmit: async (e) => {
      e.preventDefault();
      try { await api("/api/v1/auth/update-email", { method: "POST", body: { email: email.value, password: emailPw.value } }); toast("Email updated"); }
      catch (err) { toast(err.message, true); }
    } }, field("Email", email), field("Your password", emailPw), h("button", { type: "submit" }, "Save email"))),
    card("Password", h("form", { onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api("/api/v1/auth/change-password", { method: "POST", body: { current_password: current.value, new_password: next.value }, raw: true })
          .then(async (r) => { if (!r.ok) throw new Error((await r.json()).detail); });
        session.token = null; toast("Password changed: log in again."); ctx.go("#/login");
      } catch (err) { toast(err.message, true); }
    } }, field("Current password", current), field("New password", next, "At least 10 characters; every session ends."), h("button", { type: "submit" }, "Change password"))),
    card("Two-factor authentication", mfaBox),
    card("Notifications", channelsBox, h("form", { class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      try {
        const r = await api("/api/v1/notifications/channels", { method: "POST", body: { name: chName.value, url: chUrl.value, min_severity: chSev.value } });
        clear(secretBox, r.signing_secret ? h("p", {}, "Webhook signing secret (shown once): ", h("code", {}, r.signing_secret)) : null);
        chName.value = ""; chUrl.value = ""; loadChannels();
      } catch (err) { toast(err.message, true); }
    } }, chName, chUrl, chSev, h("button", { type: "submit" }, "Add channel")), secretBox),
    card("Suppressions", h("p", { class: "muted" }, "Findings these match open no incident; each is counted on its host."), suppressionsBox),
    billingCard,
    card("Sessions", h("p", {}, "Log out of this browser, or of every browser where you are logged in. ",
      h("a", { href: "#/sessions" }, "See every session")),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", onclick: () => window.dispatchEvent(new Event("kefal:signout")) }, "Log out"),
        h("button", { type: "button", class: "danger", onclick: async () => {
          await api("/auth/logout-all", { method: "POST", raw: true });
          session.token = null; ctx.go("#/login");
        } }, "Log out everywhere"))),
    card("Delete account", h("p", {}, "Your account is disabled at once and deleted after 30 days with its agents, hosts, ",
      "history and incidents. Logging in before then cancels the deletion."),
    h("form", { "aria-label": "Delete account", onsubmit: async (e) => {
      e.preventDefault();
      if (!window.confirm("Delete your account? Every session ends now; in 30 days it and its data are gone.")) return;
      try {
        const body = { password: deletePw.value };
        if (me.mfa_enabled) body.otp = deleteOtp.value;
        const r = await api("/api/v1/auth/me", { method: "DELETE", body });
        session.token = null; toast(`Account disabled; deleted on ${r.purge_after.slice(0, 10)} unless you log in before.`); ctx.go("#/login");
      } catch (err) { toast(err.message, true); }
    } }, field("Your password", deletePw), me.mfa_enabled ? field("Code from your app", deleteOtp) : null,
    h("button", { type: "submit", class: "danger" }, "Delete my account"))));
}
