// First run (create the admin), login with OTP when MFA is on, forgot and reset password.
import { api, ApiError } from "../api.js";
import { h, field, toast } from "../ui.js";

export async function authPage(path, params, onLogin) {
  const status = await api("/auth/status").catch(() => ({ first_run: false, signup: false }));
  const box = h("div", { class: "auth" }, h("h1", { class: "brand-big" }, "kefal-lite"));
  const error = h("p", { class: "error", role: "alert" });

  if (path.startsWith("/reset")) {
    const pw = h("input", { type: "password", required: true, minlength: 10, autocomplete: "new-password" });
    box.append(h("form", { onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api("/api/v1/auth/reset-password", { method: "POST", body: { token: params.get("token") || "", new_password: pw.value } });
        toast("Password changed: log in with it.");
        location.hash = "#/login";
      } catch (err) { error.textContent = err.message; }
    } }, h("h2", {}, "Choose a new password"), field("New password", pw, "At least 10 characters."), error,
    h("button", { type: "submit" }, "Set password")));
    return box;
  }

  if (path === "/forgot") {
    const email = h("input", { type: "email", required: true, autocomplete: "email" });
    box.append(h("form", { onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api("/api/v1/auth/forgot-password", { method: "POST", body: { email: email.value } });
        box.replaceChildren(h("h1", { class: "brand-big" }, "kefal-lite"), h("p", {}, "If that address belongs to an account, a reset link is on its way. Without mail configured, the server's operator finds it with `kefal-lite outbox`."), h("a", { href: "#/login" }, "Back to login"));
      } catch (err) { error.textContent = err.message; }
    } }, h("h2", {}, "Reset your password"), field("Email", email), error, h("button", { type: "submit" }, "Send reset link"),
    h("p", {}, h("a", { href: "#/login" }, "Back to login"))));
    return box;
  }

  const username = h("input", { required: true, autocomplete: "username", name: "username" });
  const password = h("input", { type: "password", required: true, autocomplete: status.first_run ? "new-password" : "current-password", name: "password" });
  if (status.first_run) {
    const email = h("input", { type: "email", autocomplete: "email", name: "email" });
    box.append(h("form", { id: "first-run", onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api("/auth/register", { method: "POST", body: { username: username.value, password: password.value, ...(email.value ? { email: email.value } : {}) } });
        const r = await api("/auth/login", { method: "POST", body: { username: username.value, password: password.value } });
        onLogin(r.access_token);
      } catch (err) { error.textContent = err.message; }
    } }, h("h2", {}, "Create the first admin"),
    h("p", { class: "muted" }, "This server has no users yet. The account you create now administers it."),
    field("Username", username), field("Password", password, "At least 10 characters."), field("Email (for password resets)", email), error,
    h("button", { type: "submit" }, "Create admin")));
    return box;
  }

  const otp = h("input", { autocomplete: "one-time-code", name: "otp", maxlength: 32 });
  const otpField = field("Authenticator code", otp, "Lost your device? Type one of your recovery codes instead.");
  otpField.hidden = true;
  box.append(h("form", { id: "login", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    try {
      const body = { username: username.value, password: password.value };
      if (!otpField.hidden) body.otp = otp.value;
      const r = await api("/auth/login", { method: "POST", body });
      onLogin(r.access_token);
      if (r.recovery_codes_remaining !== undefined) {
        toast(`Recovery code used: ${r.recovery_codes_remaining} left. Make new ones in Settings.`, r.recovery_codes_remaining < 3);
      }
    } catch (err) {
      if (err instanceof ApiError && err.status === 401 && err.detail === "otp required") {
        if (!otpField.hidden) error.textContent = "That code did not work; try the next one.";
        otpField.hidden = false;
        otp.focus();
      } else error.textContent = err.message;
    }
  } }, h("h2", {}, "Log in"), field("Username", username), field("Password", password), otpField, error,
  h("button", { type: "submit" }, "Log in"),
  h("p", {}, h("a", { href: "#/forgot" }, "Forgot your password?"),
    status.signup ? h("span", {}, " · ", h("a", { href: "#/login", onclick: (e) => { e.preventDefault(); signup(box, onLogin); } }, "Create an account")) : null)));
  return box;
}

function signup(box, onLogin) {
  const username = h("input", { required: true, autocomplete: "username" });
  const password = h("input", { type: "password", required: true, minlength: 10, autocomplete: "new-password" });
  const error = h("p", { class: "error", role: "alert" });
  box.replaceChildren(h("h1", { class: "brand-big" }, "kefal-lite"), h("form", { onsubmit: async (e) => {
    e.preventDefault();
    try {
      await api("/auth/register", { method: "POST", body: { username: username.value, password: password.value } });
      onLogin((await api("/auth/login", { method: "POST", body: { username: username.value, password: password.value } })).access_token);
    } catch (err) { error.textContent = err.message; }
  } }, h("h2", {}, "Create an account"), field("Username", username), field("Password", password, "At least 10 characters."), error, h("button", { type: "submit" }, "Create account")));
}
