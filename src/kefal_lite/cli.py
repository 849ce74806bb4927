"""The `kefal-lite` command. Its bare form serves, like `datasette`."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import sqlite3
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import msgspec

from kefal_lite import __version__, config, datadir, security, snapshot
from kefal_lite.accounts import NewUser
from kefal_lite.clock import Clock, iso
from kefal_lite.errors import ApiError
from kefal_lite.store import outbox, users
from kefal_lite.store.db import open_sync, open_sync_for, transaction
from kefal_lite.store.lock import DataDirLocked, ServerLock
from kefal_lite.store.migrations import MIGRATIONS
from kefal_lite.usecases import accounts


# Options that mean the same everywhere. They are accepted on the group and on every
# command (`kefal-lite --data-dir X user list` and `kefal-lite user list --data-dir X`);
# each given value is remembered in the context's shared meta as it is parsed, parents
# first, so the one nearest the command wins. KEFAL_* variables are read by config.load,
# below any flag.
def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is not None and param.name:
        ctx.meta[f"kefal.{param.name}"] = value
    return value


def _global_options(f: Any) -> Any:
    f = click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        expose_value=False,
        callback=_remember,
        help="A kefal.toml (see kefal.example.toml); env KEFAL_CONFIG."
        " Flags and KEFAL_* variables override it.",
    )(f)
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        expose_value=False,
        callback=_remember,
        help="Where the SQLite file, the secret and the lock live; env KEFAL_DATA_DIR"
        " (default: the platform's user data dir).",
    )(f)


def _server_options(f: Any) -> Any:
    """What `serve` listens on; `config dump` takes them too, to show what that serve uses."""
    f = click.option(
        "--port",
        type=int,
        expose_value=False,
        callback=_remember,
        help="TCP port; env KEFAL_PORT (default 8470).",
    )(f)
    f = click.option(
        "--host",
        expose_value=False,
        callback=_remember,
        help="Address to listen on; env KEFAL_HOST (default 127.0.0.1, this machine only)."
        " Use 0.0.0.0 so agents on other machines of your LAN can reach the server.",
    )(f)
    return _global_options(f)


def _settings(ctx: click.Context) -> config.Settings:
    given = {k.removeprefix("kefal."): v for k, v in ctx.meta.items() if k.startswith("kefal.")}
    config_file = given.pop("config_file", None)
    overrides = {k: str(v) if isinstance(v, Path) else v for k, v in given.items()}
    try:
        return config.load(overrides, config_file=config_file)
    except config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None


NO_DATABASE = "no database at {path}: is the server's --data-dir elsewhere?"


@contextlib.contextmanager
def _db(settings: config.Settings, *, create: bool = False) -> Iterator[sqlite3.Connection]:
    """The migrated database; a command that only reads or changes existing data
    (create=False) never leaves an empty kefal.db behind in a mistyped data dir."""
    if settings.database_url:
        try:
            conn = open_sync_for(settings)
        except sqlite3.Error as exc:
            raise click.ClickException(
                f"cannot open the database at database_url: {exc}; check the URL, that the"
                " server runs and that this role may create tables there"
            ) from None
    else:
        if not create and not settings.db_path.is_file():
            raise click.ClickException(NO_DATABASE.format(path=settings.db_path))
        try:
            conn = open_sync(settings.db_path, synchronous=settings.database_synchronous)
        except (OSError, sqlite3.Error) as exc:
            raise click.ClickException(
                f"cannot open the database {settings.db_path}: {exc}; check --data-dir and"
                " that this user may write there"
            ) from None
    try:
        yield conn
    finally:
        conn.close()


class _Group(click.Group):
    """Every command's group: the shared options on the group itself and on each command
    added to it, and a plain message instead of a traceback for file-system errors."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not isinstance(cmd, _AgentGroup):
            known = {p.name for p in cmd.params}
            probe = _global_options(click.Command("probe"))
            cmd.params.extend(p for p in probe.params if p.name not in known)
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}") from None
        except sqlite3.Error as exc:
            raise click.ClickException(f"database error: {exc}") from None

    group_class = type  # subgroups made with @group.group() are _Group too


