"""The agent the server ships: a wheel built from this very package's agent modules, the
install script that fetches it, and the one line a person pastes on a host.

The wheel holds `kefal_lite/agent/` and every `kefal_lite` module those import (found
by reading their imports, so a new helper module comes along by itself), under the same
import names, plus metadata naming psutil and msgspec as its only dependencies. It is
built once per process with fixed timestamps: the same server version serves the same
bytes, and install.sh carries their SHA-256.
"""

from __future__ import annotations

import ast
import base64
import functools
import hashlib
import io
import shlex
import zipfile
from pathlib import Path

import msgspec

from kefal_lite import __version__
from kefal_lite.tls import Pin

PACKAGE_DIR = Path(__file__).parent
DIST_NAME = "kefal_lite_agent"
REQUIRES = ("psutil>=5.9", "msgspec>=0.18")
INSTALL_TEMPLATE = PACKAGE_DIR / "agent" / "install.sh"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class Wheel(msgspec.Struct, frozen=True):
    filename: str
    data: bytes
    sha256: str
    modules: tuple[str, ...]  # paths inside the package, e.g. "kefal_lite/agent/client.py"


def _module_file(name: str) -> Path | None:
    """The source file of `kefal_lite.x.y`, or None when that is not a module of ours."""
    parts = name.split(".")
    if parts[0] != "kefal_lite":
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Every `kefal_lite…` module this file imports (absolute or relative)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if _module_file(name) is not None}


def agent_modules() -> dict[str, Path]:
    """Module name -> file, for the agent package and everything of ours it imports,
    with each module's parent packages."""
    todo = ["kefal_lite.agent"] + [
        f"kefal_lite.agent.{p.stem}"
        for p in sorted((PACKAGE_DIR / "agent").glob("*.py"))
        if p.stem != "__init__"
    ]
    out: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        if name in out:
            continue
        path = _module_file(name)
        if path is None:
            continue
        out[name] = path
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        todo.extend(_imports(path, name))
    return dict(sorted(out.items()))


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


@functools.cache
def wheel() -> Wheel:
    files: dict[str, bytes] = {}
    for path in agent_modules().values():
        files[path.relative_to(PACKAGE_DIR.parent).as_posix()] = path.read_bytes()
    modules = tuple(files)
    info = f"{DIST_NAME}-{__version__}.dist-info"
    files[f"{info}/METADATA"] = (
        "Metadata-Version: 2.1\n"
        "Name: kefal-lite-agent\n"
        f"Version: {__version__}\n"
        "Summary: The kefal-lite agent, as shipped by a kefal-lite server\n"
        "License: MIT\n"
        "Requires-Python: >=3.10\n" + "".join(f"Requires-Dist: {r}\n" for r in REQUIRES)
    ).encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: kefal-lite\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files[f"{info}/entry_points.txt"] = (
        b"[console_scripts]\nkefal-lite-agent = kefal_lite.agent.__main__:main\n"
    )
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            entry = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, data)
    data = buffer.getvalue()
    return Wheel(
        filename=f"{DIST_NAME}-{__version__}-py3-none-any.whl",
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        modules=modules,
    )


def install_script(default_server: str) -> str:
    """install.sh with this server's version, wheel and (as a default only) its URL.
    Every value put into the script is shell-quoted: the URL comes from the request."""
    built = wheel()
    values = {
        "@VERSION@": __version__,
        "@WHEEL@": built.filename,
        "@WHEEL_SHA256@": built.sha256,
        "@SERVER@": default_server,
    }
    text = INSTALL_TEMPLATE.read_text(encoding="utf-8")
    for marker, value in values.items():
        text = text.replace(marker, shlex.quote(value))
    return text


def install_command(server: str, token: str, pin: Pin | None) -> str:
    """The line to paste on a host (run as root: it installs a systemd service)."""
    q = shlex.quote
    fetch = "curl -fsSL"
    if pin is not None:
        # -k: no CA signed a self-signed certificate; --pinnedpubkey is the check instead.
        fetch += f" -k --pinnedpubkey {q(pin.spki)}"
    line = f"{fetch} {q(server + '/agent/install.sh')} | sudo sh -s -- --server {q(server)}"
    if pin is not None:
        line += f" --pin {q(pin.cert)}"
    return f"{line} --token {q(token)}"
