"""Three concrete actions per incident, with the exact commands for the host's OS.

Every value taken from evidence or the subject (process names, paths, users,
ports, protocols) came from the monitored host and may be hostile, and people
paste these commands into root shells. So every interpolated value goes through
exactly one exit: `sh()` for POSIX shells, `ps()` for PowerShell (both via
`Ctx.q`), or `num()` for numbers, which are rendered only as validated ints.
Home directories come from `getent passwd`, never `~user` (tilde expansion runs
before quoting could help), and `#` comments carry no host text: a comment ends
at the first newline and whatever follows runs.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from kefal_lite.detect import predicates as p
from kefal_lite.detect.model import Invariant


class Action(msgspec.Struct, frozen=True):
    title: str
    commands: list[str]
    why: str


@dataclass(frozen=True)
class Ctx:
    invariant: Invariant
    subject: str
    evidence: dict[str, Any]
    os: str  # linux | darwin | windows
    family: str = ""  # debian | rhel | other (a named Linux distribution) | "" (not known)

    def get(self, key: str, default: Any = None) -> Any:
        return self.evidence.get(key, default)

    @property
    def windows(self) -> bool:
        return self.os == "windows"

    @property
    def macos(self) -> bool:
        return self.os == "darwin"

    def q(self, value: Any) -> str:
        """Quote for this host's shell (PowerShell on Windows, POSIX sh elsewhere)."""
        return ps(value) if self.windows else sh(value)

    # subject parts, for evidence-less kinds
    @property
    def subject_value(self) -> str:
        return self.subject.split(":", 1)[1] if ":" in self.subject else self.subject


Template = Callable[[Ctx], list[Action]]


# --- the only ways a host value enters a command -------------------------------------

# Controls are editing keys to a terminal (a pasted ^U erases the line typed so far, CR
# runs it), and bidirectional overrides make a command read differently than it runs.
# The wire contract refuses controls at decode; this is the last line for evidence
# stored before that, or built by code that forgot.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# PowerShell ends a single-quoted string on any of these, not only on the ASCII one.
_PS_QUOTES = re.compile("(['\u2018\u2019\u201a\u201b])")


def visible(value: Any) -> str:
    return _UNSAFE.sub("\ufffd", str(value))


def sh(value: Any) -> str:
    """One POSIX shell word holding exactly `value` (controls made visible)."""
    return shlex.quote(visible(value))


def ps(value: Any) -> str:
    """One PowerShell single-quoted string holding exactly `value` (controls made visible)."""
    return "'" + _PS_QUOTES.sub(r"\1\1", visible(value)) + "'"


def num(value: Any, lo: int = 0, hi: int = 2**31) -> int | None:
    """`value` as an int in [lo, hi] if it is one (or all ASCII digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        value = int(value)
    return value if isinstance(value, int) and lo <= value <= hi else None


def ip(value: Any) -> str | None:
    """`value` as a validated IP address (or network), normalised, else None."""
    text = str(value or "").strip("[]")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def proto_of(value: Any) -> str:
    """The firewall protocol for a wire protocol: only tcp or udp ever reach a command."""
    return "udp" if value in ("udp", "udp6") else "tcp"


def home_of(c: Ctx, user: Any) -> str:
    """Shell text that sets HOME_DIR to `user`'s home, from the passwd database."""
    if visible(user) == "root":
        return "HOME_DIR=/root"
    return f"HOME_DIR=$(getent passwd {c.q(user)} | cut -d: -f6) && test -n \"$HOME_DIR\""


# --- building blocks ---------------------------------------------------------------


def _port(c: Ctx) -> tuple[int, str]:
    port, proto = c.get("port"), c.get("protocol")
    if port is None:  # novelty: subject port:8081/tcp
        port, _, proto = c.subject_value.partition("/")
    return num(port, 0, 65535) or 0, proto_of(proto)


def _pid(c: Ctx) -> int | None:
    return num(c.get("pid"), 1)


def listen_check(c: Ctx, port: int, proto: str = "tcp") -> Action:
    if c.windows:
        cmds = [
            f"Get-NetTCPConnection -LocalPort {port} -State Listen | Select-Object LocalAddress,OwningProcess",
            f"Get-Process -Id (Get-NetTCPConnection -LocalPort {port} -State Listen).OwningProcess",
        ]
    elif c.macos:
        cmds = [
            f"sudo lsof -nP -i{proto.upper()}:{port}" + (" -sTCP:LISTEN" if proto == "tcp" else "")
        ]
    else:
        flag = "-ltnp" if proto == "tcp" else "-lunp"
        cmds = [f"sudo ss {flag} 'sport = :{port}'"]
    return Action(f"Confirm what listens on {port}/{proto}, and where", cmds,
                  "Check the change took: only the intended address (ideally 127.0.0.1) should show.")  # fmt: skip


def _listen_address(c: Ctx) -> str | None:
    sock = c.get("socket")
    return ip(c.get("address") or (sock.get("address") if isinstance(sock, dict) else None))


_NFT_TABLE = "sudo nft add table inet kefal"
_NFT_CHAIN = "sudo nft 'add chain inet kefal {hook} {{ type filter hook {hook} priority 0; }}'"
# What each firewall is called, how to tell it runs, and why it was chosen.
_FW_WHY = {
    "debian": "Debian/Ubuntu: ufw when it is installed and active, else nftables (the kernel"
              " firewall every current release ships).",
    "rhel": "RHEL/Fedora/Rocky/Alma: firewalld is the firewall they ship and run.",
    "other": "nftables, the kernel firewall current distributions ship.",
    "": "the distribution is not known: the command uses ufw if it is active, else firewalld"
        " if it runs, else nftables.",
}  # fmt: skip