class _AgentGroup(click.Group):
    """The agent's commands run on monitored hosts: their --config is the agent's own
    config file, and the server's options do not apply."""


@click.group(
    cls=_Group,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@_server_options
@click.version_option(__version__, prog_name="kefal-lite")
@click.pass_context
def main(ctx: click.Context) -> None:
    """kefal-lite: a self-hosted host-security monitor. Without a command, serve."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve)


def _check_port(host: str, port: int) -> None:
    """Bind once before the banner, so a taken port is one clear line, not a banner
    followed by uvicorn's [Errno 98]."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As uvicorn does: a port in TIME_WAIT after a restart is free to take.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as exc:
        pick = "pick another with --port N (or KEFAL_PORT=N, or `port` in kefal.toml)"
        if exc.errno == errno.EADDRINUSE:
            why = f"port {port} on {host} is already in use by another program"
            hint = f"{pick}, or find what holds it: ss -ltnp 'sport = :{port}'"
        elif exc.errno == errno.EACCES:
            why = f"port {port} needs root privileges"
            hint = f"{pick} above 1023"
        else:
            why = f"cannot listen on {host}:{port} ({exc.strerror or exc})"
            hint = "check --host (an address of this machine, or 0.0.0.0 for all)"
        raise click.ClickException(f"{why}; {hint}") from None


def _self_command() -> str:
    """How to run this same kefal-lite from a shell: its bare name when PATH finds this one,
    else its full path (the README's venv route, ~/.kefal/bin, is not on PATH)."""
    me = Path(sys.argv[0])
    if me.name != "kefal-lite":  # python -m kefal_lite
        return "kefal-lite"
    found = shutil.which("kefal-lite")
    if found and Path(found).resolve() == me.resolve():
        return "kefal-lite"
    return shlex.quote(str(me.absolute()))


@main.command()
@_server_options
@click.option("--access-log/--no-access-log", default=False, help="Log every HTTP request.")
@click.option("--tls/--no-tls", "tls_enabled", default=None,
              help="Serve HTTPS ([tls] in the config); without a certificate, a self-signed one"
              " is made in the data dir and pinned by the install line.")  # fmt: skip
@click.pass_context
def serve(ctx: click.Context, access_log: bool, tls_enabled: bool | None) -> None:
    """Run the server: API, dashboard and background jobs, in this one process."""
    import uvicorn

    from kefal_lite import tls
    from kefal_lite.app import create_app
    from kefal_lite.httpserver import uvicorn_options

    # Whatever this process writes (SQLite's own files included) is the owner's alone.
    os.umask(0o077)
    if tls_enabled is not None:
        ctx.meta["kefal.tls_enabled"] = tls_enabled
    settings = _settings(ctx)
    _check_port(settings.host, settings.port)
    lock = ServerLock(settings.data_path)
    try:
        lock.acquire()
    except DataDirLocked as exc:
        raise click.ClickException(str(exc)) from None
    with _db(settings, create=True) as conn:
        has_users = users.count(conn) > 0
    click.echo(
        f"kefal-lite {__version__} listening on {settings.host}:{settings.port}"
        f"  (data: {settings.data_path})\n  Open {settings.base_url}/"
    )
    if settings.host in ("127.0.0.1", "localhost", "::1"):
        click.echo("  Only this machine can connect; use --host 0.0.0.0 for agents on your LAN.")
    if not has_users:
        click.echo(
            "  No users yet. Create the first admin with:\n"
            f"    {_self_command()} "
            + (f"--data-dir {settings.data_path} " if settings.data_dir else "")
            + "user add NAME --admin"
            + f"\n  or open {settings.base_url}/ and register; the first account becomes admin."
        )
    ssl_options: dict[str, Any] = {}
    if settings.tls_enabled:
        try:
            served = tls.ensure_certificate(settings)
        except config.ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        pin = tls.served_pin(settings)
        click.echo(f"  HTTPS with {served.cert}" + (f" (self-signed, {pin.cert})" if pin else ""))
        ssl_options = {"ssl_certfile": str(served.cert), "ssl_keyfile": str(served.key)}
    elif settings.host not in ("127.0.0.1", "localhost", "::1") and not (
        settings.public_url.startswith("https://")
    ):
        click.echo(
            "  Warning: agent and enrollment tokens cross the network in clear; serve with"
            " --tls (self-signed and pinned) or behind a TLS reverse proxy (then set public_url)."
        )
    app = create_app(settings, lock=lock)
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=access_log,
            # Timeouts and limits against slow and idle clients: see httpserver.py.
            **uvicorn_options(settings),
            **ssl_options,
        )
    finally:
        lock.release()


