"""The MCP servers this host's AI clients are configured with, for every account it can read.

Reads the files the clients themselves write (Claude Desktop and Code, Cursor, VS Code,
Cline, Windsurf, Zed, Continue, Codex, Gemini CLI, Amazon Q, LM Studio) under each home,
and the machine-wide ones. Those files belong to their users and the agent often runs as
root, so they are opened as authorized_keys are (collect.py): one component at a time
with O_NOFOLLOW under the home's descriptor, regular files owned by the user or root,
and a size cap (a larger file is skipped, not cut: half a JSON document says nothing).

Nothing secret leaves: environment variables go as names, an inline credential as
`secrets_inline` and the place it sits (`env:NAME`), args, url and command with every
credential-shaped part masked before they are cut to the snapshot's bounds (cutting
first could send half a key).

Python 3.10, stdlib + msgspec: this module ships with the agent.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import stat
import sys
from collections.abc import Iterator
from typing import Any

import msgspec

from kefal_lite.agent.collect import KeyFiles, _open_owned
from kefal_lite.scrub import MASK
from kefal_lite.secretshape import literal_secret, redact, secret_named
from kefal_lite.snapshot import McpServer, McpTransport

log = logging.getLogger(__name__)

MAX_BYTES = 8 << 20  # ~/.claude.json keeps per-project history and reaches megabytes
MAX_SERVERS = 1024
MAX_PROJECTS = 256  # project directories named in ~/.claude.json that are looked into
MAX_DIR_FILES = 64  # files read from a directory of server definitions (Continue)

# Where each client keeps its servers, relative to a home; {app} is the OS's per-user
# application-data directory. (client, path, format, where the servers are in it)
_APP = {"linux": ".config", "darwin": "Library/Application Support", "windows": "AppData/Roaming"}
_CODE_DIRS = (("vscode", "Code"), ("vscode-insiders", "Code - Insiders"), ("vscodium", "VSCodium"),
              ("cursor", "Cursor"), ("windsurf", "Windsurf"))  # fmt: skip
_EXTENSIONS = (("cline", "saoudrizwan.claude-dev/settings/cline_mcp_settings.json"),
               ("roo-code", "rooveterinaryinc.roo-cline/settings/mcp_settings.json"))  # fmt: skip

Location = tuple[str, str, str, str]  # client, relative path, "json"|"jsonc"|"toml", key


def user_locations(os_name: str) -> list[Location]:
    app = _APP.get(os_name, ".config")
    zed = "AppData/Roaming/Zed" if os_name == "windows" else ".config/zed"
    out: list[Location] = [
        ("claude-desktop", f"{app}/Claude/claude_desktop_config.json", "json", "mcpServers"),
        ("claude-code", ".claude.json", "json", "claude.json"),
        ("cursor", ".cursor/mcp.json", "json", "mcpServers"),
        ("windsurf", ".codeium/windsurf/mcp_config.json", "json", "mcpServers"),
        ("zed", f"{zed}/settings.json", "jsonc", "context_servers"),
        ("continue", ".continue/config.json", "jsonc", "continue"),
        ("continue", ".continue/mcpServers", "dir", "mcpServers"),
        ("codex", ".codex/config.toml", "toml", "mcp_servers"),
        ("gemini-cli", ".gemini/settings.json", "jsonc", "mcpServers"),
        ("amazon-q", ".aws/amazonq/mcp.json", "json", "mcpServers"),
        ("lm-studio", ".lmstudio/mcp.json", "json", "mcpServers"),
    ]  # fmt: skip
    for client, folder in _CODE_DIRS:
        if client.startswith("vs"):
            out.append((client, f"{app}/{folder}/User/settings.json", "jsonc", "mcp.servers"))
            out.append((client, f"{app}/{folder}/User/mcp.json", "jsonc", "servers"))
        for ext_client, rel in _EXTENSIONS:
            out.append((ext_client, f"{app}/{folder}/User/globalStorage/{rel}", "json",
                        "mcpServers"))  # fmt: skip
    return out


# Inside a project directory (found in ~/.claude.json's list of projects).
PROJECT_LOCATIONS: list[Location] = [
    ("claude-code", ".mcp.json", "json", "mcpServers"),
    ("cursor", ".cursor/mcp.json", "json", "mcpServers"),
    ("vscode", ".vscode/mcp.json", "jsonc", "servers"),
    ("gemini-cli", ".gemini/settings.json", "jsonc", "mcpServers"),
]

# Machine-wide files, owned by root (managed policy for a fleet).
SYSTEM_LOCATIONS: dict[str, list[Location]] = {
    "linux": [("claude-code", "/etc/claude-code/managed-mcp.json", "json", "mcpServers"),
              ("gemini-cli", "/etc/gemini-cli/settings.json", "jsonc", "mcpServers")],
    "darwin": [("claude-code", "/Library/Application Support/ClaudeCode/managed-mcp.json",
                "json", "mcpServers"),
               ("gemini-cli", "/Library/Application Support/GeminiCli/settings.json", "jsonc",
                "mcpServers")],
    "windows": [("claude-code", "C:/ProgramData/ClaudeCode/managed-mcp.json", "json",
                 "mcpServers"),
                ("gemini-cli", "C:/ProgramData/gemini-cli/settings.json", "jsonc",
                 "mcpServers")],
}  # fmt: skip


# --- parsing -----------------------------------------------------------------------------


def strip_jsonc(text: str) -> str:
    """JSON with comments and trailing commas (VS Code, Zed, Gemini) as plain JSON."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif ch == ",":
            j = i + 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j < n and text[j] in "}]":
                i = j  # a trailing comma
            else:
                out.append(ch)
                i += 1
        else:
            j = i + 1
            while j < n and text[j] not in '",/':
                j += 1
            out.append(text[i:j])
            i = j
    return "".join(out)