def _fw(tool: str, port: int, proto: str, allow: bool, out_to: str | None = None) -> str:
    """One `&&` chain adding the rule with `tool`. Only validated numbers and addresses
    (num(), ip()) and the constant $ALLOW_FROM reference reach it."""
    if out_to is not None:
        fam = "ip6" if ":" in out_to else "ip"
        v = "ipv6" if ":" in out_to else "ipv4"
        return {
            "ufw": f"sudo ufw deny out to {out_to} port {port} proto {proto}",
            "firewalld": f"sudo firewall-cmd --permanent --direct --add-rule {v} filter OUTPUT 0"
                         f" -d {out_to} -p {proto} --dport {port} -j DROP"
                         " && sudo firewall-cmd --reload",
            "nft": f"{_NFT_TABLE} && {_NFT_CHAIN.format(hook='output')} && sudo nft add rule"
                   f" inet kefal output {fam} daddr {out_to} {proto} dport {port} drop",
        }[tool]  # fmt: skip
    if tool == "ufw":
        first = f'sudo ufw allow from "$ALLOW_FROM" to any port {port} proto {proto} && ' if allow else ""
        return first + f"sudo ufw deny {port}/{proto}"
    if tool == "firewalld":
        first = (f"sudo firewall-cmd --permanent --add-rich-rule=\"rule source address=$ALLOW_FROM"
                 f' port port={port} protocol={proto} accept" && ') if allow else ""
        return (first + f"sudo firewall-cmd --permanent --add-rich-rule='rule port port={port}"
                f" protocol={proto} reject' && sudo firewall-cmd --reload")  # fmt: skip
    first = (f'sudo nft add rule inet kefal input ip saddr "$ALLOW_FROM" {proto} dport {port}'
             " accept && ") if allow else ""  # fmt: skip
    return (f"{_NFT_TABLE} && {_NFT_CHAIN.format(hook='input')} && {first}"
            f"sudo nft add rule inet kefal input {proto} dport {port} drop")  # fmt: skip


def _fw_for(c: Ctx, port: int, proto: str, allow: bool = False, out_to: str | None = None) -> str:
    """The rule for this host's firewall: by its family, or chosen on the host when unknown."""
    ufw_on = "command -v ufw >/dev/null && sudo ufw status | grep -q 'Status: active'"
    nft = _fw("nft", port, proto, allow, out_to)
    if c.family == "rhel":
        return _fw("firewalld", port, proto, allow, out_to)
    if c.family == "other":
        return nft
    if c.family == "debian":
        return f"if {ufw_on}; then {_fw('ufw', port, proto, allow, out_to)}; else {nft}; fi"
    return (f"if {ufw_on}; then {_fw('ufw', port, proto, allow, out_to)};"
            " elif command -v firewall-cmd >/dev/null && sudo firewall-cmd --state >/dev/null"
            f" 2>&1; then {_fw('firewalld', port, proto, allow, out_to)}; else {nft}; fi")


def firewall_block(c: Ctx, port: int, proto: str = "tcp", allow_from: str | None = None) -> Action:
    address = _listen_address(c)
    if address is not None and ipaddress.ip_address(address).is_loopback:
        return Action(f"Nothing to firewall: {port}/{proto} listens on {address} only",
                      [listen_check(c, port, proto).commands[0]],
                      f"A listener on {address} is reachable from this host only; a firewall rule"
                      " adds nothing. The command confirms it is still bound there.")  # fmt: skip
    if c.windows:
        cmds = [
            f"New-NetFirewallRule -DisplayName 'kefal: block {port}/{proto}' -Direction Inbound"
            f" -LocalPort {port} -Protocol {proto.upper()} -Action Block"
        ]
        how = "Windows Defender Firewall."
    elif c.macos:
        cmds = [
            f"echo 'block in quick proto {proto} from any to any port {port}' | sudo tee -a /etc/pf.conf",
            "sudo pfctl -f /etc/pf.conf && sudo pfctl -e",
        ]
        how = "pf, the macOS packet filter."
    else:
        cmds = []
        if allow_from:
            cmds += [f"# set ALLOW_FROM to the {allow_from} (e.g. 10.0.0.0/24) on the next line",
                     "ALLOW_FROM=''", 'test -n "$ALLOW_FROM" && ' + _fw_for(c, port, proto, True)]
        else:
            cmds.append(_fw_for(c, port, proto))
        how = _FW_WHY.get(c.family, _FW_WHY[""])
    return Action(f"Block {port}/{proto} at the host firewall", cmds,
                  "Defence in depth: if the service is ever rebound to all interfaces again, the"
                  f" firewall still keeps it off the network. Firewall: {how}")  # fmt: skip


def exe_gone(exe: Any) -> bool:
    """A binary that is no longer at its path: deleted, or never on disk (memfd)."""
    text = str(exe or "")
    return text.endswith(" (deleted)") or "memfd:" in text


def _pids(c: Ctx) -> list[int]:
    """Every pid the incident is about: its own, then those of the rules folded into it."""
    listed = c.get("pids")
    found = [_pid(c)] + [num(x, 1) for x in (listed if isinstance(listed, list) else [])]
    rules = c.get("rules")
    for rule in rules if isinstance(rules, list) else []:
        ev = rule.get("evidence") if isinstance(rule, dict) else None
        if isinstance(ev, dict):
            found.append(num(ev.get("pid"), 1))
    out: list[int] = []
    for pid in found:
        if pid is not None and pid not in out:
            out.append(pid)
    return out[:8]


def inspect_process(c: Ctx) -> Action:
    pids, exe, name = _pids(c), c.get("exe"), c.get("name") or c.subject_value
    pid = pids[0] if pids else None
    if c.windows:
        cmds = [
            f"Get-Process -Id {pid} | Format-List *"
            if pid
            else f"Get-Process -Name {c.q(name)} | Format-List *",
            f"Get-FileHash {c.q(exe)} -Algorithm SHA256"
            if exe
            else "Get-CimInstance Win32_Process | Select ProcessId,Name,CommandLine",
        ]
        return Action(f"Inspect {name} before touching it", cmds,
                      "Record who started it, from where, and keep a copy of the binary: killing"
                      " it first destroys the evidence you need to find out how it got there.")  # fmt: skip
    targets = [str(x) for x in pids] or [f"$(pgrep -x -- {c.q(name)} | head -1)"]
    cmds = [f"ps -o pid,ppid,user,lstart,args -p {','.join(targets)}"]
    if c.macos:
        cmds += [f"sudo lsof -p {t}" for t in targets]
        if exe and not exe_gone(exe):
            cmds.append(f"sudo shasum -a 256 -- {c.q(exe)} && sudo mkdir -p /var/root/kefal-quarantine"
                        f" && sudo cp -- {c.q(exe)} /var/root/kefal-quarantine/")  # fmt: skip
    else:
        cmds += [f"sudo ls -l /proc/{t}/exe /proc/{t}/cwd" for t in targets]
        # which unit owns it decides how to stop it for good: ask before anything is killed
        cmds += [f"systemctl status {t} 2>/dev/null | head -3" for t in targets]
        if exe or pids:
            # The running image, read through /proc: right for a deleted or memfd binary
            # (no path to read) and for one replaced on disk since it started.
            cmds.append("sudo mkdir -p /root/kefal-quarantine")
            for t in targets:
                keep = (
                    f"/root/kefal-quarantine/pid-{t}.exe"
                    if t.isdigit()
                    else "/root/kefal-quarantine/exe.$(date +%s)"
                )
                cmds.append(f"sudo sha256sum /proc/{t}/exe && sudo cp /proc/{t}/exe {keep}")
    return Action(f"Inspect {name} and keep a copy of its binary", cmds,
                  "Record who started it, from where and under which unit, and keep a copy of the"
                  " binary: killing it first destroys the evidence you need to find out how it"
                  " got there.")  # fmt: skip


