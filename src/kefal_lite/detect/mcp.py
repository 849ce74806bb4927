"""MCP servers: their risk, the processes that run them, and the `mcp` pack's predicates.

Pure. The risk of a server is the sum of the weights of its reasons (capped at 100); the
level follows the score. docs/mcp.md is the table of reasons, weights and levels, and
tests/test_mcp_detect.py holds it as cases: change one, change the other.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from kefal_lite.detect import predicates as p
from kefal_lite.detect.facts import Facts, is_loopback

if TYPE_CHECKING:
    from kefal_lite.detect.engine import Ctx, Hit


class Server(Protocol):
    """What risk and linking read: the snapshot's McpServer or the graph's slimmer copy."""

    @property
    def client(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def transport(self) -> str: ...
    @property
    def command(self) -> str | None: ...
    @property
    def args(self) -> list[str]: ...
    @property
    def url(self) -> str | None: ...
    @property
    def paths(self) -> list[str]: ...
    @property
    def secrets_inline(self) -> bool: ...
    @property
    def user(self) -> str | None: ...


class Proc(Protocol):
    @property
    def pid(self) -> int: ...
    @property
    def cmdline(self) -> str | None: ...


WEIGHTS = {"shell": 50, "docker_socket": 50, "fs_root": 40, "fs_system": 35, "fs_home": 30,
           "inline_secret": 30, "database": 25, "fs_write": 20, "network": 15,
           "remote": 10}  # fmt: skip
LEVELS = (("critical", 80), ("high", 50), ("medium", 20), ("low", 0))
LEVEL_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}

# Substrings of the command line (package or image names) that say what a server can do.
SHELL = ("mcp-shell", "shell-mcp", "server-shell", "shell-server", "server-commands",
         "desktop-commander", "terminal-mcp", "mcp-terminal", "iterm-mcp", "cli-mcp-server",
         "mcp-server-cli", "ssh-mcp", "mcp-ssh", "server-ssh", "mcp-exec", "exec-mcp",
         "run-command", "code-runner", "win-cli", "windows-cli", "powershell-mcp",
         "bash-mcp", "mcp-bash", "mcp-run-python")  # fmt: skip
CONTAINERS = ("docker.sock", "podman.sock", "containerd.sock", "mcp-server-docker", "docker-mcp",
              "mcp/docker", "--privileged", "mcp-server-kubernetes", "kubernetes-mcp",
              "mcp-k8s", "k8s-mcp")  # fmt: skip
DATABASE = ("postgres", "mysql", "mariadb", "sqlite", "mongodb", "mongo-mcp", "redis", "mssql",
            "sqlserver", "oracle", "clickhouse", "supabase", "dbhub", "snowflake", "bigquery",
            "duckdb", "neo4j", "database", "cassandra", "elasticsearch")  # fmt: skip
WRITERS = ("server-filesystem", "mcp-server-filesystem", "filesystem-mcp", "mcp-filesystem",
           "desktop-commander", "fs-mcp", "mcp-fs", "server-git", "mcp-server-git",
           "text-editor", "file-edit")  # fmt: skip
# Whole names: server-git is not server-github.
_WRITERS = re.compile("(" + "|".join(re.escape(w) for w in WRITERS) + ")(?![a-z0-9])")
READ_ONLY = ("--read-only", "--readonly", "read_only=true", "readonly=true", "--ro")
NETWORK = ("server-fetch", "mcp-server-fetch", "fetch-mcp", "puppeteer", "playwright",
           "browser", "brave-search", "tavily", "firecrawl", "exa-mcp", "web-search",
           "websearch", "scrape", "crawl", "curl", "http-client", "server-slack",
           "server-github", "github-mcp-server")  # fmt: skip

_HOME_ROOTS = re.compile(r"(?i)^(?:~|\$home|\$\{home\}|%userprofile%|/home|/users|/root"
                         r"|/home/[^/]+|/users/[^/]+|[a-z]:\\users(?:\\[^\\]+)?)$")  # fmt: skip
_ROOTS = re.compile(r"(?i)^(?:/|[a-z]:\\?|[a-z]:/|/host|/hostfs|/rootfs)$")
_SYSTEM = ("/etc", "/usr", "/var", "/boot", "/bin", "/sbin", "/lib", "/lib64", "/proc", "/sys",
           "/dev", "/root", "/private/etc", "/library", "/system", "c:/windows",
           "c:/program files", "c:/programdata")  # fmt: skip
_SECRET_DIRS = ("/.ssh", "/.aws", "/.gnupg", "/.kube", "/.docker", "/.config/gcloud",
                "/.password-store", "/.netrc")  # fmt: skip


class Reason(msgspec.Struct, frozen=True):
    code: str
    weight: int
    text: str


class Risk(msgspec.Struct, frozen=True):
    score: int
    level: str
    reasons: list[Reason]


def _norm_path(path: str) -> str:
    low = path.strip().lower().replace("\\", "/") if re.match(r"(?i)^[a-z]:", path) else path
    if low.startswith("/") and len(low) > 1:
        low = posixpath.normpath(low).lower()
    return low.rstrip("/") if len(low) > 1 and not re.match(r"^[a-z]:/$", low) else low


def scope_of(path: str) -> str | None:
    """fs_root, fs_home, fs_system (or None) for one filesystem scope."""
    raw = path.strip().rstrip("/\\") or path.strip()
    if _ROOTS.match(raw) or raw in ("/", ""):
        return "fs_root"
    if _HOME_ROOTS.match(raw) or _HOME_ROOTS.match(raw.rstrip("/")):
        return "fs_home"
    low = _norm_path(raw)
    if low.startswith("~") or "/home/" in low or "/users/" in low:
        if any(low.endswith(d) or d + "/" in low for d in _SECRET_DIRS):
            return "fs_system"
        return None
    if any(low == d or low.startswith(d + "/") for d in _SYSTEM):
        return None if "docker.sock" in low else "fs_system"
    return None


def words(server: Server) -> list[str]:
    """The command and its arguments as separate words (a one-string command is split)."""
    out: list[str] = []
    if server.command:
        try:
            out = shlex.split(server.command) if not server.args else [server.command]
        except ValueError:
            out = [server.command]
    return out + list(server.args)


def risk(server: Server) -> Risk:
    argv = words(server)
    blob = "\n".join(argv).lower()
    reasons: list[Reason] = []

    def add(code: str, text: str) -> None:
        if all(r.code != code for r in reasons):
            reasons.append(Reason(code, WEIGHTS[code], text))

    hit = next((h for h in SHELL if h in blob), None)
    if hit:
        add("shell", f"runs commands on the host ({hit})")
    hit = next((h for h in CONTAINERS if h in blob), None)
    if hit:
        add("docker_socket", f"controls the container engine, root on the host ({hit})")
    for path in server.paths:
        kind = scope_of(path)
        if kind == "fs_root":
            add(kind, f"is given the whole filesystem ({path})")
        elif kind == "fs_home":
            add(kind, f"is given a whole home directory ({path})")
        elif kind == "fs_system":
            add(kind, f"is given a system or credentials directory ({path})")
    if server.secrets_inline:
        add("inline_secret", "a credential is written in plain text in its configuration")
    hit = next((h for h in DATABASE if h in blob), None)
    if hit:
        add("database", f"reaches a database ({hit})")
    found = _WRITERS.search(blob)
    writer = found.group(1) if found else None
    mounts = [a for i, a in enumerate(argv) if i and argv[i - 1] in ("-v", "--volume")
              and not a.endswith((":ro", ":ro,z", ":ro,Z"))]  # fmt: skip
    if writer and not any(ro in blob for ro in READ_ONLY):
        add("fs_write", f"can write files ({writer})")
    elif mounts:
        add("fs_write", f"mounts a host directory writable ({mounts[0]})")
    hit = next((h for h in NETWORK if h in blob), None)
    if hit:
        add("network", f"makes requests to the network ({hit})")
    if server.transport != "stdio" and server.url:
        host = re.sub(r"^[a-z][a-z0-9+.-]*://(?:[^@/]*@)?", "", server.url.lower())
        host = re.split(r"[/:?#]", host.removeprefix("["), maxsplit=1)[0]
        if not is_loopback(host):
            add("remote", f"a remote server: tool calls and their data go to {host or '?'}")
    score = min(100, sum(r.weight for r in reasons))
    level = next(name for name, floor in LEVELS if score >= floor)
    return Risk(score, level, reasons)


# --- processes that run MCP servers ------------------------------------------------------

_NPX_OPTS_WITH_VALUE = {"-p", "--package", "-c", "--call", "--cache", "--registry", "--from",
                        "--with", "--python", "-w", "--workspace", "--index-url"}  # fmt: skip
_DOCKER_OPTS_WITH_VALUE = {"-e", "--env", "-v", "--volume", "--mount", "--name", "-p",
                           "--publish", "--network", "--net", "-u", "--user", "-w",
                           "--workdir", "--entrypoint", "--env-file", "-l", "--label",
                           "--platform", "--pull", "-h", "--hostname", "--cap-add",
                           "--cap-drop", "--device", "--memory", "-m", "--cpus",
                           "--add-host", "--dns", "--security-opt", "--tmpfs",
                           "--ulimit", "--restart", "--gpus", "--ipc", "--pid"}  # fmt: skip


def _first_operand(argv: Sequence[str], with_value: set[str]) -> str | None:
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg.startswith("-"):
            skip = arg in with_value
            continue
        return arg
    return None


def package_name(spec: str) -> str:
    """`@scope/name@1.2` -> `@scope/name`; `pkg==1.0` / `pkg@latest` -> `pkg`; images lose
    their registry-less tag."""
    name = spec.strip().lower()
    if name.startswith("@"):
        scope, _, rest = name.partition("/")
        return f"{scope}/{rest.split('@', 1)[0]}"
    name = re.split(r"==|>=|<=|~=|@|\[", name, maxsplit=1)[0]
    if "/" in name and ":" in name.rsplit("/", 1)[1]:
        name = name.rsplit(":", 1)[0]  # docker tag
    elif ":" in name and "/" not in name:
        name = name.split(":", 1)[0]
    return name


def short(name: str) -> str:
    """What two spellings of one server share: scope, registry, mcp- affixes dropped
    (`@modelcontextprotocol/server-filesystem` and `mcp-server-filesystem` -> filesystem)."""
    base = name.rsplit("/", 1)[-1]
    for prefix in ("mcp-server-", "server-", "mcp-"):
        if base.startswith(prefix):
            base = base[len(prefix) :]
            break
    for suffix in ("-mcp-server", "-server-mcp", "-mcp", "-server"):
        if base.endswith(suffix) and len(base) > len(suffix):
            base = base[: -len(suffix)]
            break
    return base


def _mcpish(name: str) -> bool:
    return "mcp" in name or name.startswith("@modelcontextprotocol/")


def launcher(argv: Sequence[str]) -> tuple[str, str] | None:
    """(launcher, package or image) when `argv` starts an MCP server through a known
    launcher: npx / npm exec / pnpm dlx / bunx, uvx / uv tool run / pipx run, docker or
    podman run, or the binary a package manager installed (`.../_npx/.../mcp-server-x`)."""
    if not argv:
        return None
    prog = posixpath.basename(argv[0].replace("\\", "/")).lower().removesuffix(".exe")
    prog = prog.removesuffix(".cmd")
    rest = list(argv[1:])
    kind = None
    if prog in ("npx", "bunx", "uvx"):
        kind = prog
    elif prog in ("npm", "pnpm", "yarn") and rest[:1] in (["exec"], ["dlx"], ["x"]):
        kind, rest = "npx", rest[1:]
    elif prog == "uv" and rest[:2] == ["tool", "run"]:
        kind, rest = "uvx", rest[2:]
    elif prog == "pipx" and rest[:1] == ["run"]:
        kind, rest = "uvx", rest[1:]
    elif prog in ("docker", "podman", "nerdctl") and "run" in rest[:3]:
        kind, rest = "docker", rest[rest.index("run") + 1 :]
    elif prog in ("node", "nodejs", "bun", "deno") or prog.startswith("python"):
        # the package manager's child: node ~/.npm/_npx/<hash>/node_modules/.bin/mcp-server-x
        script = _first_operand(rest, {"-r", "--require", "--import", "-m"})
        if script and ("/_npx/" in script or "/uv/" in script or "/pipx/" in script):
            name = posixpath.basename(script.replace("\\", "/")).lower()
            return ("npx" if "/_npx/" in script else "uvx", name) if _mcpish(name) else None
        return None
    elif _mcpish(prog):
        return "bin", prog
    if kind is None:
        return None
    opts = _DOCKER_OPTS_WITH_VALUE if kind == "docker" else _NPX_OPTS_WITH_VALUE
    target = _first_operand(rest, opts)
    if target is None:
        return None
    name = package_name(target)
    return (kind, name) if _mcpish(name) else None


def cmd_words(cmdline: str) -> list[str]:
    try:
        return shlex.split(cmdline)
    except ValueError:
        return cmdline.split()


class Running(msgspec.Struct, frozen=True):
    """How the snapshot's processes meet its configured servers."""

    by_server: dict[int, list[int]]  # index in mcp_servers -> pids running it
    unconfigured: list[tuple[int, str, str]]  # (pid, launcher, package) matching no server