def parse(data: bytes, fmt: str) -> Any:
    """The document, or raise ValueError."""
    if fmt == "toml":
        from kefal_lite.agent.toml import loads

        return loads(data.decode("utf-8", errors="replace"))
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
    if fmt == "jsonc":
        text = strip_jsonc(text)
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from None


def _dig(doc: Any, key: str) -> Any:
    for part in key.split("."):
        doc = doc.get(part) if isinstance(doc, dict) else None
    return doc


def entries(doc: Any, key: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, definition) for each server in a parsed config file."""
    if key == "continue":
        # config.json: experimental.modelContextProtocolServers, a list of {transport: {...}}
        found = _dig(doc, "experimental.modelContextProtocolServers")
        for i, item in enumerate(found if isinstance(found, list) else []):
            if isinstance(item, dict):
                inner = item.get("transport")
                spec: dict[str, Any] = inner if isinstance(inner, dict) else item
                yield str(item.get("name") or f"server-{i + 1}"), spec
        found = doc.get("mcpServers") if isinstance(doc, dict) else None
        if isinstance(found, list):  # the newer layout, as JSON
            for i, item in enumerate(found):
                if isinstance(item, dict):
                    yield str(item.get("name") or f"server-{i + 1}"), item
        return
    found = _dig(doc, key)
    if isinstance(found, dict):
        for name, spec in found.items():
            if isinstance(spec, dict):
                yield str(name), spec


def _strs(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, (str, int, float)) and not
                isinstance(v, bool)]  # fmt: skip
    return []


_BINARY_SUFFIX = (".js", ".mjs", ".cjs", ".ts", ".py", ".jar", ".exe", ".dll", ".sh", ".ps1",
                  ".cmd", ".bat", ".rb", ".php", ".wasm")  # fmt: skip
_DRIVE = re.compile(r"^[A-Za-z]:(?:[\\/]|$)")


def _looks_path(text: str) -> bool:
    return (text.startswith(("/", "~", "$HOME", "${HOME}", "%USERPROFILE%", "file://"))
            or text in (".", "..") or bool(_DRIVE.match(text))) and "://" not in text.replace(
                "file://", "")  # fmt: skip


def scopes(args: list[str], cwd: str | None = None) -> list[str]:
    """The filesystem locations a server is handed: path arguments (`--root=/x`, docker
    `-v /host:/ctr`, `file://` URIs too), not the script or binary it runs."""
    out: list[str] = []
    mount_next = False
    for arg in args:
        value = arg
        if mount_next:
            mount_next = False
            value = arg.split(":")[0] if not _DRIVE.match(arg) else arg[:2] + arg[2:].split(":")[0]
        elif arg in ("-v", "--volume", "--mount"):
            mount_next = True
            continue
        elif arg.startswith("-") and "=" in arg:
            value = arg.split("=", 1)[1]
            if value.startswith("type=") or "source=" in value or "src=" in value:
                m = re.search(r"(?:source|src)=([^,]+)", value)
                value = m.group(1) if m else ""
        elif arg.startswith("-"):
            continue
        if value.startswith("file://"):
            value = value[7:] or "/"
        if value and _looks_path(value) and not value.lower().endswith(_BINARY_SUFFIX):
            out.append(value)
    if cwd and _looks_path(cwd):
        out.append(cwd)
    return list(dict.fromkeys(out))


_SCHEME_WORD = re.compile(r"(?i)^\s*(?:bearer|basic|token|apikey)\s+")


def server(client: str, name: str, spec: dict[str, Any], config_path: str,
           user: str | None) -> McpServer:  # fmt: skip
    """One server definition, in any client's dialect, as the snapshot carries it."""
    command: Any = spec.get("command")
    args = _strs(spec.get("args"))
    env_spec: Any = spec.get("env") or spec.get("environment")
    if isinstance(command, dict):  # Zed before 0.190: {"command": {"path", "args", "env"}}
        args = _strs(command.get("args")) + args
        env_spec = env_spec or command.get("env")
        command = command.get("path")
    if isinstance(command, list):  # opencode-style ["npx", "-y", "pkg"]
        parts = _strs(command)
        command, args = (parts[0] if parts else None), parts[1:] + args
    command = str(command) if isinstance(command, (str, int, float)) else None
    if command and not args and " " in command.strip():
        # "npx -y pkg" written as one string: split when its first word is a bare program
        try:
            words = shlex.split(command, posix=True)
        except ValueError:
            words = []
        if words and "/" not in words[0] and "\\" not in words[0]:
            command, args = words[0], words[1:]
    url: Any = (spec.get("url") or spec.get("serverUrl") or spec.get("httpUrl")
                or spec.get("uri"))  # fmt: skip
    url = str(url) if isinstance(url, str) else None
    kind = str(spec.get("type") or spec.get("transport") or "").lower()
    transport: McpTransport = "stdio"
    if url:
        sse = kind == "sse" or (not kind and url.rstrip("/").endswith("/sse"))
        transport = "sse" if sse else "http"

    secret_in: list[str] = []
    env = env_spec if isinstance(env_spec, dict) else {}
    env_names = [str(k) for k in env]
    for key, value in env.items():
        if isinstance(value, str) and literal_secret(str(key), value):
            secret_in.append(f"env:{key}")
    for key in ("env_vars", "envVars"):  # names forwarded from the client's environment
        env_names += _strs(spec.get(key))
    for key in ("bearer_token_env_var", "envFile"):
        if isinstance(spec.get(key), str):
            env_names.append(str(spec[key]))
    headers = spec.get("headers") or spec.get("http_headers") or spec.get("requestInit")
    if isinstance(headers, dict) and isinstance(headers.get("headers"), dict):
        headers = headers["headers"]
    for key, value in headers.items() if isinstance(headers, dict) else ():
        if not isinstance(value, str):
            continue
        bare = _SCHEME_WORD.sub("", value)
        sensitive = secret_named(str(key)) or str(key).lower() in ("x-api-key", "api-key")
        if literal_secret(str(key), bare) or (sensitive and literal_secret("token", bare)):
            secret_in.append(f"headers:{key}")

    clean_args: list[str] = []
    flagged = False
    args_secret = False
    for i, arg in enumerate(args):
        masked = redact(arg)
        if masked == arg and flagged and not arg.startswith("-") and literal_secret("token", arg):
            masked = MASK  # the value after --api-key / --password, with no shape to keep
        flagged = arg.startswith("-") and "=" not in arg and secret_named(arg)
        if masked != arg:
            args_secret = True
        if arg in ("-e", "--env") and i + 1 < len(args) and "=" not in args[i + 1]:
            env_names.append(args[i + 1])  # docker -e NAME: passed through by name
        clean_args.append(masked[:4096])
    if args_secret:
        secret_in.append("args")
    clean_cmd = redact(command) if command else None
    if clean_cmd != command:
        secret_in.append("command")
    clean_url = redact(url) if url else None
    if clean_url != url:
        secret_in.append("url")
    cwd = spec.get("cwd")
    paths = scopes(clean_args, redact(cwd) if isinstance(cwd, str) else None)
    return McpServer(
        client=client, name=redact(name)[:256], config_path=config_path[:4096],
        transport=transport, command=clean_cmd[:4096] if clean_cmd else None,
        args=clean_args[:256], url=clean_url[:4096] if clean_url else None,
        paths=[x[:4096] for x in paths[:256]],
        env_names=[x[:256] for x in dict.fromkeys(env_names)][:256],
        secrets_inline=bool(secret_in), user=user[:256] if user else None,
        secret_in=[redact(x)[:256] for x in dict.fromkeys(secret_in)][:64],
    )  # fmt: skip