def stop_process(c: Ctx, unit_checked: bool = False) -> Action:
    pids, name = _pids(c), c.get("name") or c.subject_value
    if c.windows:
        cmds = [f"Stop-Process -Id {pid} -Force" for pid in pids] or [
            f"Stop-Process -Name {c.q(name)} -Force"
        ]
        return Action(f"Stop {name}", cmds,
                      "Ends what is running now; the next snapshot shows whether it came back.")  # fmt: skip
    cmds = []
    if not c.macos and not unit_checked:
        # before the kill: a dead pid has no unit to ask about
        cmds += [f"systemctl status {pid} 2>/dev/null | head -3" for pid in pids] or [
            f"systemctl list-units --all | grep -iF -e {c.q(name)}"
        ]
    if pids:
        each = " ".join(str(pid) for pid in pids)
        cmds.append(f"sudo kill -STOP {each} && sudo kill -KILL {each}")
    else:
        cmds.append(f"sudo pkill -KILL -x -- {c.q(name)}")
    return Action(f"Stop {name}", cmds,
                  "Ends what is running now (frozen first, so it cannot react); if a unit owned"
                  " it, `systemctl stop` that unit too or it starts again. The next snapshot shows"
                  " whether it came back.")  # fmt: skip


def hunt_persistence(c: Ctx, needle: str) -> Action:
    n = c.q(needle)
    if c.windows:
        cmds = [
            f"Get-ScheduledTask | Where-Object {{$_.Actions.Execute -like '*'+{n}+'*'}}",
            f"Get-CimInstance Win32_Service | Where-Object {{$_.PathName -like '*'+{n}+'*'}}",
            "Get-ItemProperty HKLM:\\Software\\Microsoft\\Windows\\CurrentVersion\\Run",
        ]
    elif c.macos:
        cmds = [
            f"sudo grep -rlF -e {n} /Library/LaunchDaemons /Library/LaunchAgents ~/Library/LaunchAgents 2>/dev/null",
            f"crontab -l | grep -nF -e {n}",
        ]
    else:
        cmds = [
            f"sudo grep -rlF -e {n} /etc/systemd /lib/systemd/system /etc/cron* /var/spool/cron /etc/rc.local ~/.config/systemd 2>/dev/null",
            f'for u in $(cut -d: -f1 /etc/passwd); do sudo crontab -l -u "$u" 2>/dev/null | grep -nF -e {n} && echo "^ $u"; done',
            "sudo systemctl list-timers --all",
        ]
    return Action("Find how it starts again and remove it", cmds,
                  "Malware that is only killed comes back at the next cron tick, timer or reboot;"
                  " remove the unit, cron line or autorun entry that launches it.")  # fmt: skip


def lock_account(c: Ctx, user: str) -> Action:
    u = c.q(user)
    if c.windows:
        cmds = [f"Disable-LocalUser -Name {u}", "query user",
                "# then end each of its sessions: logoff ID, with the ID from query user"]
    elif c.macos:
        cmds = [f"sudo pwpolicy -u {u} disableuser", f"sudo pkill -KILL -u {u}"]
    else:
        cmds = [
            f"sudo usermod --lock --expiredate 1 -- {u}",
            f"sudo usermod --shell /usr/sbin/nologin -- {u}",
            f"sudo pkill -KILL -u {u}",
        ]
    return Action(f"Lock {user} and end its sessions", cmds,
                  "Until you know who used the account, nobody should: locking keeps the"
                  " evidence (home, logs), unlike deleting it.")  # fmt: skip


def review_logins(c: Ctx, user: str | None = None) -> Action:
    who = c.q(user) if user else ""
    if c.windows:
        cmds = [
            "Get-WinEvent -FilterHashtable @{LogName='Security'; Id=4624} -MaxEvents 50 | Format-List TimeCreated,Message"
        ]
    elif c.macos:
        cmds = [
            f"last {who}".strip(),
            "log show --last 1d --predicate 'process == \"sshd\"' | tail -50",
        ]
    else:
        cmds = [
            f"last -F -a {who} | head -20".replace("  ", " "),
            "sudo journalctl -u ssh -u sshd --since -1d | grep -E 'Accepted|Failed' | tail -50",
        ]
    return Action("Review recent logins", cmds,
                  "Shows from where and with what credential the account logged in, which tells"
                  " you whether a key or password must be rotated.")  # fmt: skip


# --- database exposure: service-specific rebinding -----------------------------------