def link(servers: Sequence[Server], procs: Iterable[Proc]) -> Running:
    keys: dict[str, list[int]] = {}
    for i, server in enumerate(servers):
        found = launcher(words(server))
        if found is not None:
            keys.setdefault(short(found[1]), []).append(i)
    by_server: dict[int, list[int]] = {}
    unconfigured: list[tuple[int, str, str]] = []
    for proc in procs:
        low = proc.cmdline.lower() if proc.cmdline else ""
        if "mcp" not in low and "modelcontextprotocol" not in low:
            continue  # the common case, answered without splitting
        found = launcher(cmd_words(low))
        if found is None:
            continue
        owners = keys.get(short(found[1]))
        if owners:
            for i in owners:
                by_server.setdefault(i, []).append(proc.pid)
        else:
            unconfigured.append((proc.pid, found[0], found[1]))
    return Running(by_server, unconfigured)


# --- the pack's predicates ----------------------------------------------------------------


def subject_value(server: Server) -> str:
    return f"{server.client}:{server.user or '-'}:{server.name}"


def config_file(server: Any) -> str:
    """The file to edit (Claude Code's per-project entries live in ~/.claude.json)."""
    path: str = server.config_path
    return path.split("#", 1)[0] if server.client == "claude-code" else path


def key_path(server: Any) -> list[str]:
    """Where the server sits in its JSON file, key by key (for TOML, the table's keys)."""
    path: str = server.config_path
    name: str = server.name
    if server.client == "claude-code" and "#" in path:
        return ["projects", path.split("#", 1)[1], "mcpServers", name]
    if server.client == "codex":
        return ["mcp_servers", name]
    if server.client == "zed":
        return ["context_servers", name]
    if server.client.startswith(("vscode", "vscodium")):
        return ["mcp", "servers", name] if path.endswith("settings.json") else ["servers", name]
    return ["mcpServers", name]