# --- users -------------------------------------------------------------------------


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


def _now() -> str:
    return iso(Clock().now())


def _find(conn: sqlite3.Connection, username: str) -> users.User:
    with _refused():
        return accounts.find(conn, username)


@contextlib.contextmanager
def _refused() -> Iterator[None]:
    """A use case's refusal (no such user, a taken name) as the CLI's error message."""
    try:
        yield
    except ApiError as exc:
        raise click.ClickException(exc.detail) from None


@main.group("user")
def user_group() -> None:
    """Manage accounts directly in the database (works while the server runs)."""


@user_group.command("add")
@click.argument("username")
@click.option("--admin", is_flag=True, help="Give the account the admin role.")
@click.option("--email", default=None, help="Address for password-reset mails.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def user_add(
    ctx: click.Context, username: str, admin: bool, email: str | None, password_stdin: bool
) -> None:
    """Create an account (password from a prompt, or --password-stdin)."""
    settings = _settings(ctx)
    password = _read_password(password_stdin)
    try:
        new = msgspec.convert({"username": username, "password": password, "email": email}, NewUser)
    except msgspec.ValidationError as exc:
        raise click.ClickException(f"invalid account: {exc}") from None
    password_hash = security.hash_password(new.password)
    with _db(settings, create=True) as conn, _refused(), transaction(conn):
        user = accounts.add_user(
            conn, accounts.OPERATOR, user_id=str(uuid.uuid4()), username=new.username,
            password_hash=password_hash, role="admin" if admin else "user", email=new.email,
            now=_now(),
        )  # fmt: skip
    click.echo(f"created {user.role} {user.username} ({user.id})")


@user_group.command("list")
@click.pass_context
def user_list(ctx: click.Context) -> None:
    """List accounts."""
    with _db(_settings(ctx)) as conn:
        accounts = users.list_all(conn)
        click.echo(f"{'USERNAME':<24} {'ROLE':<6} {'EMAIL':<32} CREATED")
        for u in accounts:
            flags = " disabled" if u.disabled else ""
            flags += " mfa" if u.mfa_enabled else ""
            flags += f" deleted (purged after {u.delete_after})" if u.delete_after else ""
            click.echo(f"{u.username:<24} {u.role:<6} {u.email or '-':<32} {u.created_at}{flags}")


@user_group.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def user_passwd(ctx: click.Context, username: str, password_stdin: bool) -> None:
    """Set a new password; every session of that user ends."""
    settings = _settings(ctx)
    password = _read_password(password_stdin)
    if not security.MIN_PASSWORD <= len(password) <= security.MAX_PASSWORD:
        raise click.ClickException(
            f"the password needs at least {security.MIN_PASSWORD} characters"
        )
    password_hash = security.hash_password(password)
    with _db(settings) as conn, _refused(), transaction(conn):
        accounts.set_password(conn, accounts.OPERATOR, username, password_hash, _now())
    click.echo(f"password of {username} changed; its sessions are ended")


@user_group.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(["admin", "user"]))
@click.pass_context
def user_set_role(ctx: click.Context, username: str, role: str) -> None:
    """Make an account admin or user."""
    with _db(_settings(ctx)) as conn, _refused(), transaction(conn):
        accounts.set_role(conn, accounts.OPERATOR, username, "admin" if role == "admin" else "user",
                          _now())  # fmt: skip
    click.echo(f"{username} is now {role}")


@user_group.command("disable")
@click.argument("username")
@click.option("--enable", is_flag=True, help="Enable the account again instead.")
@click.pass_context
def user_disable(ctx: click.Context, username: str, enable: bool) -> None:
    """Block an account: its sessions end and its agents' snapshots are refused."""
    with _db(_settings(ctx)) as conn, _refused(), transaction(conn):
        accounts.set_disabled(conn, accounts.OPERATOR, username, not enable, _now())
    click.echo(f"{username} {'enabled' if enable else 'disabled'}")