_DB_BIND: dict[int, tuple[str, list[str], str]] = {
    5432: ("PostgreSQL", [
        "CONF=$(sudo -u postgres psql -Atc 'SHOW config_file') && sudo grep -n listen_addresses \"$CONF\"",
        "sudo sed -i \"s/^#\\?listen_addresses.*/listen_addresses = 'localhost'/\" \"$CONF\"",
        "sudo systemctl restart postgresql"], "listen_addresses"),
    3306: ("MySQL/MariaDB", [
        "sudo grep -rn bind-address /etc/mysql/",
        "sudo sed -i 's/^\\s*bind-address.*/bind-address = 127.0.0.1/' $(sudo grep -rl bind-address /etc/mysql/)",
        "sudo systemctl restart mariadb 2>/dev/null || sudo systemctl restart mysql"], "bind-address"),
    6379: ("Redis", [
        "sudo grep -n '^bind\\|^protected-mode' /etc/redis/redis.conf",
        "sudo sed -i 's/^bind .*/bind 127.0.0.1 -::1/; s/^protected-mode .*/protected-mode yes/' /etc/redis/redis.conf",
        "sudo systemctl restart redis-server 2>/dev/null || sudo systemctl restart redis"], "bind"),
    27017: ("MongoDB", [
        "sudo grep -n bindIp /etc/mongod.conf",
        "sudo sed -i 's/^\\(\\s*bindIp:\\).*/\\1 127.0.0.1/' /etc/mongod.conf",
        "sudo systemctl restart mongod"], "net.bindIp"),
    9200: ("Elasticsearch", [
        "sudo grep -n network.host /etc/elasticsearch/elasticsearch.yml",
        "echo 'network.host: 127.0.0.1' | sudo tee -a /etc/elasticsearch/elasticsearch.yml",
        "sudo systemctl restart elasticsearch"], "network.host"),
    11211: ("memcached", [
        "sudo grep -n '^-l\\|^-U' /etc/memcached.conf",
        "sudo sed -i 's/^-l .*/-l 127.0.0.1/' /etc/memcached.conf && echo '-U 0' | sudo tee -a /etc/memcached.conf",
        "sudo systemctl restart memcached"], "-l"),
    5984: ("CouchDB", [
        "sudo grep -rn bind_address /opt/couchdb/etc/",
        "printf '[chttpd]\\nbind_address = 127.0.0.1\\n' | sudo tee -a /opt/couchdb/etc/local.ini",
        "sudo systemctl restart couchdb"], "bind_address"),
    8086: ("InfluxDB", [
        "sudo grep -rn bind-address /etc/influxdb/",
        "echo 'http-bind-address = \"127.0.0.1:8086\"' | sudo tee -a /etc/influxdb/config.toml",
        "sudo systemctl restart influxdb"], "http-bind-address"),
    9042: ("Cassandra", [
        "sudo grep -n '^rpc_address\\|^native_transport' /etc/cassandra/cassandra.yaml",
        "sudo sed -i 's/^rpc_address:.*/rpc_address: localhost/' /etc/cassandra/cassandra.yaml",
        "sudo systemctl restart cassandra"], "rpc_address"),
}  # fmt: skip
_DB_BIND[9300] = ("Elasticsearch transport", _DB_BIND[9200][1], "network.host")


def database_exposed(c: Ctx) -> list[Action]:
    port, proto = _port(c)
    name, cmds, setting = _DB_BIND.get(
        port, (c.get("process") or "the service", [], "bind address")
    )
    if c.windows or c.macos or not cmds:
        # the name may be the host's process name: it goes in the title, never a comment
        cmds = [f"# set {setting if port in _DB_BIND else 'the bind address'} to 127.0.0.1 in"
                " the service's configuration, then restart it"]
    rebind = Action(f"Make {name} listen on localhost only", cmds,
                    f"{name} on {c.get('address') or 'all interfaces'} answers anyone who can reach"
                    " the host; applications on the same machine only need 127.0.0.1.")  # fmt: skip
    return [rebind, firewall_block(c, port, proto), listen_check(c, port, proto)]


def control_plane_exposed(c: Ctx) -> list[Action]:
    port, proto = _port(c)
    if port in (2375, 2376):
        first = Action("Take the Docker API off the network", [
            "sudo grep -rn 'tcp://' /etc/docker/daemon.json /etc/systemd/system/docker.service.d/ /lib/systemd/system/docker.service",
            "# remove the -H tcp://... flag or the \"hosts\" entry found above, keep fd:// or unix:///var/run/docker.sock",
            "sudo systemctl daemon-reload && sudo systemctl restart docker",
        ], "An unauthenticated Docker API is root on the host for anyone who reaches it; use"
           " `docker context` over SSH for remote access.")  # fmt: skip
    elif port in (2379, 2380):
        first = Action("Restrict etcd to localhost and require client certificates", [
            "sudo grep -n 'listen-client-urls\\|listen-peer-urls\\|client-cert-auth' /etc/etcd/etcd.conf* /etc/kubernetes/manifests/etcd.yaml 2>/dev/null",
            "# set --listen-client-urls=https://127.0.0.1:2379 and --client-cert-auth=true",
            "sudo systemctl restart etcd 2>/dev/null || echo 'static pod: kubelet restarts it after the manifest changes'",
        ], "etcd holds every Kubernetes secret; without client-cert auth, reading it needs no credentials.")  # fmt: skip
    else:
        first = Action("Lock the kubelet API down", [
            "sudo grep -n 'anonymous\\|authorization' /var/lib/kubelet/config.yaml",
            "# set authentication.anonymous.enabled: false and authorization.mode: Webhook",
            "sudo systemctl restart kubelet",
        ], "An anonymous kubelet lets anyone run commands in every pod on the node.")  # fmt: skip
    return [
        first,
        firewall_block(c, port, proto, allow_from="control-plane subnet"),
        listen_check(c, port, proto),
    ]


def cleartext_remote_access(c: Ctx) -> list[Action]:
    port, proto = _port(c)
    svc = c.get("process") or "the service"
    stop = Action(f"Stop and disable {svc}", [
        "sudo systemctl list-units --all | grep -iE 'telnet|ftp|rsh|rlogin|tftp|inetd'",
        f"sudo systemctl list-units --all | grep -iF -e {c.q(svc)}",
        f"sudo systemctl disable --now -- {c.q(svc)}",
        "sudo systemctl disable --now inetd.service xinetd.service telnet.socket tftpd-hpa 2>/dev/null; true",
    ] if not c.windows else [f"Stop-Service -Name {c.q(svc)} -Force; Set-Service -Name {c.q(svc)} -StartupType Disabled"],
        "Telnet, FTP, r-services and TFTP send passwords and data unencrypted over the network.")  # fmt: skip
    replace = Action("Use SSH/SFTP instead", [
        "sudo apt-get install -y openssh-server && sudo systemctl enable --now ssh",
        "# file transfers: sftp user@host or scp; r-commands: ssh",
    ], "SSH gives the same remote access and file transfer with encryption and key authentication.")  # fmt: skip
    return [stop, replace, listen_check(c, port, proto)]