def evidence(server: Any, rk: Risk, pids: Sequence[int] = ()) -> dict[str, Any]:
    return {
        "client": server.client, "name": server.name, "user": server.user,
        "config_path": config_file(server), "config_format": "toml"
        if server.config_path.endswith(".toml") else "json", "key_path": key_path(server),
        "transport": server.transport, "command": server.command, "args": server.args[:64],
        "url": server.url, "paths": server.paths[:64], "env_names": server.env_names[:64],
        "secrets_inline": server.secrets_inline, "secret_in": server.secret_in,
        "risk": {"score": rk.score, "level": rk.level,
                 "reasons": [{"code": r.code, "text": r.text} for r in rk.reasons]},
        "running_pids": list(pids),
    }  # fmt: skip


def judged(f: Facts) -> list[tuple[Any, Risk, list[int]]]:
    """(server, risk, pids running it) for each server of this snapshot, computed once."""
    cache: dict[str, Any] = f.__dict__
    out: list[tuple[Any, Risk, list[int]]] | None = cache.get("_mcp")
    if out is None:
        servers = f.snap.mcp_servers
        running = link(servers, f.procs) if servers else Running({}, [])
        out = [(m, risk(m), running.by_server.get(i, [])) for i, m in enumerate(servers)]
        cache["_mcp"] = out
    return out