@user_group.command("reset-mfa")
@click.argument("username")
@click.pass_context
def user_reset_mfa(ctx: click.Context, username: str) -> None:
    """Turn MFA off for someone who lost their device and recovery codes: their recovery
    codes are deleted and every session of theirs ends."""
    with _db(_settings(ctx)) as conn, _refused(), transaction(conn):
        accounts.reset_mfa(conn, accounts.OPERATOR, username, _now())
    click.echo(f"MFA of {username} is off; its recovery codes are deleted and its sessions ended")


# --- operations --------------------------------------------------------------------


@main.group("config")
def config_group() -> None:
    """Inspect the effective configuration."""


@config_group.command("dump")
@_server_options
@click.pass_context
def config_dump(ctx: click.Context) -> None:
    """Print every setting as `serve` with the same flags would use it, secrets masked."""
    click.echo(json.dumps(config.redacted(_settings(ctx)), indent=2))


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def backup(ctx: click.Context, path: Path) -> None:
    """Copy the database to PATH with SQLite's online backup (consistent while serving)."""
    settings = _settings(ctx)
    if settings.database_url:
        raise click.ClickException(
            "the store is PostgreSQL (database_url): back it up with pg_dump, which is"
            " consistent while serving"
        )
    if not settings.db_path.is_file():
        raise click.ClickException(NO_DATABASE.format(path=settings.db_path))
    if not path.parent.is_dir():
        raise click.ClickException(
            f"directory {path.parent} does not exist; create it (mkdir -p {path.parent})"
            " or choose a path in an existing directory"
        )
    try:
        # 0600 from the start: a backup holds password hashes and every snapshot.
        datadir.create_private(path)
    except FileExistsError:
        raise click.ClickException(f"{path} exists; choose a new file") from None
    source = sqlite3.connect(settings.db_path)
    target = sqlite3.connect(path)
    try:
        with target:
            source.backup(target)
    finally:
        target.close()
        source.close()
    click.echo(f"backed up {settings.db_path} to {path}")