def remote_desktop_exposed(c: Ctx) -> list[Action]:
    port, proto = _port(c)
    if c.windows:
        first = Action("Allow RDP only through a VPN or gateway", [
            "Set-ItemProperty 'HKLM:\\System\\CurrentControlSet\\Control\\Terminal Server\\WinStations\\RDP-Tcp' -Name UserAuthentication -Value 1",
            "Set-NetFirewallRule -DisplayGroup 'Remote Desktop' -RemoteAddress '<vpn-subnet>'",
        ], "Exposed RDP is the most common ransomware entry point; require NLA and a VPN.")  # fmt: skip
    else:
        first = Action("Bind the VNC/X server to localhost and tunnel over SSH", [
            f"sudo ss -ltnp 'sport = :{port}'",
            "# start the VNC server with -localhost (x11vnc -localhost, vncserver -localhost yes)",
            f"# connect with: ssh -L {port}:127.0.0.1:{port} user@host",
        ], "VNC and X11 have weak or no authentication; over an SSH tunnel only SSH users reach them.")  # fmt: skip
    return [first, firewall_block(c, port, proto), listen_check(c, port, proto)]


def ssh_port_masquerade(c: Ctx) -> list[Action]:
    return [inspect_process(c) if c.get("pid") else Action("See what owns port 22", ["sudo ss -ltnp 'sport = :22'",
            "sudo ls -l /proc/$(sudo ss -ltnpH 'sport = :22' | grep -oP 'pid=\\K[0-9]+' | head -1)/exe"],
            "Port 22 is expected to be sshd; anything else there is impersonating it to collect passwords.")] + [
        Action("Stop the impostor and restore sshd", [
            "sudo fuser -k 22/tcp",
            "sudo systemctl restart ssh 2>/dev/null || sudo systemctl restart sshd",
        ], "Gives port 22 back to the real SSH daemon."),
        hunt_persistence(c, c.get("process") or "22"),
    ]  # fmt: skip


# Process name prefix -> (usual service account, usual data directory): constants, never
# host text, so they may appear in commands as they are.
_DB_ACCOUNTS: list[tuple[tuple[str, ...], str, str]] = [
    (("postgres", "postmaster"), "postgres", "/var/lib/postgresql"),
    (("mysqld", "mariadbd", "mariadb"), "mysql", "/var/lib/mysql"),
    (("redis",), "redis", "/var/lib/redis"),
    (("mongod",), "mongodb", "/var/lib/mongodb"),
    (("elasticsearch", "opensearch"), "elasticsearch", "/var/lib/elasticsearch"),
]


def database_running_as_root(c: Ctx) -> list[Action]:
    name = c.get("name") or c.subject_value
    pid = _pid(c)
    target = str(pid) if pid else f"$(pgrep -x -- {c.q(name)} | head -1)"
    known = next(((user, data) for prefixes, user, data in _DB_ACCOUNTS
                  if visible(name).lower().startswith(prefixes)), None)  # fmt: skip
    unit = f"UNIT=$(systemctl status {target} 2>/dev/null | awk 'NR==1{{print $2}}') && echo \"$UNIT\""
    drop_in = '"/etc/systemd/system/$UNIT.d"'
    # pasted line by line, a failed check does not stop the next line: each change re-checks
    gate = 'test -n "$UNIT" && test -n "$DB_USER" && id -- "$DB_USER" >/dev/null &&'
    if known:
        user, data = known
        pick = [f"DB_USER={user}  # the usual account for this database; change it if yours differs"]
        chown = [f'{gate} sudo chown -R "$DB_USER:" {data}']
    else:
        pick = ["# choose the unprivileged account it should run as, and set it on the next line",
                "DB_USER=''",
                "# then give that account the database's data directory (chown -R) before restarting"]  # fmt: skip
        chown = []
    return [
        Action(f"Find how {name} is started", [unit, 'systemctl cat -- "$UNIT"'],
               "The unit file decides the user; a database started by hand as root does not"
               " survive the fix."),
        Action(f"Run {name} as its own unprivileged user", [
            unit, *pick, *chown,
            f"{gate} sudo mkdir -p {drop_in} && printf '[Service]\\nUser=%s\\nGroup=%s\\n' \"$DB_USER\""
            f' "$(id -gn -- "$DB_USER")" | sudo tee {drop_in}/kefal-user.conf',
            f'{gate} sudo systemctl daemon-reload && sudo systemctl restart -- "$UNIT"',
        ], "A bug or SQL injection in a root database is a root shell; as its own user it is"
           " contained. The unit comes from systemctl status of the running process."),
        Action("Confirm the new owner", [f"ps -o user,pid,args -C {c.q(name)}"],
               "The next snapshot verifies it too: the incident resolves when no process of it"
               " runs as root."),
    ]  # fmt: skip


def malicious_process(c: Ctx) -> list[Action]:
    name = c.get("name") or c.subject_value
    exe = c.get("exe")
    # a memfd "path" is nowhere on disk: the name is what a unit or cron line would hold
    needle = name if exe_gone(exe) and "memfd:" in str(exe) else str(exe or name)
    needle = needle.removesuffix(" (deleted)")
    # inspect (and copy the binary), then stop: the unit was asked about while inspecting
    return [inspect_process(c), stop_process(c, unit_checked=True), hunt_persistence(c, needle)]


def uid0_duplicate(c: Ctx) -> list[Action]:
    user = c.get("user") or c.subject_value
    return [
        Action(f"Look at {user}'s entry and history", [f"getent passwd {c.q(user)}", "sudo awk -F: '$3 == 0' /etc/passwd",
                                                      f"sudo grep -nF -e {c.q(user)} /var/log/auth.log* | tail -20"],
               "A second uid 0 account is a classic backdoor: find when it was added and by whom."),
        lock_account(c, user),
        Action(f"Remove {user} (or give it a normal uid)", [f"sudo userdel -- {c.q(user)}"],
               "Only root should have uid 0; the next snapshot confirms the account is gone (to keep"
               " the account instead, give it a free uid with `usermod -o -u`)."),
    ]  # fmt: skip


def admin_account(c: Ctx) -> list[Action]:
    user = c.get("value") or c.subject_value
    return [
        Action(f"Check why {user} has admin rights", [f"id -- {c.q(user)}", "getent group sudo wheel admin",
                                                     f"sudo grep -nF -e {c.q(user)} /etc/sudoers /etc/sudoers.d/* 2>/dev/null"],
               "New administrators should come from a change you know about."),
        Action("Take the rights away if nobody asked for them", [f"sudo gpasswd -d {c.q(user)} sudo",
                                                                 f"sudo gpasswd -d {c.q(user)} wheel"],
               "Removing the group membership ends sudo for that account at its next login."),
        lock_account(c, user),
    ]  # fmt: skip


