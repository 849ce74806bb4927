"""Second signals: what lifts a novelty from a notice to an incident, and the routine
parents that speak for benign. Shared by the novelty rules and the core pack."""

from __future__ import annotations

import re
from functools import lru_cache

from kefal_lite.detect.facts import Facts, is_loopback, norm_exe, norm_name
from kefal_lite.snapshot import Process

SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ash", "ksh", "mksh", "tcsh", "csh", "fish"})
INTERPRETERS = frozenset({"perl", "ruby", "php", "php-cgi", "node", "nodejs", "lua", "luajit",
                          "awk", "gawk", "mawk", "nawk", "busybox"})  # fmt: skip
NET_TOOLS = frozenset({"nc", "ncat", "netcat", "nc.openbsd", "nc.traditional", "socat",
                       "telnet", "openssl", "cryptcat", "pwncat"})  # fmt: skip
# Interpreters carry their version in the name (python3.12, php8.2, lua5.4).
_VERSIONED = re.compile(r"^(?:python|php|ruby|lua|perl)[0-9.]*$")
# Network-facing services: a shell or interpreter they start is how a web shell looks.
NETWORK_SERVICES = frozenset({"nginx", "apache2", "httpd", "lighttpd", "caddy", "php-cgi",
                              "uwsgi", "haproxy", "vsftpd", "proftpd", "pure-ftpd", "mysqld",
                              "mariadbd", "postgres", "redis-server", "mongod", "memcached",
                              "smbd", "named", "tomcat", "lshttpd", "litespeed", "gunicorn",
                              "uvicorn", "hypercorn", "daphne", "puma", "unicorn",
                              "passenger"})  # fmt: skip
# Routine parents: scheduled jobs, package managers, configuration management.
ROUTINE_PARENTS = frozenset({"cron", "crond", "anacron", "atd", "run-parts",
                             "apt", "apt-get", "aptitude", "dpkg", "unattended-upgr",
                             "unattended-upgrade", "unattended-upgrades", "dnf", "yum", "rpm",
                             "zypper", "pacman", "apk", "packagekitd", "snapd", "puppet",
                             "chef-client", "salt-minion", "salt-call", "cf-agent",
                             "cf-execd", "ansible-playbook"})  # fmt: skip
WRITABLE_DIRS = ("/tmp/", "/var/tmp/", "/dev/shm/", "/dev/mqueue/", "/run/lock/", "/var/lock/",
                 "/run/shm/", "/var/crash/")  # fmt: skip
# Toolchains that live in dot-directories of a home: not hiding, just where they install.
HIDDEN_OK = ("/.vscode-server/", "/.vscode-server-insiders/", "/.cursor-server/",
             "/.windsurf-server/", "/.nvm/", "/.cargo/", "/.rustup/", "/.pyenv/", "/.rbenv/",
             "/.local/share/jetbrains/", "/.cache/jetbrains/", "/.sdkman/", "/.bun/", "/.deno/",
             "/.volta/", "/.asdf/", "/.local/share/pnpm/", "/.local/pipx/", "/.local/share/uv/",
             "/.cache/ms-playwright/", "/.venv/", "/.tox/", "/.nox/", "/.local/share/steam/",
             "/.steam/", "/.var/app/", "/.local/share/flatpak/", "/.nix-profile/", "/.dotnet/",
             "/.gradle/", "/.m2/", "/.conda/", "/.cache/pre-commit/", "/.npm/",
             "/.local/bin/", "/.git/", "/.vscode/extensions/", "/.vscode-insiders/extensions/",
             "/.vscode-oss/extensions/", "/.cursor/extensions/",
             "/.windsurf/extensions/")  # fmt: skip
PRIVILEGED_GROUPS = frozenset({"root", "sudo", "wheel", "admin", "docker", "lxd", "disk",
                               "shadow"})  # fmt: skip
WEB_PORTS = frozenset({80, 443, 8080, 8443})
# Ports clients talk to for a living (web, ssh, mail, DNS, databases, queues): an ssh client
# on 22 or psql on 5432 is doing its job, not a second signal.
ROUTINE_PORTS = frozenset({22, 25, 53, 80, 443, 465, 587, 993, 3306, 5432, 5672, 6379, 8080,
                           8443, 9092, 9200, 11211, 27017})  # fmt: skip
# A container runtime's port proxies: what `docker run -p` / podman publish a port through.
# The operator asked for that port; it is a notice unless something else speaks against it.
CONTAINER_PROXIES = frozenset({"docker-proxy", "rootlessport", "rootlesskit", "slirp4netns",
                               "pasta", "pasta.avx2", "conmon"})  # fmt: skip


@lru_cache(maxsize=16_384)
def is_interpreter(name: str) -> bool:
    """Shells, script interpreters and network tools: what a reverse shell runs as."""
    n = norm_name(name)
    return n in SHELLS or n in INTERPRETERS or n in NET_TOOLS or bool(_VERSIONED.match(n))


@lru_cache(maxsize=16_384)
def is_network_service(name: str) -> bool:
    n = norm_name(name)
    return n in NETWORK_SERVICES or n.startswith("php-fpm")


@lru_cache(maxsize=16_384)
def exe_place(exe: str | None, hidden_ok: tuple[str, ...] = HIDDEN_OK) -> str | None:
    """'writable', 'hidden', 'memory' or None: where a binary runs from, if suspicious."""
    if not exe:
        return None
    path = norm_exe(exe)
    if path.startswith("/memfd:") or path.startswith("memfd:"):
        return "memory"
    if path.startswith(WRITABLE_DIRS):
        return "writable"
    if "/." in path:
        low = path.lower()
        if not any(ok in low for ok in hidden_ok):
            return "hidden"
    return None


def process_signals(f: Facts, proc: Process) -> tuple[list[str], list[str]]:
    """(signals, benign notes) about one process: its binary, its sockets, its parents."""
    signals: list[str] = []
    benign: list[str] = []
    place = exe_place(proc.exe)
    if place is not None:
        signals.append(f"runs from a {place} path ({proc.exe})")
    elif proc.exe and proc.exe.endswith(" (deleted)"):
        signals.append(f"its binary was deleted ({proc.exe})")
    name = norm_name(proc.name)
    if is_interpreter(name) and f.connections_of(proc, name):
        c = f.connections_of(proc, name)[0]
        signals.append(f"{proc.name} is a shell/interpreter holding a connection to "
                       f"{c.remote_address}:{c.remote_port}")  # fmt: skip
    for anc in f.ancestors(proc, 3):
        if is_network_service(anc.name):
            signals.append(f"started by network service {anc.name} (pid {anc.pid})")
            break
        if norm_name(anc.name) in ROUTINE_PARENTS:
            benign.append(f"started under {anc.name} (pid {anc.pid})")
            break
    return signals, benign


def exposed(address: str | None) -> bool:
    """A bind address reachable from elsewhere; an agent that sent none is taken as exposed."""
    return is_loopback(address) is not True