@main.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Bring the database schema up to date, then exit. `serve` migrates too; run this
    before starting several servers on one PostgreSQL database (an advisory lock makes
    concurrent runs safe: one migrates, the others wait and find nothing to do)."""
    with _db(_settings(ctx), create=True) as conn:
        del conn
    click.echo(f"schema is at version {len(MIGRATIONS)}")


@main.command("migrate-to-postgres")
@click.argument("sqlite_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.argument("database_url")
def migrate_to_postgres(sqlite_file: Path, database_url: str) -> None:
    """Copy the SQLite database SQLITE_FILE (a running server's is fine: the copy is one
    consistent read) into the empty PostgreSQL database DATABASE_URL, and compare the
    row count of every table. Then set database_url and restart the server."""
    try:
        from kefal_lite.store import pg, pgcopy
    except ImportError:
        raise click.ClickException(
            "PostgreSQL support is not installed: pip install 'kefal-lite[postgres]'"
        ) from None
    if not pg.is_postgres_url(database_url):
        raise click.ClickException("DATABASE_URL must start with postgresql://")
    source = sqlite3.connect(f"file:{sqlite_file}?mode=ro", uri=True, isolation_level=None)
    try:
        target = pg.connect(database_url)
        try:
            counts = pgcopy.copy(source, target)
        except pgcopy.CopyRefused as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            target.close()
    finally:
        source.close()
    width = max(len(t) for t, _, _ in counts)
    for table, src, dst in counts:
        mark = "ok" if src == dst else "MISMATCH"
        click.echo(f"{table:<{width}}  sqlite {src:>9}  postgresql {dst:>9}  {mark}")
    if any(src != dst for _, src, dst in counts):
        raise click.ClickException("row counts differ: do not switch to this database")
    click.echo(f"copied {sum(src for _, src, _ in counts)} rows in {len(counts)} tables")


@main.command("outbox")
@click.option("--limit", default=10, show_default=True)
@click.pass_context
def outbox_show(ctx: click.Context, limit: int) -> None:
    """Show recent mails; without SMTP this is where reset links wait."""
    with _db(_settings(ctx)) as conn:
        mails = outbox.recent(conn, limit)
        if not mails:
            # An empty answer looked like a failure to a first-time user.
            click.echo("no mails yet: password-reset links and mailto: alerts show up here")
        for mail in mails:
            click.echo(f"--- #{mail.id} {mail.created_at} to {mail.recipient} [{mail.status}]")
            click.echo(f"Subject: {mail.subject}")
            if mail.last_error:
                click.echo(f"Last error: {mail.last_error}")
            if mail.body:
                click.echo(mail.body)


# --- agent -------------------------------------------------------------------------

UNIT_PATH = "/etc/systemd/system/kefal-lite-agent.service"

_agent_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Agent config file with the server URL, agent id and token"
    " (default: <user config dir>/kefal-lite/agent.json, written 0600).",
)


def _agent_logging() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")


@main.group("agent", cls=_AgentGroup)
def agent_group() -> None:
    """Run on each monitored host: collect snapshots and send them to the server."""


@agent_group.command("enroll")
@click.option("--server", required=True, help="The server's URL, e.g. http://192.168.1.10:8470")
@click.option("--username", required=True, help="Your kefal-lite account.")
@click.option("--name", default=None, help="A name for this agent (default: generated).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--otp", default=None, help="The current code of your authenticator (MFA on).")
@_agent_config_option
def agent_enroll(
    server: str, username: str, name: str | None, password_stdin: bool, otp: str | None,
    config_path: Path | None,
) -> None:  # fmt: skip
    """Enroll this host with the server and save its token."""
    from kefal_lite.agent import client

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True)
    try:
        _, note = client.normalise_server(server)
        if note:
            click.echo(f"note: {note}", err=True)
        cfg = client.enroll(server, username, password, name or _hostname(), otp)
    except client.AgentError as exc:
        raise click.ClickException(str(exc)) from None
    path = config_path or client.default_config_path()
    client.save_config(path, cfg)
    click.echo(f"enrolled as agent {cfg.agent_id}; config saved to {path} (mode 0600)")
    click.echo("next: kefal-lite agent run   (or: sudo kefal-lite agent install-service)")


def _hostname() -> str:
    import socket

    return socket.gethostname()[:128] or "agent"


@agent_group.command("run")
@click.option("--interval", default=60, show_default=True, type=click.IntRange(5, 86_400),
              help="Seconds between snapshots.")  # fmt: skip
@click.option("--spool", "spool_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Where unsent snapshots wait (default: data dir).")  # fmt: skip
@_agent_config_option
def agent_run(interval: int, spool_dir: Path | None, config_path: Path | None) -> None:
    """Collect and send a snapshot every --interval seconds, until stopped."""
    from kefal_lite.agent import client

    _agent_logging()
    try:
        cfg = client.load_config(config_path or client.default_config_path())
        agent = client.Agent(cfg, client.Spool(spool_dir or client.default_spool_dir()))
        click.echo(f"kefal-lite agent {cfg.agent_id} reporting to {cfg.server} every {interval} s")
        agent.run(interval)
    except client.AgentError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("stopped")


@agent_group.command("once")
@click.option("--print", "print_only", is_flag=True, help="Print the JSON instead of sending it.")
@_agent_config_option
def agent_once(print_only: bool, config_path: Path | None) -> None:
    """Collect one snapshot (CPU measured over one second) and send or print it."""
    import tempfile
    import time

    from kefal_lite import snapshot as wire
    from kefal_lite.agent import client
    from kefal_lite.agent.collect import Collector

    _agent_logging()
    path = config_path or client.default_config_path()
    try:
        cfg = client.load_config(path) if (not print_only or path.exists()) else None
    except client.AgentError as exc:
        raise click.ClickException(str(exc)) from None
    collector = Collector(cfg.agent_id if cfg else "not-enrolled")
    collector.prime()
    time.sleep(1.0)
    snap = collector.collect()
    if print_only:
        click.echo(json.dumps(msgspec.to_builtins(snap), indent=2))
        return
    assert cfg is not None
    # A throw-away spool: one try, and `agent run`'s spool is neither created nor touched.
    with tempfile.TemporaryDirectory(prefix="kefal-once-") as scratch:
        spool = client.Spool(Path(scratch))
        spool.put(wire.encode(snap))
        try:
            sent = client.Agent(cfg, spool, collector).drain()
        except client.AgentError as exc:
            raise click.ClickException(str(exc)) from None
    if not sent:
        raise click.ClickException(
            f"the snapshot was not accepted by {cfg.server} (see the message above);"
            " nothing was kept"
        )
    click.echo(f"sent 1 snapshot to {cfg.server}")


@agent_group.command("install-service")
@click.option("--interval", default=60, show_default=True, type=click.IntRange(5, 86_400))
@click.option("--unit-path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path(UNIT_PATH), show_default=True)  # fmt: skip
@click.option("--print", "print_only", is_flag=True, help="Print the unit instead of writing it.")
@_agent_config_option
def agent_install_service(
    interval: int, unit_path: Path, print_only: bool, config_path: Path | None
) -> None:
    """Write a systemd unit that runs the agent at boot (needs root to write the unit)."""
    from kefal_lite.agent import client

    path = (config_path or client.default_config_path()).resolve()
    try:
        cfg = client.load_config(path)
    except client.AgentError as exc:
        raise click.ClickException(str(exc)) from None
    unit = client.systemd_unit(sys.executable, path, cfg.server, interval)
    if print_only:
        click.echo(unit, nl=False)
        return
    try:
        unit_path.write_text(unit)
    except PermissionError:
        raise click.ClickException(
            f"cannot write {unit_path}: run with sudo, or use --print"
        ) from None
    except FileNotFoundError:
        raise click.ClickException(
            f"cannot write {unit_path}: directory {unit_path.parent} does not exist"
        ) from None
    click.echo(f"wrote {unit_path}")
    click.echo(f"now: {systemctl_line(unit_path)}")


# Where systemd looks for units (systemd.unit(5)); a unit elsewhere must be linked in.
_SYSTEM_UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system",
                     "/lib/systemd/system", "/usr/local/lib/systemd/system")  # fmt: skip
_USER_UNIT_DIRS = (".config/systemd/user", ".local/share/systemd/user")


def systemctl_line(unit_path: Path) -> str:
    """The command that starts the unit just written, wherever it was written."""
    unit = unit_path.resolve()
    home = Path.home()
    if str(unit.parent) in _SYSTEM_UNIT_DIRS:
        return f"systemctl daemon-reload && systemctl enable --now {unit.name}"
    if any(unit.parent == home / d for d in _USER_UNIT_DIRS):
        return f"systemctl --user daemon-reload && systemctl --user enable --now {unit.name}"
    # Outside the search path: `systemctl link` makes systemd see it, then start it by name.
    return f"systemctl link {unit} && systemctl enable --now {unit.name}"


# --- invariants --------------------------------------------------------------------

PACK_FORMAT = "kefal-lite/invariants/1"


@main.group("invariants")
def invariants_group() -> None:
    """Test invariants offline; move verified ones between servers."""


def _load_rule(path: Path) -> Any:
    from kefal_lite.community import Contribution

    try:
        return msgspec.json.decode(path.read_bytes(), type=Contribution)
    except (OSError, msgspec.DecodeError) as exc:
        raise click.ClickException(f"{path}: {exc}") from None


@invariants_group.command("test")
@click.argument("rule", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("snapshots", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--verify", "run_verify", is_flag=True, help="Also run the server's verification.")
def invariants_test(rule: Path, snapshots: tuple[Path, ...], run_verify: bool) -> None:
    """Evaluate RULE.json over SNAPSHOT.json files in order, like wazuh-logtest.

    Each snapshot file holds one snapshot or a list of them; the engine keeps its
    state between them, so novelty and temporal rules behave as on the server.
    """
    from kefal_lite.community import contribution_invariant
    from kefal_lite.detect.engine import Catalog, evaluate
    from kefal_lite.detect.state import HostState
    from kefal_lite.detect.verify import verify

    inv = contribution_invariant(_load_rule(rule))
    catalog = Catalog([inv])
    state = HostState()
    fired = 0
    sequence = msgspec.json.Decoder(snapshot.Snapshot | list[snapshot.Snapshot])
    for path in snapshots:
        try:
            decoded = sequence.decode(path.read_bytes())
        except msgspec.DecodeError as exc:
            raise click.ClickException(f"{path}: {exc}") from None
        for i, snap in enumerate(decoded if isinstance(decoded, list) else [decoded]):
            findings, state = evaluate(snap, state, catalog, snap.timestamp)
            where = f"{path.name}#{i} ({snap.hostname} {snap.timestamp:%Y-%m-%d %H:%M:%S})"
            if not findings:
                click.echo(f"{where}: quiet")
            for f in findings:
                fired += 1
                click.echo(f"{where}: FIRES [{f.severity}] {f.subject}: {f.title}")
                click.echo(f"    evidence: {json.dumps(f.evidence, default=str)}")
    click.echo(f"{fired} finding(s) over {len(snapshots)} file(s)")
    if run_verify:
        report = verify(inv)
        click.echo(json.dumps(msgspec.to_builtins(report), indent=2))
        corpus = report.red_team.corpus_snapshots
        if not report.passed:
            # Non-zero so a script or CI step stops on a rule the server would reject.
            raise click.ClickException(
                f"verification failed ({corpus} benign corpus snapshots checked): "
                + "; ".join(report.reasons)
            )
        click.echo(f"verification passed ({corpus} benign corpus snapshots checked)")


@invariants_group.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.pass_context
def invariants_export(ctx: click.Context, output: Path | None) -> None:
    """Write the active community invariants as a JSON pack (stdout by default)."""
    from kefal_lite.store import invariants as store

    with _db(_settings(ctx)) as conn:
        active = store.with_status(conn, "active")
    pack = {
        "format": PACK_FORMAT,
        "invariants": [
            {
                "name": s.name,
                "invariant_type": s.invariant_type,
                "predicate": s.predicate,
                "severity": s.severity,
                "metadata": s.metadata,
            }  # fmt: skip
            for s in active
        ],
    }
    text = json.dumps(pack, indent=2) + "\n"
    if output:
        output.write_text(text)
        click.echo(f"exported {len(active)} invariant(s) to {output}", err=True)
    else:
        click.echo(text, nl=False)


@invariants_group.command("import")
@click.argument("pack", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--owner", required=True, help="The local user recorded as contributor.")
@click.pass_context
def invariants_import(ctx: click.Context, pack: Path, owner: str) -> None:
    """Import a pack; each invariant is verified here again before it becomes active.

    A running server puts the imported invariants in force within a few seconds.
    """
    from kefal_lite.community import Contribution, contribution_invariant
    from kefal_lite.detect.verify import verify
    from kefal_lite.ids import new_id
    from kefal_lite.store import invariants as store
    from kefal_lite.usecases import rules as rule_cases

    try:
        data = json.loads(pack.read_text())
        assert data.get("format") == PACK_FORMAT, f"not a {PACK_FORMAT} pack"
        rules = [msgspec.convert(item, Contribution) for item in data["invariants"]]
    except (ValueError, KeyError, AssertionError, msgspec.ValidationError) as exc:
        raise click.ClickException(f"{pack}: {exc}") from None
    now = iso(Clock().now())
    with _db(_settings(ctx)) as conn:
        user = _find(conn, owner)
        for rule in rules:
            try:  # before verification, which takes a while
                rule_cases.admit(rule)
            except ApiError as exc:
                click.echo(f"skipped: {rule.name}: {exc.detail}")
                continue
            if store.name_taken(conn, rule.name):
                click.echo(f"skipped: {rule.name}: the name is taken")
                continue
            report = verify(contribution_invariant(rule))
            try:
                with transaction(conn):
                    status = rule_cases.import_verified(conn, user.id, rule, new_id(), report, now)
            except ApiError as exc:  # the name was taken meanwhile
                click.echo(f"skipped: {rule.name}: {exc.detail}")
                continue
            why = "" if report.passed else ": " + "; ".join(report.reasons)
            click.echo(f"{status}: {rule.name}{why}")