def root_login(c: Ctx) -> list[Action]:
    return [
        review_logins(c, "root"),
        Action("Stop direct root logins over SSH", [
            "sudo sed -i 's/^#\\?PermitRootLogin.*/PermitRootLogin no/' /etc/ssh/sshd_config",
            "sudo sshd -t && sudo systemctl reload ssh 2>/dev/null || sudo systemctl reload sshd",
        ], "Log in as a named user and use sudo: every action then has a name in the logs."),
        Action("Give admins their own accounts", [
            "# choose the admin's login name and set it on the next line",
            "ADMIN=''",
            'test -n "$ADMIN" && sudo adduser "$ADMIN" && (sudo usermod -aG sudo "$ADMIN" 2>/dev/null'
            ' || sudo usermod -aG wheel "$ADMIN")'],
               "Shared root passwords cannot be revoked for one person."),
    ]  # fmt: skip


def login_user(c: Ctx) -> list[Action]:
    user = c.get("user") or c.subject_value
    return [review_logins(c, user), lock_account(c, user),
            Action("Rotate what the account could reach", [f"sudo passwd -- {c.q(user)}",
                   home_of(c, user),
                   'sudo truncate -s 0 "$HOME_DIR/.ssh/authorized_keys"  # after review'],
                   "If the login was not expected, its password and keys must be considered known.")]  # fmt: skip


def authorized_key(c: Ctx) -> list[Action]:
    user, fp = c.get("user") or "", c.get("fingerprint") or ""
    if not user and ":" in c.subject_value:  # subject key:user:fingerprint
        user, _, fp = c.subject_value.partition(":")
    keys = '"$HOME_DIR/.ssh/authorized_keys"'
    comment = c.get("comment")
    return [
        Action(f"Find the key {fp}", [home_of(c, user), f"sudo ssh-keygen -lf {keys}"]
               + ([f"sudo grep -nF -e {c.q(comment)} {keys}"] if comment else []),
               "The fingerprint identifies the exact line; its comment often says whose key it is."),
        Action("Remove the line if nobody added it on purpose", [
            home_of(c, user),
            f'sudo cp {keys} "$HOME_DIR/.ssh/authorized_keys.bak.$(date +%s)"',
            f"sudo ssh-keygen -lf {keys} | grep -nF -e {c.q(fp)}   # note the line number N",
            f"sudo sed -i 'Nd' {keys}   # N from the previous command",
        ], "A planted key survives password changes; removing the line is what closes the door."),
        review_logins(c, user),
    ]  # fmt: skip


def system_account_login(c: Ctx) -> list[Action]:
    user = c.get("user") or c.subject_value
    return [
        review_logins(c, user),
        Action(f"Give {user} no login shell", [f"sudo usermod --shell /usr/sbin/nologin -- {c.q(user)}",
                                              f"sudo pkill -KILL -u {c.q(user)}"],
               "Service accounts run daemons; an interactive session as one usually means an exploited service."),
        Action("Check the service behind it", [f"ps -o pid,args -u {c.q(user)}",
                                               "sudo journalctl --since -1h -p warning | tail -50"],
               "Find which daemon runs as this account and whether it was exploited."),
    ]  # fmt: skip


def new_port(c: Ctx) -> list[Action]:
    port, proto = _port(c)
    who = listen_check(c, port, proto)
    return [Action(f"Identify the owner of {port}/{proto}", who.commands,
                   "Decide whether this port is part of a change you made."),
            Action("Stop it if it is not expected", [
                f"sudo fuser -k {port}/{proto}" if not c.windows else
                f"Stop-Process -Id (Get-NetTCPConnection -LocalPort {port} -State Listen).OwningProcess -Force"],
                "An unexpected listener is how backdoors and forgotten test services get in."),
            firewall_block(c, port, proto)]  # fmt: skip


def new_process_generic(c: Ctx) -> list[Action]:
    name = c.get("value") or c.get("name") or c.subject_value
    owner = Action(f"Check which package {name} belongs to", [
        f"command -v -- {c.q(name)} && dpkg -S \"$(readlink -f \"$(command -v {c.q(name)})\")\" 2>/dev/null"
        f" || rpm -qf \"$(readlink -f \"$(command -v {c.q(name)})\")\"",
        f"ps -o pid,ppid,user,lstart,args -C {c.q(name)}",
    ], "Software from a package you installed is usually fine; an unowned binary is not.")  # fmt: skip
    return [owner, stop_process(c), hunt_persistence(c, name)]


def outbound(c: Ctx) -> list[Action]:
    value = str(c.get("value") or c.subject_value)
    process, _, number = value.rpartition(":")
    port = num(number, 0, 65535) or 0
    return [
        Action(f"See where {process} connects on port {port}", [f"sudo ss -tnp 'dport = :{port}'"],
               "The remote address tells whether this is an update server, a new integration, or a C2 server."),
        block_peer(c, port),
        Action(f"Inspect {process}", [f"ps -o pid,user,args -C {c.q(process)}"],
               "Find which program made the connection and why."),
    ]  # fmt: skip


def block_peer(c: Ctx, port: int) -> Action:
    """Block the remote address, never the port: an outbound port is every program's."""
    sock = c.get("socket")
    sock = sock if isinstance(sock, dict) else {}
    remote = ip(sock.get("remote_address") or c.get("remote_address"))
    proto = proto_of(sock.get("protocol"))
    if remote is None:
        return Action("Block the destination if it is unknown",
                      [f"sudo ss -tnp 'dport = :{port}'" if not c.windows else
                       f"Get-NetTCPConnection -RemotePort {port}"],
                      "Block the remote address the connection goes to (shown by the command),"
                      " never the port: a port rule cuts every program's traffic on it.")  # fmt: skip
    if ipaddress.ip_address(remote).is_loopback:
        return Action(f"Nothing to block: {remote} is this host",
                      [f"sudo ss -tnp 'dport = :{port}'" if not c.windows else
                       f"Get-NetTCPConnection -RemotePort {port}"],
                      "A connection to the loopback address never leaves the machine; look at the"
                      " local listener it talks to instead.")  # fmt: skip
    if c.windows:
        cmds = [f"New-NetFirewallRule -DisplayName 'kefal: block {remote}:{port}' -Direction"
                f" Outbound -RemoteAddress {remote} -RemotePort {port} -Protocol {proto.upper()}"
                " -Action Block"]  # fmt: skip
        how = "Windows Defender Firewall."
    elif c.macos:
        cmds = [f"echo 'block out quick proto {proto} from any to {remote} port {port}'"
                " | sudo tee -a /etc/pf.conf", "sudo pfctl -f /etc/pf.conf && sudo pfctl -e"]
        how = "pf, the macOS packet filter."
    else:
        cmds = [_fw_for(c, port, proto, out_to=remote)]
        how = _FW_WHY.get(c.family, _FW_WHY[""])
    return Action(f"Block {remote} if it is unknown", cmds,
                  f"Cuts a command-and-control or exfiltration channel to {remote} while you"
                  " investigate, and only that one: blocking the port would cut every program's"
                  f" traffic on it. Firewall: {how}")  # fmt: skip


