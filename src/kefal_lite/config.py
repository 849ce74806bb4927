"""Settings: command-line flags > KEFAL_* environment > kefal.toml > defaults.

The TOML file has top-level keys for the server and one table per area; a key
`[smtp] host` is the setting `smtp_host` and the environment variable
`KEFAL_SMTP_HOST`. Unknown keys are an error, so a typo never silently falls
back to a default.
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
import typing
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import platformdirs

from kefal_lite.datadir import secure

APP_NAME = "kefal-lite"
ENV_PREFIX = "KEFAL_"
SECRET_FILE = "secret.key"

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: Port = 8470
    data_dir: str = ""
    # Base of links in mails (password reset; empty: http://host:port) and in notifications
    # (a link to the incident; empty: no link, 127.0.0.1 means nothing on a phone).
    public_url: str = ""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Reverse proxies whose X-Forwarded-For is believed (comma-separated addresses, "*"
    # for any). Rate limits, the audit log and /metrics' loopback rule use that address.
    forwarded_allow_ips: str = "127.0.0.1"
    # Signs session JWTs and derives the key that encrypts MFA seeds. Empty means
    # "generate once into <data_dir>/secret.key (mode 0600) and reuse it".
    secret: str = ""

    # "postgresql://user@host/db" selects the PostgreSQL store (the `postgres` extra);
    # empty: the SQLite file kefal.db in the data dir.
    database_url: Annotated[str, msgspec.Meta(pattern=r"^$|^postgres(ql)?://")] = ""
    database_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    database_readers: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4
    # Writes waiting for the writer; beyond this, ingest answers 503 + Retry-After.
    database_write_queue_max: Positive = 10_000

    http_max_body_bytes: Positive = 1_048_576

    # Anyone may register when true; otherwise only the very first user may.
    auth_signup: bool = False

    smtp_host: str = ""
    smtp_port: Port = 587
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_from: str = "kefal-lite@localhost"
    smtp_starttls: bool = True
    smtp_ssl: bool = False
    smtp_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=120)] = 10.0

    # Every snapshot is kept this long; then one an hour, with the change records, until
    # retention_changes_days (counted from the same moment, so at least as long).
    retention_snapshots_days: Positive = 7
    retention_changes_days: Positive = 90
    agents_silent_minutes: Positive = 10

    # A host learns its normal (ports, processes, peers, accounts) until both have passed:
    # this many minutes on the server's clock since its first snapshot, and this many
    # snapshots. 0 minutes leaves only the count (replays, tests).
    detection_learning_minutes: Annotated[int, msgspec.Meta(ge=0, le=525_600)] = 1440
    detection_learning_snapshots: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 3
    # Consecutive snapshots a novel value must appear in before it raises an incident.
    detection_novelty_persistence: Annotated[int, msgspec.Meta(ge=1, le=100)] = 2
    # A baseline value not seen for this many days (up to twice as many) is forgotten.
    detection_baseline_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 30
    # More process names whose disappearance is an incident (logging, audit, EDR agents),
    # added to the core pack's list. In the environment: comma-separated.
    detection_guarded_processes: list[str] = []

    # Mode 1: generate a remediation as soon as an incident opens. Off: only on demand
    # (POST /api/v1/incidents/{id}/remediate, Mode 2).
    remediation_auto: bool = True
    # An OpenAI-compatible chat-completions endpoint (a local Ollama:
    # http://127.0.0.1:11434/v1). Empty: templates only.
    llm_base_url: str = ""
    llm_model: str = ""
    # Name of the environment variable holding the API key (never the key itself).
    llm_api_key_env: str = "KEFAL_LLM_API_KEY"
    llm_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=600)] = 30.0

    # noop: self-hosted, no limits, never 402. paypal: trials, plans and PayPal
    # subscriptions; PAYPAL_CLIENT_ID, PAYPAL_CLIENT_SECRET and PAYPAL_WEBHOOK_ID come from
    # the environment only.
    billing_provider: Literal["noop", "paypal"] = "noop"
    billing_paypal_mode: Literal["sandbox", "live"] = "sandbox"
    # Override the API base URL (a proxy, or a test double); empty: PayPal's for the mode.
    billing_paypal_base_url: str = ""
    billing_plan_starter: str = ""
    billing_plan_professional: str = ""
    billing_plan_enterprise: str = ""

    # Notification URLs may point at private, loopback and link-local addresses (a LAN
    # ntfy or Gotify). "auto": allowed only when strangers cannot have accounts (signup
    # off and billing not paypal), else any tenant could make the server call internal
    # services (SSRF). An explicit true or false wins.
    notifications_allow_private: bool | Literal["auto"] = "auto"

    # HTTPS (`serve --tls`). Without cert and key: a self-signed pair generated into the
    # data dir on first start, pinned by the install line the Agents page shows.
    tls_enabled: bool = False
    tls_cert: str = ""
    tls_key: str = ""

    # /metrics is open to 127.0.0.1 and ::1; from elsewhere it needs this bearer token.
    metrics_token: str = ""
    # Called (GET) every minute so an outside checker notices a dead server. Empty: off.
    heartbeat_url: str = ""

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir) if self.data_dir else default_data_dir()

    @property
    def db_path(self) -> Path:
        return self.data_path / "kefal.db"

    @property
    def notifications_private_allowed(self) -> bool:
        if self.notifications_allow_private != "auto":
            return bool(self.notifications_allow_private)
        return not self.auth_signup and self.billing_provider != "paypal"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls_enabled else 'http'}://{host}:{self.port}"


FIELDS: tuple[str, ...] = Settings.__struct_fields__
SECRET_FIELDS = frozenset(f for f in FIELDS if "password" in f or f in ("secret", "metrics_token"))


class ConfigError(Exception):
    """The configuration cannot be used; the message says which setting and why."""


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_config_file() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "kefal.toml"


def _flatten_toml(doc: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                flat[f"{key}_{sub}"] = subvalue
        else:
            flat[key] = value
    return flat


# Renamed settings: a config file or environment written for an older release still works.
RENAMED = {"retention_days": "retention_snapshots_days"}
_LIST_FIELDS = frozenset({"detection_guarded_processes"})


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        name: environ[ENV_PREFIX + name.upper()]
        for name in (*FIELDS, *RENAMED)
        if ENV_PREFIX + name.upper() in environ
    }
    for name in _LIST_FIELDS & out.keys():
        out[name] = [x.strip() for x in out[name].split(",") if x.strip()]
    return out


def _renamed(values: dict[str, Any]) -> dict[str, Any]:
    return {RENAMED.get(name, name): value for name, value in values.items()}


def load(
    overrides: dict[str, Any] | None = None,
    *,
    config_file: str | Path | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Merge the layers; `overrides` are the flags that were actually given."""
    env = dict(os.environ if environ is None else environ)
    path = Path(config_file) if config_file else None
    if path is None and env.get("KEFAL_CONFIG"):
        path = Path(env["KEFAL_CONFIG"])
    if path is None and default_config_file().is_file():
        path = default_config_file()

    merged: dict[str, Any] = {}
    # Where each value came from, so an error names the thing to change.
    origin: dict[str, str] = {}
    if path is not None:
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {_reason(exc)}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
        flat = _renamed(_flatten_toml(doc))
        merged.update(flat)
        origin.update({name: f"{path}: key {_toml_key(doc, name)}" for name in flat})
    from_env = _renamed(_from_env(env))
    merged.update(from_env)
    origin.update({name: f"{ENV_PREFIX}{name.upper()}={value}" for name, value in from_env.items()})
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    merged.update(flags)
    origin.update({name: f"--{name.replace('_', '-')} {value}" for name, value in flags.items()})
    try:
        # strict=False lets "8470" from the environment become an int.
        return msgspec.convert(merged, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(str(exc), origin, path)) from exc