def servers_in(doc: Any, client: str, key: str, config_path: str,
               user: str | None) -> list[McpServer]:  # fmt: skip
    if key == "claude.json":
        out = [server(client, n, s, config_path, user) for n, s in entries(doc, "mcpServers")]
        projects = doc.get("projects") if isinstance(doc, dict) else None
        for project, conf in projects.items() if isinstance(projects, dict) else ():
            for n, s in entries(conf, "mcpServers"):  # local scope: one project's own
                out.append(server(client, n, s, f"{config_path}#{project}", user))
        return out
    return [server(client, n, s, config_path, user) for n, s in entries(doc, key)]


def projects_of(doc: Any) -> list[str]:
    projects = doc.get("projects") if isinstance(doc, dict) else None
    return [str(p) for p in projects][:MAX_PROJECTS] if isinstance(projects, dict) else []


# --- reading files safely -----------------------------------------------------------------


class Home(msgspec.Struct, frozen=True):
    user: str | None
    home: str
    uid: int | None  # None where ownership is not checked (Windows)


class Reader:
    """One per agent: remembers each file's parse by (device, inode, mtime, size), so an
    unchanged multi-megabyte ~/.claude.json is not decoded every snapshot."""

    def __init__(self, os_name: str | None = None) -> None:
        self.os = os_name or {"darwin": "darwin", "win32": "windows"}.get(sys.platform, "linux")
        self.files = KeyFiles()  # skipped and denied, for the collector's log
        self._cache: dict[str, tuple[tuple[int, int, int, int], Any]] = {}

    def collect(self, homes: list[Home]) -> list[McpServer]:
        out: list[McpServer] = []
        self.files = KeyFiles()
        seen_homes: set[str] = set()
        for h in homes:
            if h.home in seen_homes or h.home in ("", "/") or not os.path.isabs(h.home):
                continue
            seen_homes.add(h.home)
            out += self.in_home(h)
            if len(out) >= MAX_SERVERS:
                break
        for client, path, fmt, key in SYSTEM_LOCATIONS.get(self.os, []):
            doc = self._load(path, fmt, None)
            if doc is not None:
                out += servers_in(doc, client, key, path, None)
        return out[:MAX_SERVERS]

    def in_home(self, h: Home) -> list[McpServer]:
        out: list[McpServer] = []
        projects: list[str] = []
        for client, rel, fmt, key in user_locations(self.os):
            path = os.path.join(h.home, *rel.split("/"))
            if fmt == "dir":
                for name, doc in self._load_dir(h, rel):
                    out += servers_in(doc, client, key, os.path.join(path, name), h.user)
                continue
            doc = self._load_in(h, rel, fmt)
            if doc is None:
                continue
            out += servers_in(doc, client, key, path, h.user)
            if key == "claude.json":
                projects = projects_of(doc)
        home = h.home.rstrip("/\\")
        for project in projects:
            # only projects inside the home: walked from its descriptor like the rest
            rel_project = os.path.relpath(project, home) if project.startswith(home) else ""
            if not rel_project or rel_project.startswith("..") or rel_project == ".":
                continue
            for client, rel, fmt, key in PROJECT_LOCATIONS:
                rel_file = rel_project.replace("\\", "/") + "/" + rel
                doc = self._load_in(h, rel_file, fmt)
                if doc is not None:
                    where = os.path.join(project, *rel.split("/"))
                    out += servers_in(doc, client, key, where, h.user)
        return out

    # POSIX: every component under the home's descriptor, never through a link.
    def _load_in(self, h: Home, rel: str, fmt: str) -> Any:
        if h.uid is None or not hasattr(os, "O_NOFOLLOW"):
            return self._load(os.path.join(h.home, *rel.split("/")), fmt, h)
        fd = self._open_file(h, rel)
        if fd is None:
            return None
        return self._parse_fd(fd, os.path.join(h.home, rel), fmt)

    def _walk(self, h: Home, parts: list[str]) -> int | None:
        """A descriptor of the directory home/parts..., each step checked, or None."""
        assert h.uid is not None
        cloexec = getattr(os, "O_CLOEXEC", 0)
        try:
            cur = os.open(h.home, os.O_RDONLY | os.O_DIRECTORY | cloexec)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except PermissionError:
            self.files.denied += 1
            return None
        except OSError as exc:
            self.files.skipped.append((h.home, exc.strerror or str(exc)))
            return None
        path = h.home
        for part in parts:
            if part in ("", ".", ".."):
                os.close(cur)
                return None
            path = os.path.join(path, part)
            nxt = _open_owned(path, cur, h.uid, os.O_DIRECTORY, self.files)
            os.close(cur)
            if nxt is None:
                return None
            cur = nxt
        return cur

    def _open_file(self, h: Home, rel: str) -> int | None:
        parts = rel.split("/")
        dir_fd = self._walk(h, parts[:-1])
        if dir_fd is None:
            return None
        try:
            assert h.uid is not None
            path = os.path.join(h.home, *parts)
            return _open_owned(path, dir_fd, h.uid, os.O_NONBLOCK | os.O_NOCTTY, self.files)
        finally:
            os.close(dir_fd)

    def _load_dir(self, h: Home, rel: str) -> list[tuple[str, Any]]:
        if h.uid is None or not hasattr(os, "O_NOFOLLOW"):
            return []  # Continue's folder layout is read on POSIX only
        dir_fd = self._walk(h, rel.split("/"))
        if dir_fd is None:
            return []
        out: list[tuple[str, Any]] = []
        try:
            names = sorted(n for n in os.listdir(dir_fd) if n.endswith(".json"))[:MAX_DIR_FILES]
            for name in names:
                path = os.path.join(h.home, rel, name)
                fd = _open_owned(path, dir_fd, h.uid, os.O_NONBLOCK | os.O_NOCTTY, self.files)
                if fd is not None:
                    doc = self._parse_fd(fd, path, "json")
                    if doc is not None:
                        out.append((name, doc))
        except OSError as exc:
            self.files.skipped.append((rel, exc.strerror or str(exc)))
        finally:
            os.close(dir_fd)
        return out

    def _load(self, path: str, fmt: str, h: Home | None) -> Any:
        """A machine-wide file (or any file on Windows): no link in the last component, a
        regular file, owned by root where ownership means something."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        except PermissionError:
            self.files.denied += 1
            return None
        except OSError as exc:
            self.files.skipped.append((path, exc.strerror or str(exc)))
            return None
        reparse = getattr(st, "st_file_attributes", 0) & 0x400  # FILE_ATTRIBUTE_REPARSE_POINT
        if stat.S_ISLNK(st.st_mode) or reparse:
            self.files.skipped.append((path, "a symbolic link; not followed"))
            return None
        if not stat.S_ISREG(st.st_mode):
            self.files.skipped.append((path, "not a regular file"))
            return None
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(path, flags | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        except PermissionError:
            self.files.denied += 1
            return None
        except OSError as exc:
            self.files.skipped.append((path, exc.strerror or str(exc)))
            return None
        fst = os.fstat(fd)
        not_root = h is None and hasattr(os, "geteuid") and fst.st_uid != 0
        if not stat.S_ISREG(fst.st_mode) or not_root:
            os.close(fd)
            self.files.skipped.append((path, "not a regular file owned by root"))
            return None
        return self._parse_fd(fd, path, fmt)

    def _parse_fd(self, fd: int, path: str, fmt: str) -> Any:
        """Parse what `fd` holds (and close it); None if too large or not parseable."""
        try:
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
            cached = self._cache.get(path)
            if cached is not None and cached[0] == key:
                return cached[1]
            if st.st_size > MAX_BYTES:
                self.files.skipped.append((path, f"larger than {MAX_BYTES} bytes; not read"))
                return None
            chunks: list[bytes] = []
            left = MAX_BYTES + 1
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            if left <= 0:  # grew while read
                self.files.skipped.append((path, f"larger than {MAX_BYTES} bytes; not read"))
                return None
            try:
                doc = parse(b"".join(chunks), fmt)
            except (ValueError, RecursionError) as exc:
                self.files.skipped.append((path, f"not valid {fmt}: {str(exc)[:120]}"))
                doc = None
            self._cache[path] = (key, doc)
            return doc
        except OSError as exc:
            self.files.skipped.append((path, exc.strerror or str(exc)))
            return None
        finally:
            os.close(fd)


def homes() -> list[Home]:
    """Every account's home: the passwd database on POSIX, the profiles folder on Windows."""
    try:
        import pwd
    except ImportError:
        root = os.path.join(os.environ.get("SystemDrive", "C:") + os.sep, "Users")
        try:
            names = sorted(os.listdir(root))
        except OSError:
            names = []
        skip = {"public", "default", "default user", "all users", "desktop.ini"}
        return [Home(n, os.path.join(root, n), None) for n in names if n.lower() not in skip]
    return [Home(pw.pw_name, pw.pw_dir, pw.pw_uid) for pw in pwd.getpwall()]