def agent_silent(c: Ctx) -> list[Action]:
    host = c.get("hostname") or "the host"
    return [
        Action(f"Check that {host} is up and reachable", [f"ping -c 3 -- {c.q(host)}", f"ssh -- {c.q(host)} uptime"],
               "A silent agent is either a host that is down or an agent that was stopped."),
        Action("Check the agent service", ["sudo systemctl status kefal-lite-agent",
                                           "sudo journalctl -u kefal-lite-agent --since -1h | tail -50",
                                           "sudo systemctl restart kefal-lite-agent"],
               "Attackers stop monitoring first; an agent killed by hand shows in the journal."),
        Action("Confirm it can reach the server", ["kefal-lite agent once"],
               "Sends one snapshot now; the incident resolves when it arrives."),
    ]  # fmt: skip


def snapshot_replay(c: Ctx) -> list[Action]:
    return [
        Action("Compare the host's clock with the server's", ["timedatectl status", "chronyc tracking 2>/dev/null"],
               "An old timestamp is either a clock that jumped back or a replayed request."),
        Action("Rotate the agent's token", ["# dashboard: Agents -> rotate token, or POST /api/v1/agents/<id>/rotate-token",
                                           "# set SERVER_URL (the dashboard's address) and YOU (your login) on the next lines",
                                           "SERVER_URL=''", "YOU=''",
                                           'test -n "$SERVER_URL" && test -n "$YOU" && sudo kefal-lite agent enroll --server "$SERVER_URL" --username "$YOU"'],
               "If someone captured and replays the agent's requests, a new token makes the old ones worthless."),
        Action("Check the agent's spool", ["sudo ls -l ~root/.local/share/kefal-lite/spool/"],
               "A restored backup of the spool can also resend old snapshots."),
    ]  # fmt: skip


def clock_skew(c: Ctx) -> list[Action]:
    if c.windows:
        sync = ["w32tm /resync", "w32tm /query /status"]
    elif c.macos:
        sync = ["sudo sntp -sS time.apple.com", "sudo systemsetup -setusingnetworktime on"]
    else:
        sync = [
            "sudo timedatectl set-ntp true",
            "sudo systemctl restart systemd-timesyncd 2>/dev/null || sudo systemctl restart chrony",
            "timedatectl status",
        ]
    return [
        Action("Turn on time synchronisation", sync, "Logs and incidents from a host with a wrong clock cannot be correlated."),
        Action("Check the time source is reachable", ["chronyc sources -v 2>/dev/null || timedatectl timesync-status"],
               "NTP blocked at the firewall is the usual cause."),
        Action("Look for manual clock changes", ["sudo journalctl --since -1d | grep -i 'time has been changed' | tail"],
               "Attackers set clocks back to make log timelines misleading."),
    ]  # fmt: skip


def host_rebooted(c: Ctx) -> list[Action]:
    return [
        Action("See why it rebooted", ["last -x reboot shutdown | head -5", "journalctl --list-boots | tail -3",
                                       "sudo journalctl -b -1 -p err | tail -30"],
               "A reboot nobody planned can be a crash, a power cut, or someone loading a new kernel."),
        Action("Check the kernel that is running now", ["uname -r", "ls -lt /boot | head"],
               "A kernel change should match a package update you know about"
               + (f" (it changed from {visible(c.get('previous_kernel'))} to {visible(c.get('kernel'))})."
                  if c.get("kernel_changed") else ".")),
        Action("Confirm services came back", ["systemctl --failed"],
               "After a reboot, failed units are services that are silently down."),
    ]  # fmt: skip


def security_tool_stopped(c: Ctx) -> list[Action]:
    name = c.get("name") or c.subject_value
    unit = {
        "fail2ban-server": "fail2ban",
        "wazuh-agentd": "wazuh-agent",
        "clamd": "clamav-daemon",
    }.get(name, name)
    return [
        Action(f"See why {name} stopped", [f"sudo systemctl status {c.q(unit)}",
                                          f"sudo journalctl -u {c.q(unit)} --since -1h | tail -50"],
               "Stopping the security tools is a common first step of an intrusion."),
        Action("Start it again and keep it enabled", [f"sudo systemctl enable --now {c.q(unit)}"],
               "The next snapshot verifies it runs."),
        review_logins(c),
    ]  # fmt: skip


def high_cpu(c: Ctx) -> list[Action]:
    name = c.get("name") or c.subject_value
    return [
        Action(f"See what {name} is doing", ["top -b -n 1 -o %CPU | head -15", f"ps -o pid,user,etime,args -C {c.q(name)}"],
               "Hours at full CPU is either a runaway job or a miner under an innocent name."),
        Action("Cap it while you investigate", [f"sudo renice 19 -p $(pgrep -x -- {c.q(name)})",
                                               f"UNIT=$(systemctl status $(pgrep -x -- {c.q(name)} | head -1) 2>/dev/null | awk 'NR==1{{print $2}}')"
                                               ' && test -n "$UNIT" && sudo systemctl set-property -- "$UNIT" CPUQuota=50%'],
               "Keeps the host responsive without losing the process state."),
        stop_process(c),
    ]  # fmt: skip


