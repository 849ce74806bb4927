"""Invariant packs: rule sets beyond the 32 builtins, shipped as data (`source: "pack"`).

A pack is a name and a list of invariants in the contribution schema, validated at
import. `core` is active by default; another pack (say `mcp`) is one more entry in
PACKS. Behaviour before names: each rule asks what a process does (holds a connection,
runs from /dev/shm, was started by a web server) so a renamed binary does not slip by.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from kefal_lite.detect.model import Invariant

SHELLS = ["sh", "bash", "dash", "zsh", "ash", "ksh", "mksh", "tcsh", "csh", "fish"]
INTERPRETERS = ["python*", "perl*", "ruby*", "php", "php5*", "php7*", "php8*", "php-cgi", "node",
                "nodejs", "lua*", "awk", "gawk", "mawk", "nawk"]  # fmt: skip
NET_TOOLS = ["nc", "ncat", "netcat", "nc.openbsd", "nc.traditional", "socat", "telnet",
             "openssl", "cryptcat", "pwncat"]  # fmt: skip
# Application servers count: a Python or Ruby app's RCE spawns its shell under them.
NETWORK_SERVICES = ["nginx", "apache2", "httpd", "lighttpd", "caddy", "php-fpm*", "php-cgi",
                    "uwsgi", "gunicorn", "uvicorn", "hypercorn", "daphne", "puma", "unicorn",
                    "passenger", "haproxy", "vsftpd", "proftpd", "pure-ftpd", "mysqld", "mariadbd",
                    "postgres", "redis-server", "mongod", "memcached", "smbd", "tomcat*",
                    "lshttpd", "litespeed"]  # fmt: skip
# Ports an interpreter commonly talks to for a living: web, DNS, mail, databases, queues.
ROUTINE_PORTS = [22, 25, 53, 80, 443, 465, 587, 993, 3306, 5432, 5672, 6379, 8080, 8443, 9092,
                 9200, 11211, 27017]  # fmt: skip
MINING_PORTS = [3333, 3334, 3335, 3336, 3357, 4444, 5555, 5556, 5588, 6666, 7777, 8888, 9999,
                10128, 10343, 13333, 14433, 14444, 15555, 17777, 20535, 20580, 45560,
                45700]  # fmt: skip
# Logging, audit, EDR and HIDS daemons as their processes are named (Linux truncates names
# to 15 characters, so both forms where it matters). Extend: [detection] guarded_processes.
DEFENCE_DAEMONS = [
    "rsyslogd", "syslog-ng", "syslogd", "systemd-journald", "systemd-journal", "metalog",
    "auditd", "audispd", "go-audit", "auditbeat", "filebeat", "elastic-agent",
    "elastic-endpoint", "falco", "osqueryd", "wazuh-agentd", "wazuh-modulesd", "wazuh-syscheckd",
    "wazuh-logcollector", "wazuh-logcollec", "wazuh-execd", "ossec-agentd", "ossec-syscheckd",
    "ossec-logcollector", "ossec-logcollec", "ossec-execd", "falcon-sensor", "falcond",
    "s1-agent", "s1-orchestrator", "s1-scanner", "s1-network", "sentinelagent", "cbagentd",
    "cbdaemon", "wdavdaemon", "mdatp", "sysmon", "sophos-spl", "ds_agent", "qualys-cloud-agent",
    "qualys-cloud-ag", "taniumclient", "ir_agent", "tracee", "tetragon", "velociraptor",
    "fluent-bit", "fluentd", "td-agent-bit", "vector", "promtail", "nxlog", "splunkd",
    "kesl", "esets_daemon", "cybereason-sensor",
]  # fmt: skip
SYSTEM_DAEMONS = ["sshd", "systemd", "systemd-journald", "systemd-logind", "systemd-udevd",
                  "systemd-resolved", "systemd-networkd", "systemd-timesyncd", "init", "cron",
                  "crond", "atd", "rsyslogd", "syslogd", "auditd", "dbus-daemon", "polkitd",
                  "agetty", "getty", "login", "nginx", "apache2", "httpd", "mysqld", "postgres",
                  "containerd", "dockerd", "snapd", "irqbalance", "chronyd", "ntpd", "acpid",
                  "accounts-daemon", "udisksd", "networkmanager", "avahi-daemon", "cupsd",
                  "master", "exim4", "named", "dnsmasq"]  # fmt: skip
HIDDEN_OK = ["/.vscode-server/", "/.vscode-server-insiders/", "/.cursor-server/",
             "/.windsurf-server/", "/.nvm/", "/.cargo/", "/.rustup/", "/.pyenv/", "/.rbenv/",
             "/.local/share/jetbrains/", "/.cache/jetbrains/", "/.sdkman/", "/.bun/", "/.deno/",
             "/.volta/", "/.asdf/", "/.local/share/pnpm/", "/.local/pipx/", "/.local/share/uv/",
             "/.cache/ms-playwright/", "/.venv/", "/.tox/", "/.nox/", "/.local/share/steam/",
             "/.steam/", "/.var/app/", "/.local/share/flatpak/", "/.nix-profile/", "/.dotnet/",
             "/.gradle/", "/.m2/", "/.conda/", "/.cache/pre-commit/", "/.npm/", "/.local/bin/",
             "/.git/", "/.vscode/extensions/", "/.vscode-insiders/extensions/",
             "/.vscode-oss/extensions/", "/.cursor/extensions/",
             "/.windsurf/extensions/"]  # fmt: skip
# World-writable directories (sticky, mode 1777 on common distributions): anyone can drop a
# binary there. /dev is a tmpfs that holds no programs at all.
WRITABLE_DIRS = ["/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue", "/run/lock", "/var/lock",
                 "/run/shm", "/var/crash"]  # fmt: skip
# Daemons that only serve this machine: one holding a connection to another host is not what
# it claims to be (a second "systemd-logind" from another directory phoning home).
LOCAL_DAEMONS = ["systemd-logind", "systemd-journald", "systemd-journal", "systemd-udevd",
                 "cron", "crond", "atd", "dbus-daemon", "polkitd", "agetty", "getty", "login",
                 "accounts-daemon", "udisksd", "irqbalance", "acpid", "upowerd", "kthreadd",
                 "init", "cupsd", "rtkit-daemon", "systemd-machined", "systemd-homed"]  # fmt: skip


def _rule(name: str, category: str, kind: str, params: dict[str, Any] | None, severity: str,
          attack: str, title: str, description: str, invariant_type: str = "structural",
          pack: str = "core", routine_ok: bool = False) -> dict[str, Any]:  # fmt: skip
    predicate: dict[str, Any] = {"kind": kind}
    if params is not None:
        predicate["params"] = params
    return {"id": name, "name": name, "category": category, "invariant_type": invariant_type,
            "predicate": predicate, "severity": severity, "attack": attack, "source": "pack",
            "metadata": {"title": title, "description": description, "pack": pack}
            | ({"routine_parent_benign": "true"} if routine_ok else {})}  # fmt: skip


def _all(*groups: list[str]) -> dict[str, Any]:
    return {"kind": "process_cmdline_all", "params": {"all_of": list(groups)}}


_CORE: list[dict[str, Any]] = [
    _rule("interpreter_outbound_connection", "execution", "any_of", {"predicates": [
            {"kind": "process_outbound", "params": {"names": SHELLS + NET_TOOLS}},
            {"kind": "process_outbound", "params": {"names": INTERPRETERS,
                                                    "allowed_ports": ROUTINE_PORTS}}]},
          "high", "T1059", "Shell or interpreter holding a connection",
          "A shell or network tool holds an outbound connection, or an interpreter does to a "
          "port outside web, mail, DNS and database ports: how a reverse shell looks, "
          "whatever its command line."),
    _rule("service_spawned_shell", "execution", "process_parent_in",
          {"names": SHELLS + INTERPRETERS + NET_TOOLS, "parents": NETWORK_SERVICES},
          "high", "T1505.003", "Network service started a shell",
          "A web server, database or other network-facing service started a shell, "
          "interpreter or network tool: a web shell or an exploited service."),
    _rule("exe_in_writable_or_hidden_path", "execution", "process_exe_suspicious",
          {"paths": WRITABLE_DIRS, "except": HIDDEN_OK},
          "high", "T1564.001", "Binary in a writable or hidden path",
          "A process runs from a world-writable directory (/tmp, /var/tmp, /dev/shm, "
          "/dev/mqueue, /run/lock...), a dot-directory or an anonymous memory file, whatever "
          "it is called."),
    _rule("local_daemon_outbound", "execution", "process_outbound", {"names": LOCAL_DAEMONS},
          "high", "T1036.005", "Local-only daemon talks to another host",
          "A daemon that only ever serves this machine (logind, journald, udevd, cron, dbus, "
          "polkit, getty...) holds a connection to another host: an impostor under its name."),
    _rule("service_account_discovery", "discovery", "service_account_discovery", None, "high",
          "T1033", "Service account asks who and where it is",
          "A command line chains discovery commands (id, whoami, uname -a, cat /etc/passwd, "
          "hostname...) as an account without a login shell, or under a network service: a "
          "web shell's first commands."),
    _rule("credential_guessing", "credential_access", "credential_guessing", None, "high",
          "T1110", "Password guessing against a login service",
          "A command line feeds a password or user list to a login service (-P list -M ssh, "
          "ssh://host with a wordlist, patator FILE0): hydra, medusa, ncrack or any renamed "
          "brute-forcer."),
    _rule("tunnel_by_arguments", "execution", "any_of", {"predicates": [
            {"kind": "process_cmdline_contains", "params": {"patterns": [
                " r:socks", " r:0.0.0.0:", " r:127.0.0.1:", " r:localhost:"]}},
            _all(["client "], [" r:1", " r:2", " r:3", " r:4", " r:5", " r:6", " r:7", " r:8",
                               " r:9"]),
            # ssh itself, headless (-N) with a remote forward (-R): the host's own port opened
            # on someone else's machine
            _all(["ssh "], [" -r ", "-fnr ", "-nfr "], [" -n ", " -fn ", " -nf ", " -n -"])]},
          "high", "T1572", "Reverse tunnel",
          "A command line opens a reverse port forward or SOCKS proxy: chisel and its renamed "
          "copies (client host:port R:socks), or ssh -N -R, whatever the binary is called."),
    _rule("daemon_name_mismatch", "execution", "process_name_mismatch",
          {"names": SYSTEM_DAEMONS}, "high", "T1036.004", "Process imitates a system daemon",
          "A process carries the name of a system daemon or kernel thread while its binary "
          "is something else."),
    _rule("mining_by_behaviour", "resource", "any_of", {"predicates": [
            {"kind": "cpu_with_connection",
             "params": {"percent": 80.0, "snapshots": 2, "ports": MINING_PORTS}},
            {"kind": "process_cmdline_contains", "params": {"patterns": [
                "stratum+", "stratum1+", "stratum2+", "--donate-level", "--cpu-max-threads-hint",
                "--randomx", "--coin=monero", "--algo=rx/", "-a rx/0"]}}]},
          "critical", "T1496", "Resource hijack",
          "Sustained CPU while connected to a mining-pool port, or miner arguments (a "
          "stratum URL) in any process: a miner, renamed or fed from a config file.",
          invariant_type="behavioral"),
    _rule("reverse_shell_variant", "execution", "any_of", {"predicates": [
            _all(["mkfifo", "mknod"], ["nc ", "ncat ", "netcat", "telnet ", "s_client", "socat "]),
            _all(["python", "perl", "ruby", "php", "lua"], ["-c ", "-e ", "-r ", "-rsocket"],
                 ["socket"], ["dup2", "subprocess", "pty", "/bin/sh", "/bin/bash", "exec(",
                              "popen", "system(", "spawn"]),
            _all(["/dev/tcp/", "/dev/udp/", "/inet/tcp/", "/inet/udp/", "fsockopen"]),
            _all(["s_client"], ["/bin/sh", "/bin/bash", "| sh", "| bash", "|sh ", "|bash "]),
            _all(["nc ", "ncat ", "netcat "], [" -e /", " -c /", " -e sh", " -e bash",
                                              "--exec", "--sh-exec", "--lua-exec"]),
            _all(["socat"], ["exec:", "system:"], ["tcp", "ssl", "udp"])]},
          "critical", "T1059.004", "Reverse shell",
          "A command line wires a shell to a socket: mkfifo with nc, an inline python/perl/"
          "ruby/php socket shell, /dev/tcp redirections, openssl or socat exec."),
    _rule("shell_upgrade", "execution", "process_cmdline_contains",
          {"patterns": ["pty.spawn(", "script -qc /bin/", "script -qc bash", "script -qc sh",
                        "script -q /dev/null", "script /dev/null -c", "stty raw -echo",
                        ",raw,echo=0", "rlwrap nc"]},
          "high", "T1059", "Interactive shell upgrade",
          "A shell was upgraded to a full terminal (python pty.spawn, script, stty raw): the "
          "step after a reverse shell lands."),
    _rule("destructive_command", "impact", "destructive_command", None, "critical", "T1485",
          "Destructive command",
          "A command deletes a system tree, formats, overwrites or wipes a disk, or is a "
          "fork bomb."),
    _rule("history_tampering", "integrity", "process_cmdline_contains",
          {"patterns": ["history -c", "unset histfile", "histfile=/dev/null", "histsize=0",
                        "rm ~/.bash_history", "rm -f ~/.bash_history",
                        "/dev/null > ~/.bash_history",
                        "ln -sf /dev/null ~/.bash_history", "shred -u ~/.bash_history",
                        "rm -rf /var/log", "truncate -s 0 /var/log", "journalctl --vacuum-time=1s",
                        "auditctl -d", "auditctl -e 0", "setenforce 0"]},
          "high", "T1070.003", "History or logs wiped",
          "Shell history, logs or the audit trail are being cleared or switched off."),
    _rule("privesc_enumeration", "discovery", "any_of", {"predicates": [
            {"kind": "process_cmdline_contains", "params": {"patterns": [
                "linpeas", "linenum.sh", "pspy32", "pspy64", "linux-exploit-suggester",
                "/les.sh", " les.sh", "/lse.sh", " lse.sh", "linuxprivchecker",
                "unix-privesc-check", "traitor-amd64", "traitor-386", "peass", "deepce.sh",
                "suid3num", "linux-smart-enumeration"]}},
            {"kind": "process_name_in", "params": {"names": [
                "linpeas", "linpeas.sh", "pspy", "pspy32", "pspy64", "pspy32s", "pspy64s",
                "traitor", "linenum.sh", "lse.sh"]}},
            _all(["find "], ["-perm -4000", "-perm -u=s", "-perm /4000", "-perm /u=s",
                             "-perm -2000", "-perm -g=s", "-perm /6000", "-perm -6000",
                             "-writable", "-perm -o+w", "-perm -0002"]),
            _all(["getcap "], [" -r /"])]},
          "high", "T1083", "Privilege-escalation enumeration",
          "A privilege-escalation enumeration tool runs (linpeas, LinEnum, pspy, les, lse), "
          "or a hunt for SUID binaries, capabilities or world-writable files.",
          routine_ok=True),
    _rule("account_created", "identity", "novel_value", {"field": "accounts"}, "medium",
          "T1136.001", "Account created",
          "A local account appeared after the learning period (a notice when it cannot log "
          "in).", invariant_type="behavioral"),
    _rule("account_login_shell", "identity", "novel_value", {"field": "login_accounts"},
          "high", "T1098", "Account can now log in",
          "An account got a login shell after the learning period; critical for a system "
          "account going from nologin to a shell.", invariant_type="behavioral"),
    _rule("account_privileged", "privilege", "novel_value", {"field": "privileged_accounts"},
          "high", "T1098", "Account given privileges",
          "An account joined root, sudo, wheel, admin, docker, lxd, disk or shadow, or got "
          "uid 0 (critical), after the learning period.", invariant_type="behavioral"),
    _rule("defence_daemon_stopped", "integrity", "process_disappeared",
          {"names": DEFENCE_DAEMONS}, "high", "T1562.001", "Logging, audit or EDR daemon stopped",
          "A syslog, audit, EDR or HIDS daemon that was running is gone.",
          invariant_type="temporal"),
]  # fmt: skip

# AI agent tooling (detect/mcp.py): what the MCP servers on a host can do; docs/mcp.md.
_MCP: list[dict[str, Any]] = [
    _rule("mcp_shell_access", "ai_tooling", "mcp_shell_access", None, "high", "T1059",
          "MCP server with shell access",
          "An AI client is configured with an MCP server that runs commands on the host or "
          "drives its container engine: whatever the model is talked into, the host runs.",
          pack="mcp"),
    _rule("mcp_broad_filesystem_scope", "ai_tooling", "mcp_broad_scope", None, "high", "T1005",
          "MCP server with the whole filesystem or a home",
          "An MCP server is handed /, a whole home directory or a system or credentials "
          "directory (/etc, ~/.ssh) instead of one project's folder.", pack="mcp"),
    _rule("mcp_inline_secret", "ai_tooling", "mcp_inline_secret", None, "medium", "T1552.001",
          "Credential written in an MCP configuration",
          "An MCP client's configuration holds a key, token or password in plain text "
          "(the agent sends where, never the value).", pack="mcp"),
    _rule("mcp_server_new", "ai_tooling", "novel_value", {"field": "mcp_servers"}, "medium",
          "T1546", "New MCP server",
          "An MCP server appeared in an AI client's configuration after the learning period; "
          "a notice unless it can run commands, reach wide or holds a credential.",
          invariant_type="behavioral", pack="mcp"),
]  # fmt: skip

PACKS: dict[str, tuple[Invariant, ...]] = {
    "core": tuple(msgspec.convert(r, Invariant) for r in _CORE),
    "mcp": tuple(msgspec.convert(r, Invariant) for r in _MCP),
}
DEFAULT_PACKS = ("core", "mcp")


def active(
    names: Sequence[str] = DEFAULT_PACKS, guarded: Sequence[str] = ()
) -> tuple[Invariant, ...]:
    """The invariants of these packs; `guarded` adds process names to the core pack's list of
    daemons whose disappearance is an incident ([detection] guarded_processes)."""
    out: list[Invariant] = []
    for name in names:
        for inv in PACKS[name]:
            if inv.id == "defence_daemon_stopped" and guarded:
                names_ = list(dict.fromkeys([*DEFENCE_DAEMONS, *guarded]))
                pred = msgspec.convert({"kind": "process_disappeared", "params": {"names": names_}},
                                       type(inv.predicate))  # fmt: skip
                inv = msgspec.structs.replace(inv, predicate=pred)
            out.append(inv)
    return tuple(out)