def _reason(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _toml_key(doc: dict[str, Any], name: str) -> str:
    if name in doc:
        return f"`{name}`"
    for table, value in doc.items():
        if isinstance(value, dict) and name.startswith(table + "_"):
            return f"`{name.removeprefix(table + '_')}` in [{table}]"
    return f"`{name}`"


def _explain(message: str, origin: dict[str, str], path: Path | None) -> str:
    """Turns "Expected `int`, got `str` - at `$.port`" into "KEFAL_PORT=abc: expected a whole
    number, got text"."""
    from kefal_lite.messages import humanize

    unknown = _UNKNOWN.match(message)
    if unknown:
        where = f"config file {path}" if path else "configuration"
        return f"{where}: unknown setting `{unknown[1]}` (kefal.example.toml lists every setting)"
    text, _, at = message.partition(" - at `$.")
    name = at.rstrip("`").split(".")[0].split("[")[0]
    choices = typing.get_args(_HINTS.get(name))
    if text.startswith("Invalid enum value") and choices:
        text = "must be one of " + ", ".join(map(str, choices))
    return f"{origin.get(name, name)}: {humanize(text, types=True)}"


_UNKNOWN = re.compile(r"^Object contains unknown field `([^`]+)`")
_HINTS = typing.get_type_hints(Settings)


def redacted(settings: Settings) -> dict[str, Any]:
    """Every setting as the server sees it, secrets masked: for `config dump`."""
    out: dict[str, Any] = {}
    for name in FIELDS:
        value = getattr(settings, name)
        out[name] = "***" if name in SECRET_FIELDS and value else value
    if settings.database_url:
        # the URL may carry the database password: keep where it points, mask the password
        parts = urllib.parse.urlsplit(settings.database_url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
            out["database_url"] = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    out["data_dir"] = str(settings.data_path)
    return out


def server_secret(settings: Settings) -> str:
    """The configured secret, else the one generated into the data dir on first start."""
    if settings.secret:
        return settings.secret
    path = settings.data_path / SECRET_FILE
    # Before reading: a secret.key planted in a directory others can write is refused.
    secure(path.parent)
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(48)
    # O_EXCL: if two processes race on first start, one wins and both read its value.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(value + "\n")
    return value