def count_spike(c: Ctx) -> list[Action]:
    return [
        Action("See which program multiplied", ["ps -eo comm= | sort | uniq -c | sort -rn | head -10"],
               "A fork bomb or a runaway worker pool shows as one name with a huge count."),
        Action("Stop the runaway program", [
            "NAME=$(ps -eo comm= | sort | uniq -c | sort -rn | awk 'NR==1{print $2}') && echo \"$NAME\"",
            "# the next line kills every process of that name: check it is the runaway first",
            'test -n "$NAME" && sudo pkill -x -- "$NAME"'],
               "Frees process slots before the host stops accepting new ones."),
        Action("Limit tasks per service", [
            "UNIT=$(systemctl status $(pgrep -x -- \"$NAME\" | head -1) 2>/dev/null | awk 'NR==1{print $2}')"
            ' && test -n "$UNIT" && sudo systemctl set-property -- "$UNIT" TasksMax=512',
                                           "# per user: add '* hard nproc 4096' to /etc/security/limits.conf"],
               "Stops the next runaway from taking the host down."),
    ]  # fmt: skip


BY_INVARIANT: dict[str, Template] = {
    "database_exposed": database_exposed,
    "control_plane_exposed": control_plane_exposed,
    "cleartext_remote_access": cleartext_remote_access,
    "remote_desktop_exposed": remote_desktop_exposed,
    "ssh_port_masquerade": ssh_port_masquerade,
    "database_running_as_root": database_running_as_root,
    "root_process_in_writable_path": malicious_process,
    "uid0_duplicate": uid0_duplicate,
    "new_admin_account": admin_account,
    "process_in_suspicious_path": malicious_process,
    "crypto_miner": malicious_process,
    "reverse_shell": malicious_process,
    "shell_listening": lambda c: [
        inspect_process(c),
        stop_process(c),
        firewall_block(c, *_port(c)),
    ],
    "offensive_tool_running": lambda c: [inspect_process(c), stop_process(c), review_logins(c)],
    "tunneling_tool_running": malicious_process,
    "deleted_binary_running": malicious_process,
    "kernel_thread_masquerade": malicious_process,
    "root_login": root_login,
    "new_login_user": login_user,
    "new_ssh_authorized_key": authorized_key,
    "system_account_login": system_account_login,
    "new_listening_port": new_port,
    "new_listening_process": new_process_generic,
    "new_root_process": new_process_generic,
    "novel_outbound_connection": outbound,
    "agent_silent": agent_silent,
    "snapshot_replay": snapshot_replay,
    "clock_skew": clock_skew,
    "host_rebooted": host_rebooted,
    "security_tool_stopped": security_tool_stopped,
    "sustained_high_cpu": high_cpu,
    "process_count_spike": count_spike,
}

# Contributed invariants: one generic template per predicate kind.
BY_KIND: dict[type, Template] = {
    p.ProcessInSuspiciousPath: malicious_process,
    p.ProcessNameIn: malicious_process,
    p.ProcessCmdlineContains: malicious_process,
    p.ProcessExeDeleted: malicious_process,
    p.ProcessMasqueradesKernelThread: malicious_process,
    p.PortExposed: lambda c: [
        Action(
            "Rebind the service to localhost",
            ["# set the service's bind/listen address to 127.0.0.1, then restart it"],
            "Only processes on this host then reach it.",
        ),
        firewall_block(c, *_port(c)),
        listen_check(c, *_port(c)),
    ],  # fmt: skip
    p.PortListening: new_port,
    p.PortOwnerNotIn: ssh_port_masquerade,
    p.PortOwnerIn: lambda c: [inspect_process(c), stop_process(c), firewall_block(c, *_port(c))],
    p.LoggedInUserIn: login_user,
    p.SystemAccountLogin: system_account_login,
    p.Uid0NotRoot: uid0_duplicate,
    p.NovelValue: new_process_generic,
    p.AgentSilent: agent_silent,
    p.TimestampNotMonotonic: snapshot_replay,
    p.ClockSkew: clock_skew,
    p.UptimeDecreased: host_rebooted,
    p.ProcessDisappeared: security_tool_stopped,
    p.SustainedCpu: high_cpu,
    p.ProcessCountSpike: count_spike,
}
_NOVEL_BY_FIELD: dict[str, Template] = {
    "listening_ports": new_port,
    "listening_processes": new_process_generic,
    "root_processes": new_process_generic,
    "logged_in_users": login_user,
    "admin_accounts": admin_account,
    "authorized_keys": authorized_key,
    "outbound_peers": outbound,
}


def family_of(os: str) -> str:
    """The Linux family named in a snapshot's os string ("" for a bare "linux")."""
    text = os.lower()
    if any(w in text for w in ("debian", "ubuntu", "mint", "raspbian")):
        return "debian"
    if any(w in text for w in ("rhel", "red hat", "fedora", "rocky", "alma", "centos", "oracle")):
        return "rhel"
    return "" if text in ("linux", "darwin", "windows", "") else "other"


def render(invariant: Invariant, subject: str, evidence: dict[str, Any], os: str) -> list[Action]:
    """Exactly three actions for this incident on this OS."""
    ctx = Ctx(invariant, subject, evidence, os if os in ("linux", "darwin", "windows") else "linux",
              family_of(os))
    template = BY_INVARIANT.get(invariant.id) if invariant.source == "builtin" else None
    if template is None:
        leaf = p.leaves(invariant.predicate)[0]
        if isinstance(leaf, p.NovelValue):
            template = _NOVEL_BY_FIELD[leaf.params.field]
        else:
            template = BY_KIND[type(leaf)]
    actions = template(ctx)
    assert len(actions) == 3, invariant.id
    return actions


# The core pack's kinds and fields (detect/packs.py), on the generic templates.
BY_KIND.update({kind: malicious_process for kind in (
    p.ProcessExeSuspicious, p.ProcessNameMismatch, p.ProcessOutbound, p.ProcessParentIn,
    p.CpuWithConnection, p.ProcessCmdlineAll, p.DestructiveCommand,
    p.ServiceAccountDiscovery, p.CredentialGuessing)})  # fmt: skip
_NOVEL_BY_FIELD.update(dict.fromkeys(("accounts", "login_accounts", "privileged_accounts"),
                                     login_user))  # fmt: skip

# The mcp pack (detect/packs.py): the config entry to change, in remediate/mcp.py.
from kefal_lite.remediate import mcp as _mcp  # noqa: E402 - it builds on this module

BY_KIND.update({p.McpShellAccess: _mcp.shell_access, p.McpBroadScope: _mcp.broad_scope,
                p.McpInlineSecret: _mcp.inline_secret})  # fmt: skip
_NOVEL_BY_FIELD["mcp_servers"] = _mcp.new_server
