"""The 32 builtin invariants, as data, validated at import by the contribution schema."""

from __future__ import annotations

from typing import Any

import msgspec

from kefal_lite.detect.model import Invariant


def _rule(
    name: str,
    category: str,
    invariant_type: str,
    kind: str,
    params: dict[str, Any] | None,
    severity: str,
    attack: str,
    title: str,
    description: str,
) -> dict[str, Any]:
    predicate: dict[str, Any] = {"kind": kind}
    if params is not None:
        predicate["params"] = params
    return {
        "id": name,
        "name": name,
        "category": category,
        "invariant_type": invariant_type,
        "predicate": predicate,
        "severity": severity,
        "attack": attack,
        "metadata": {"title": title, "description": description},
        "source": "builtin",
    }


_DATABASE_PORTS = [3306, 5432, 6379, 27017, 9200, 9300, 11211, 5984, 8086, 9042]
_MINERS = ["xmrig", "minerd", "cpuminer", "kdevtmpfsi", "kinsing", "ethminer", "nbminer",
           "lolminer", "t-rex"]  # fmt: skip
_SECURITY_TOOLS = ["auditd", "fail2ban-server", "crowdsec", "falco", "wazuh-agentd", "osqueryd",
                   "clamd"]  # fmt: skip

_RULES: list[dict[str, Any]] = [
    # --- exposure
    _rule("database_exposed", "exposure", "structural", "port_exposed",
          {"ports": _DATABASE_PORTS}, "critical", "T1190", "Database exposed",
          "A database port listens on a non-loopback address."),
    _rule("control_plane_exposed", "exposure", "structural", "port_exposed",
          {"ports": [2375, 2376, 2379, 2380, 10250]}, "critical", "T1610",
          "Container control plane exposed",
          "The Docker API, etcd or the kubelet listens on a non-loopback address."),
    _rule("cleartext_remote_access", "exposure", "structural", "port_listening",
          {"ports": [21, 23, 512, 513, 514, 69]}, "high", "T1021", "Cleartext remote access",
          "FTP, telnet, r-services or TFTP listen: credentials cross the network in clear."),
    _rule("remote_desktop_exposed", "exposure", "structural", "port_exposed",
          {"ports": [3389, *range(5900, 5911), 6000]}, "high", "T1133",
          "Remote desktop exposed", "RDP, VNC or X11 listens on a non-loopback address."),
    _rule("ssh_port_masquerade", "exposure", "structural", "port_owner_not_in",
          {"port": 22, "allowed": ["sshd", "systemd", "dropbear"]}, "high", "T1036",
          "Port 22 not owned by sshd", "Something other than sshd answers on the SSH port."),
    # --- privilege
    _rule("database_running_as_root", "privilege", "structural", "process_name_in",
          {"names": ["postgres", "mysqld", "mariadbd", "redis-server", "mongod", "elasticsearch"],
           "users": ["root"]}, "high", "T1068", "Database running as root",
          "A database server runs as root: one bug in it is a root shell."),
    _rule("root_process_in_writable_path", "privilege", "structural",
          "process_in_suspicious_path",
          {"suspicious_paths": ["/tmp", "/var/tmp", "/dev/shm", "/home"], "user": "root"},
          "critical", "T1548", "Root process from a writable path",
          "A root process runs a binary from a world- or user-writable directory."),
    _rule("uid0_duplicate", "privilege", "structural", "uid0_not_root", None, "critical",
          "T1136", "Second uid 0 account", "An account other than root has uid 0."),
    _rule("new_admin_account", "privilege", "behavioral", "novel_value",
          {"field": "admin_accounts"}, "high", "T1098", "New admin account",
          "An account joined sudo/wheel/admin or got uid 0 after the learning period."),
    # --- execution
    _rule("process_in_suspicious_path", "execution", "structural",
          "process_in_suspicious_path", {"suspicious_paths": ["/tmp", "/var/tmp", "/dev/shm"]},
          "high", "T1036.005", "Process from a temporary directory",
          "A process runs a binary from /tmp, /var/tmp or /dev/shm."),
    _rule("crypto_miner", "execution", "structural", "any_of",
          {"predicates": [{"kind": "process_name_in", "params": {"names": _MINERS}},
                          {"kind": "process_cmdline_contains",
                           "params": {"patterns": ["stratum+tcp"]}}]},
          "critical", "T1496", "Crypto miner", "A known miner runs or a process talks stratum."),
    _rule("reverse_shell", "execution", "structural", "process_cmdline_contains",
          {"patterns": ["/dev/tcp/", "nc -e", "ncat -e", "bash -i >&", "socat exec:", "sh -i >&"]},
          "critical", "T1059.004", "Reverse shell",
          "A command line has the shape of a reverse shell."),
    _rule("shell_listening", "execution", "structural", "port_owner_in",
          {"processes": ["sh", "bash", "dash", "zsh", "ash", "ksh"]}, "critical", "T1059.004",
          "Shell listening on a port", "A shell owns a listening socket (a bind shell)."),
    _rule("offensive_tool_running", "execution", "structural", "process_name_in",
          {"names": ["nmap", "masscan", "hydra", "john", "hashcat", "sqlmap", "nikto",
                     "responder"]}, "high", "T1046", "Offensive tool running",
          "A scanner or password cracker runs on this host."),
    _rule("tunneling_tool_running", "execution", "structural", "process_name_in",
          {"names": ["ngrok", "chisel", "frpc", "gost", "iodine", "ligolo"]}, "medium", "T1572",
          "Tunnelling tool running", "A tunnelling tool can expose this network from outside."),
    _rule("deleted_binary_running", "execution", "structural", "process_exe_deleted", None,
          "high", "T1070.004", "Deleted binary running",
          "A process runs from a binary that was deleted after it started."),
    _rule("kernel_thread_masquerade", "execution", "structural",
          "process_masquerades_kernel_thread", None, "high", "T1036.004",
          "Fake kernel thread", "A process named like a kernel thread has a binary on disk."),
    # --- identity
    _rule("root_login", "identity", "structural", "logged_in_user_in", {"users": ["root"]},
          "medium", "T1078.003", "Root logged in", "Someone is logged in as root."),
    _rule("new_login_user", "identity", "behavioral", "novel_value",
          {"field": "logged_in_users"}, "high", "T1078", "New login user",
          "A user logged in who never did on this host during the learning period."),
    _rule("new_ssh_authorized_key", "identity", "behavioral", "novel_value",
          {"field": "authorized_keys"}, "high", "T1098.004", "New SSH authorized key",
          "A key was added to an authorized_keys file (critical for root)."),
    _rule("system_account_login", "identity", "structural", "system_account_login",
          {"max_uid": 999, "except": ["root"]}, "high", "T1078.003", "System account login",
          "A service account (uid below 1000) has an interactive login."),
    # --- novelty
    _rule("new_listening_port", "novelty", "behavioral", "novel_value",
          {"field": "listening_ports"}, "medium", "T1205", "New listening port",
          "A port listens that this host never opened before."),
    _rule("new_listening_process", "novelty", "behavioral", "novel_value",
          {"field": "listening_processes"}, "medium", "T1543", "New listening process",
          "A process owns a listening port for the first time."),
    _rule("new_root_process", "novelty", "behavioral", "novel_value",
          {"field": "root_processes"}, "medium", "T1543", "New root process",
          "A process name runs as root for the first time on this host."),
    _rule("novel_outbound_connection", "novelty", "behavioral", "novel_value",
          {"field": "outbound_peers"}, "medium", "T1071", "New outbound connection",
          "A process connects out to a port it never used before."),
    # --- integrity
    _rule("agent_silent", "integrity", "temporal", "agent_silent", {"minutes": 10}, "high",
          "T1562.001", "Agent silent", "No snapshot from an enrolled agent for too long."),
    _rule("snapshot_replay", "integrity", "temporal", "timestamp_not_monotonic", None, "high",
          "T1565", "Snapshot replayed or out of order",
          "A snapshot is not newer than the last accepted one."),
    _rule("clock_skew", "integrity", "temporal", "clock_skew", {"seconds": 300}, "low",
          "T1070.006", "Clock skew", "The host's clock differs from the server's."),
    _rule("host_rebooted", "integrity", "temporal", "uptime_decreased", None, "low", "T1529",
          "Host rebooted", "Uptime went down since the last snapshot."),
    _rule("security_tool_stopped", "integrity", "temporal", "process_disappeared",
          {"names": _SECURITY_TOOLS}, "high", "T1562.001", "Security tool stopped",
          "A security tool that was running is gone."),
    # --- resource
    _rule("sustained_high_cpu", "resource", "behavioral", "sustained_cpu",
          {"percent": 90.0, "snapshots": 3}, "medium", "T1496", "Sustained high CPU",
          "One process stays at or above 90% CPU for three snapshots in a row."),
    _rule("process_count_spike", "resource", "behavioral", "process_count_spike",
          {"factor": 3.0, "min_baseline": 20}, "medium", "T1499", "Process count spike",
          "The host runs over three times its usual number of processes."),
]  # fmt: skip

BUILTINS: tuple[Invariant, ...] = tuple(msgspec.convert(r, Invariant) for r in _RULES)
BY_ID = {inv.id: inv for inv in BUILTINS}
assert len(BUILTINS) == 32 and len(BY_ID) == 32


def with_silent_minutes(minutes: int) -> tuple[Invariant, ...]:
    """The builtins with the operator's agent-silent threshold (config agents.silent_minutes)."""
    out = []
    for inv in BUILTINS:
        if inv.id == "agent_silent":
            pred = msgspec.convert({"kind": "agent_silent", "params": {"minutes": minutes}},
                                   type(inv.predicate))  # fmt: skip
            inv = msgspec.structs.replace(inv, predicate=pred)
        out.append(inv)
    return tuple(out)