_PREDICATE_REASONS = {
    "mcp_shell_access": ("shell", "docker_socket"),
    "mcp_broad_scope": ("fs_root", "fs_home", "fs_system"),
    "mcp_inline_secret": ("inline_secret",),
}
_WHAT = {
    "mcp_shell_access": "can run commands on the host",
    "mcp_broad_scope": "reaches far beyond one project's files",
    "mcp_inline_secret": "has a credential written in its configuration",
}


def label(server: Any) -> str:
    who = f"{server.user}'s " if server.user else "the machine-wide "
    return f"{who}{server.client} MCP server {server.name!r}"


def _check(tag: str) -> Any:
    codes = _PREDICATE_REASONS[tag]

    def check(prep: None, c: Ctx) -> list[Hit]:
        if not c.f.snap.mcp_servers:
            return []
        hits: list[Hit] = []
        for server, rk, pids in judged(c.f):
            why = [r.text for r in rk.reasons if r.code in codes]
            if why:
                text = f"{label(server)} {_WHAT[tag]}: {'; '.join(why)}"
                hits.append((f"mcp:{subject_value(server)}", text,
                             evidence(server, rk, pids), None))  # fmt: skip
        return hits

    return check


def _none(leaf: Any) -> None:
    return None


LEAVES: dict[type, tuple[Any, Any]] = {
    p.McpShellAccess: (_none, _check("mcp_shell_access")),
    p.McpBroadScope: (_none, _check("mcp_broad_scope")),
    p.McpInlineSecret: (_none, _check("mcp_inline_secret")),
}


def novel_values(f: Facts) -> set[str]:
    return {subject_value(m) for m in f.snap.mcp_servers}


def judge_novel(value: str, f: Facts) -> tuple[str, dict[str, Any], list[str]]:
    """(title, evidence, signals) for a server first seen after learning: its risk reasons
    are the signals that raise the notice to the rule's severity."""
    for server, rk, pids in judged(f):
        if subject_value(server) == value:
            signals = [r.text for r in rk.reasons if r.weight >= WEIGHTS["inline_secret"]]
            title = f"New {label(server)}, first seen on this host (risk {rk.level})"
            return title, evidence(server, rk, pids), signals
    return f"New MCP server {value}", {}, []
