"""Write the benign corpus: src/kefal_lite/detect/corpus/<host>.json.

    python scripts/make_corpus.py

Each file is a list of consecutive snapshots (one a minute) of an ordinary host,
modelled on what `ps`, `ss -tulpn`, `who` and /etc/passwd show on such machines.
Only the volatile parts change between snapshots (CPU, worker pids, uptime, the
ephemeral side of connections); a transient root job would be a true novelty.
The files are committed; this script documents how they were made.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "src" / "kefal_lite" / "detect" / "corpus"
SNAPSHOTS = 6
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

KTHREADS = [
    "kthreadd", "rcu_gp", "rcu_par_gp", "slub_flushwq", "netns", "kworker/0:0H-events_highpri",
    "mm_percpu_wq", "rcu_tasks_kthread", "ksoftirqd/0", "rcu_preempt", "migration/0",
    "cpuhp/0", "cpuhp/1", "migration/1", "ksoftirqd/1", "kworker/1:0H-events_highpri",
    "kdevtmpfs", "inet_frag_wq", "kauditd", "khungtaskd", "oom_reaper", "writeback",
    "kcompactd0", "ksmd", "khugepaged", "kintegrityd", "kblockd", "blkcg_punt_bio",
    "kswapd0", "ecryptfs-kthread", "kthrotld", "jbd2/sda1-8", "ext4-rsv-conver",
    "kworker/u4:1-events_unbound", "kworker/0:1-events", "kworker/1:2-cgroup_destroy",
]  # fmt: skip

BASE = [
    ("systemd", "root", "/usr/lib/systemd/systemd", "/sbin/init splash"),
    ("systemd-journald", "root", "/usr/lib/systemd/systemd-journald", ""),
    ("systemd-udevd", "root", "/usr/bin/udevadm", "/lib/systemd/systemd-udevd"),
    ("systemd-networkd", "systemd-network", "/usr/lib/systemd/systemd-networkd", ""),
    ("systemd-resolved", "systemd-resolve", "/usr/lib/systemd/systemd-resolved", ""),
    ("systemd-timesyncd", "systemd-timesync", "/usr/lib/systemd/systemd-timesyncd", ""),
    ("systemd-logind", "root", "/usr/lib/systemd/systemd-logind", ""),
    ("dbus-daemon", "messagebus", "/usr/bin/dbus-daemon",
     "@dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation"),
    ("cron", "root", "/usr/sbin/cron", "/usr/sbin/cron -f -P"),
    ("rsyslogd", "syslog", "/usr/sbin/rsyslogd", "/usr/sbin/rsyslogd -n -iNONE"),
    ("agetty", "root", "/usr/sbin/agetty", "/sbin/agetty -o -p -- \\u --noclear tty1 linux"),
    ("kefal-lite", "root", "/usr/bin/python3.11", "/usr/bin/python3 /usr/local/bin/kefal-lite agent run"),
]  # fmt: skip

SSHD = ("sshd", "root", "/usr/sbin/sshd", "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups")


def session(user: str) -> list[tuple[str, str, str, str]]:
    return [
        ("sshd", "root", "/usr/sbin/sshd", f"sshd: {user} [priv]"),
        ("sshd", user, "/usr/sbin/sshd", f"sshd: {user}@pts/0"),
        ("systemd", user, "/usr/lib/systemd/systemd", "/lib/systemd/systemd --user"),
        ("(sd-pam)", user, "/usr/lib/systemd/systemd", "(sd-pam)"),
        ("bash", user, "/usr/bin/bash", "-bash"),
        ("tmux: server", user, "/usr/bin/tmux", "tmux new -s main"),
    ]


def human(name: str, uid: int, groups: list[str]) -> dict[str, Any]:
    return {"name": name, "uid": uid, "groups": groups, "shell": "/bin/bash"}


SYSTEM_USERS = [
    {"name": "root", "uid": 0, "groups": ["root"], "shell": "/bin/bash"},
    {"name": "daemon", "uid": 1, "groups": ["daemon"], "shell": "/usr/sbin/nologin"},
    {"name": "www-data", "uid": 33, "groups": ["www-data"], "shell": "/usr/sbin/nologin"},
    {"name": "messagebus", "uid": 101, "groups": ["messagebus"], "shell": "/usr/sbin/nologin"},
    {"name": "systemd-network", "uid": 998, "groups": ["systemd-network"], "shell": "/usr/sbin/nologin"},
    {"name": "systemd-resolve", "uid": 997, "groups": ["systemd-resolve"], "shell": "/usr/sbin/nologin"},
    {"name": "syslog", "uid": 104, "groups": ["syslog", "adm"], "shell": "/usr/sbin/nologin"},
    {"name": "sshd", "uid": 105, "groups": ["nogroup"], "shell": "/usr/sbin/nologin"},
]  # fmt: skip


def key(user: str, n: int, comment: str) -> dict[str, str]:
    rnd = random.Random(f"{user}{n}")
    body = "".join(rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
                   for _ in range(43))  # fmt: skip
    return {"user": user, "fingerprint": f"SHA256:{body}", "comment": comment}


def listen(port: int, process: str, address: str = "0.0.0.0", protocol: str = "tcp") -> dict[str, Any]:
    return {"port": port, "protocol": protocol, "process": process, "address": address}


HOSTS: dict[str, dict[str, Any]] = {
    "ubuntu-web": {
        "hostname": "web-01", "kernel": "6.8.0-49-generic", "ips": ["192.168.1.20", "fe80::5054:ff:fe12:3456"],
        "procs": [*BASE, SSHD,
                  ("nginx", "root", "/usr/sbin/nginx", "nginx: master process /usr/sbin/nginx -g daemon on; master_process on;"),
                  *[("nginx", "www-data", "/usr/sbin/nginx", "nginx: worker process")] * 2,
                  ("postgres", "postgres", "/usr/lib/postgresql/16/bin/postgres", "/usr/lib/postgresql/16/bin/postgres -D /var/lib/postgresql/16/main -c config_file=/etc/postgresql/16/main/postgresql.conf"),
                  *[("postgres", "postgres", "/usr/lib/postgresql/16/bin/postgres", f"postgres: 16/main: {w}") for w in ("checkpointer", "background writer", "walwriter", "autovacuum launcher", "logical replication launcher")],
                  ("gunicorn", "www-data", "/usr/bin/python3.11", "/srv/app/venv/bin/python /srv/app/venv/bin/gunicorn app:app -b 127.0.0.1:8000 -w 3"),
                  *[("gunicorn", "www-data", "/usr/bin/python3.11", "/srv/app/venv/bin/python /srv/app/venv/bin/gunicorn app:app -b 127.0.0.1:8000 -w 3")] * 3,
                  ("fail2ban-server", "root", "/usr/bin/python3.11", "/usr/bin/python3 /usr/bin/fail2ban-server -xf start"),
                  ("unattended-upgr", "root", "/usr/bin/python3.11", "/usr/bin/python3 /usr/share/unattended-upgrades/unattended-upgrade-shutdown --wait-for-signal"),
                  ("snapd", "root", "/usr/lib/snapd/snapd", "/usr/lib/snapd/snapd"),
                  ("multipathd", "root", "/usr/sbin/multipathd", "/sbin/multipathd -d -s"),
                  ("polkitd", "polkitd", "/usr/libexec/polkitd", "/usr/libexec/polkitd --no-debug"),
                  *session("deploy")],
        "ports": [listen(22, "sshd"), listen(22, "sshd", "::"), listen(80, "nginx"), listen(443, "nginx"),
                  listen(80, "nginx", "::"), listen(443, "nginx", "::"), listen(5432, "postgres", "127.0.0.1"),
                  listen(5432, "postgres", "::1"), listen(8000, "gunicorn", "127.0.0.1"),
                  listen(53, "systemd-resolved", "127.0.0.53"), listen(53, "systemd-resolved", "127.0.0.53", "udp"),
                  listen(53, "systemd-resolved", "127.0.0.54"), listen(68, "systemd-networkd", "192.168.1.20", "udp"),
                  listen(323, "chronyd", "127.0.0.1", "udp"), listen(323, "chronyd", "::1", "udp")],
        "logged_in": ["deploy"],
        "users": [*SYSTEM_USERS, {"name": "postgres", "uid": 113, "groups": ["postgres", "ssl-cert"], "shell": "/bin/bash"},
                  human("deploy", 1000, ["deploy", "sudo", "adm"])],
        "keys": [key("deploy", 1, "deploy@laptop"), key("deploy", 2, "ci@gitlab")],
        "conns": [("gunicorn", "127.0.0.1", 5432), ("unattended-upgr", "91.189.91.81", 443),
                  ("nginx", "127.0.0.1", 8000)],
    },
    "docker-host": {
        "hostname": "docker-01", "kernel": "6.1.0-27-amd64", "ips": ["10.0.0.12", "172.17.0.1", "172.18.0.1"],
        "procs": [*BASE, SSHD,
                  ("dockerd", "root", "/usr/bin/dockerd", "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock"),
                  ("containerd", "root", "/usr/bin/containerd", "/usr/bin/containerd"),
                  *[("containerd-shim-runc-v2", "root", "/usr/bin/containerd-shim-runc-v2", f"/usr/bin/containerd-shim-runc-v2 -namespace moby -id {i:064x} -address /run/containerd/containerd.sock") for i in range(5)],
                  ("docker-proxy", "root", "/usr/bin/docker-proxy", "/usr/bin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 443 -container-ip 172.18.0.2 -container-port 443"),
                  ("docker-proxy", "root", "/usr/bin/docker-proxy", "/usr/bin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 80 -container-ip 172.18.0.2 -container-port 80"),
                  ("docker-proxy", "root", "/usr/bin/docker-proxy", "/usr/bin/docker-proxy -proto tcp -host-ip 127.0.0.1 -host-port 5432 -container-ip 172.18.0.3 -container-port 5432"),
                  ("traefik", "root", "/usr/local/bin/traefik", "traefik --providers.docker=true --entrypoints.websecure.address=:443"),
                  ("postgres", "999", "/usr/lib/postgresql/15/bin/postgres", "postgres"),
                  *[("postgres", "999", "/usr/lib/postgresql/15/bin/postgres", f"postgres: {w}") for w in ("checkpointer", "background writer", "walwriter")],
                  ("node", "1000", "/usr/local/bin/node", "node /app/server.js"),
                  ("redis-server", "999", "/usr/local/bin/redis-server", "redis-server *:6379"),
                  ("gitea", "1000", "/usr/local/bin/gitea", "/usr/local/bin/gitea web"),
                  ("auditd", "root", "/usr/sbin/auditd", "/sbin/auditd"),
                  *session("ops")],
        "ports": [listen(22, "sshd"), listen(80, "docker-proxy"), listen(443, "docker-proxy"),
                  listen(5432, "docker-proxy", "127.0.0.1"), listen(53, "systemd-resolved", "127.0.0.53"),
                  listen(68, "dhclient", "10.0.0.12", "udp")],
        "logged_in": ["ops"],
        "users": [*SYSTEM_USERS, human("ops", 1000, ["ops", "sudo", "docker"])],
        "keys": [key("ops", 1, "ops@workstation")],
        "conns": [("dockerd", "104.18.123.25", 443)],
    },
    "proxmox-node": {
        "hostname": "pve1", "kernel": "6.8.12-4-pve", "ips": ["192.168.10.2", "10.10.10.2"],
        "procs": [*BASE, SSHD,
                  ("pmxcfs", "root", "/usr/bin/pmxcfs", "/usr/bin/pmxcfs"),
                  ("corosync", "root", "/usr/sbin/corosync", "/usr/sbin/corosync -f"),
                  ("pvedaemon", "root", "/usr/bin/perl", "pvedaemon"),
                  *[("pvedaemon worker", "root", "/usr/bin/perl", "pvedaemon worker")] * 3,
                  ("pveproxy", "www-data", "/usr/bin/perl", "pveproxy"),
                  *[("pveproxy worker", "www-data", "/usr/bin/perl", "pveproxy worker")] * 3,
                  ("spiceproxy", "www-data", "/usr/bin/perl", "spiceproxy"),
                  ("pvestatd", "root", "/usr/bin/perl", "pvestatd"),
                  ("pve-firewall", "root", "/usr/bin/perl", "pve-firewall"),
                  ("pve-ha-lrm", "root", "/usr/bin/perl", "pve-ha-lrm"),
                  ("pve-ha-crm", "root", "/usr/bin/perl", "pve-ha-crm"),
                  ("qemu-system-x86_64", "root", "/usr/bin/qemu-system-x86_64", "/usr/bin/kvm -id 100 -name homeassistant -vnc unix:/var/run/qemu-server/100.vnc,password=on"),
                  ("qemu-system-x86_64", "root", "/usr/bin/qemu-system-x86_64", "/usr/bin/kvm -id 101 -name nextcloud -vnc unix:/var/run/qemu-server/101.vnc,password=on"),
                  ("lxc-monitord", "root", "/usr/libexec/lxc/lxc-monitord", "/usr/libexec/lxc/lxc-monitord --daemon"),
                  ("zed", "root", "/usr/sbin/zed", "/usr/sbin/zed -F"),
                  ("chronyd", "_chrony", "/usr/sbin/chronyd", "/usr/sbin/chronyd -F 1"),
                  ("master", "root", "/usr/lib/postfix/sbin/master", "/usr/lib/postfix/sbin/master -w"),
                  ("qmgr", "postfix", "/usr/lib/postfix/sbin/qmgr", "qmgr -l -t unix -u"),
                  ("rpcbind", "_rpc", "/usr/sbin/rpcbind", "/sbin/rpcbind -f -w")],
        "ports": [listen(22, "sshd"), listen(8006, "pveproxy"), listen(3128, "spiceproxy"),
                  listen(111, "rpcbind"), listen(111, "rpcbind", "0.0.0.0", "udp"), listen(25, "master", "127.0.0.1"),
                  listen(85, "pvedaemon", "127.0.0.1"), listen(5405, "corosync", "10.10.10.2", "udp"),
                  listen(323, "chronyd", "127.0.0.1", "udp")],
        "logged_in": [],
        "users": [*SYSTEM_USERS, {"name": "postfix", "uid": 106, "groups": ["postfix"], "shell": "/usr/sbin/nologin"}],
        "keys": [key("root", 1, "root@pve1"), key("root", 2, "admin@desk")],
        "conns": [("corosync", "10.10.10.3", 5405), ("pvestatd", "192.168.10.5", 2049)],
    },
    "raspberry-pi-homeassistant": {
        "hostname": "homeassistant", "kernel": "6.6.51+rpt-rpi-v8", "ips": ["192.168.1.50"],
        "procs": [*BASE, SSHD,
                  ("dockerd", "root", "/usr/bin/dockerd", "/usr/bin/dockerd -H fd://"),
                  ("containerd", "root", "/usr/bin/containerd", "/usr/bin/containerd"),
                  ("python3", "root", "/usr/local/bin/python3.12", "python3 -m homeassistant --config /config"),
                  ("mosquitto", "1883", "/usr/sbin/mosquitto", "/usr/sbin/mosquitto -c /mosquitto/config/mosquitto.conf"),
                  ("node", "root", "/usr/local/bin/node", "node index.js"),
                  ("avahi-daemon", "avahi", "/usr/sbin/avahi-daemon", "avahi-daemon: running [homeassistant.local]"),
                  ("bluetoothd", "root", "/usr/libexec/bluetooth/bluetoothd", "/usr/libexec/bluetooth/bluetoothd"),
                  ("wpa_supplicant", "root", "/usr/sbin/wpa_supplicant", "/sbin/wpa_supplicant -u -s -O /run/wpa_supplicant"),
                  ("NetworkManager", "root", "/usr/sbin/NetworkManager", "/usr/sbin/NetworkManager --no-daemon")],
        "ports": [listen(22, "sshd"), listen(8123, "python3"), listen(1883, "mosquitto"),
                  listen(8080, "node"), listen(5353, "avahi-daemon", "0.0.0.0", "udp")],
        "logged_in": [],
        "users": [*SYSTEM_USERS, human("pi", 1000, ["pi", "sudo", "gpio", "i2c", "docker"])],
        "keys": [key("pi", 1, "me@phone")],
        "conns": [("python3", "192.168.1.60", 80), ("python3", "54.154.51.126", 443)],
    },
    "dev-laptop": {
        "hostname": "ada-thinkpad", "kernel": "6.11.0-9-generic", "ips": ["192.168.1.77"],
        "procs": [*BASE,
                  ("gdm3", "root", "/usr/sbin/gdm3", "/usr/sbin/gdm3"),
                  ("gnome-shell", "ada", "/usr/bin/gnome-shell", "/usr/bin/gnome-shell"),
                  ("Xwayland", "ada", "/usr/bin/Xwayland", "/usr/bin/Xwayland :0 -rootless"),
                  ("pipewire", "ada", "/usr/bin/pipewire", "/usr/bin/pipewire"),
                  ("wireplumber", "ada", "/usr/bin/wireplumber", "/usr/bin/wireplumber"),
                  ("firefox", "ada", "/snap/firefox/5187/usr/lib/firefox/firefox", "/snap/firefox/5187/usr/lib/firefox/firefox"),
                  *[("Isolated Web Co", "ada", "/snap/firefox/5187/usr/lib/firefox/firefox", "/snap/firefox/5187/usr/lib/firefox/firefox -contentproc -isForBrowser")] * 6,
                  ("code", "ada", "/usr/share/code/code", "/usr/share/code/code --type=zygote"),
                  *[("code", "ada", "/usr/share/code/code", "/usr/share/code/code --type=renderer")] * 4,
                  ("node", "ada", "/home/ada/.nvm/versions/node/v22.11.0/bin/node", "node /home/ada/src/shop/node_modules/.bin/vite --port 5173"),
                  ("postgres", "postgres", "/usr/lib/postgresql/16/bin/postgres", "/usr/lib/postgresql/16/bin/postgres -D /var/lib/postgresql/16/main"),
                  ("cupsd", "root", "/usr/sbin/cupsd", "/usr/sbin/cupsd -l"),
                  ("NetworkManager", "root", "/usr/sbin/NetworkManager", "/usr/sbin/NetworkManager --no-daemon"),
                  ("tailscaled", "root", "/usr/sbin/tailscaled", "/usr/sbin/tailscaled --state=/var/lib/tailscale/tailscaled.state"),
                  ("bash", "ada", "/usr/bin/bash", "bash"),
                  ("gnome-terminal-", "ada", "/usr/libexec/gnome-terminal-server", "/usr/libexec/gnome-terminal-server")],
        "ports": [listen(5173, "node", "127.0.0.1"), listen(5432, "postgres", "127.0.0.1"),
                  listen(631, "cupsd", "127.0.0.1"), listen(631, "cupsd", "::1"),
                  listen(41641, "tailscaled", "0.0.0.0", "udp"), listen(53, "systemd-resolved", "127.0.0.53")],
        "logged_in": ["ada"],
        "users": [*SYSTEM_USERS, human("ada", 1000, ["ada", "sudo", "adm", "lpadmin", "docker"])],
        "keys": [],
        "conns": [("firefox", "140.82.121.4", 443), ("code", "13.107.5.93", 443), ("tailscaled", "100.64.0.1", 443)],
    },
    "mail-server": {
        "hostname": "mx1", "kernel": "6.1.0-27-amd64", "ips": ["203.0.113.25", "2001:db8::25"],
        "procs": [*BASE, SSHD,
                  ("master", "root", "/usr/lib/postfix/sbin/master", "/usr/lib/postfix/sbin/master -w"),
                  ("qmgr", "postfix", "/usr/lib/postfix/sbin/qmgr", "qmgr -l -t unix -u"),
                  ("pickup", "postfix", "/usr/lib/postfix/sbin/pickup", "pickup -l -t unix -u -c"),
                  ("tlsmgr", "postfix", "/usr/lib/postfix/sbin/tlsmgr", "tlsmgr -l -t unix -u -c"),
                  ("dovecot", "root", "/usr/sbin/dovecot", "/usr/sbin/dovecot -F"),
                  ("anvil", "dovenull", "/usr/lib/dovecot/anvil", "dovecot/anvil"),
                  ("log", "root", "/usr/lib/dovecot/log", "dovecot/log"),
                  ("config", "root", "/usr/lib/dovecot/config", "dovecot/config"),
                  ("imap-login", "dovenull", "/usr/lib/dovecot/imap-login", "dovecot/imap-login"),
                  ("rspamd", "_rspamd", "/usr/bin/rspamd", "rspamd: main process"),
                  *[("rspamd", "_rspamd", "/usr/bin/rspamd", f"rspamd: {w} process") for w in ("rspamd_proxy", "controller", "normal")],
                  ("redis-server", "redis", "/usr/bin/redis-server", "/usr/bin/redis-server 127.0.0.1:6379"),
                  ("opendkim", "opendkim", "/usr/sbin/opendkim", "/usr/sbin/opendkim -P /run/opendkim/opendkim.pid -p local:/var/spool/postfix/opendkim/opendkim.sock"),
                  ("clamd", "clamav", "/usr/sbin/clamd", "/usr/sbin/clamd --foreground=true"),
                  ("freshclam", "clamav", "/usr/bin/freshclam", "/usr/bin/freshclam -d --foreground=true"),
                  ("fail2ban-server", "root", "/usr/bin/python3.11", "/usr/bin/python3 /usr/bin/fail2ban-server -xf start"),
                  ("nginx", "root", "/usr/sbin/nginx", "nginx: master process /usr/sbin/nginx"),
                  ("nginx", "www-data", "/usr/sbin/nginx", "nginx: worker process")],
        "ports": [listen(22, "sshd"), listen(25, "master"), listen(465, "master"), listen(587, "master"),
                  listen(25, "master", "::"), listen(143, "dovecot"), listen(993, "dovecot"), listen(4190, "dovecot"),
                  listen(80, "nginx"), listen(443, "nginx"), listen(11332, "rspamd", "127.0.0.1"),
                  listen(11334, "rspamd", "127.0.0.1"), listen(6379, "redis-server", "127.0.0.1"),
                  listen(3310, "clamd", "127.0.0.1")],
        "logged_in": [],
        "users": [*SYSTEM_USERS, {"name": "postfix", "uid": 106, "groups": ["postfix"], "shell": "/usr/sbin/nologin"},
                  {"name": "clamav", "uid": 110, "groups": ["clamav"], "shell": "/bin/false"},
                  human("admin", 1000, ["admin", "sudo"])],
        "keys": [key("admin", 1, "admin@office")],
        "conns": [("master", "142.250.102.27", 25), ("freshclam", "104.16.218.84", 443), ("rspamd", "127.0.0.1", 6379)],
    },
    "nas": {
        "hostname": "nas", "kernel": "6.6.44-production+truenas", "ips": ["192.168.1.10"],
        "procs": [*BASE, SSHD,
                  ("smbd", "root", "/usr/sbin/smbd", "/usr/sbin/smbd --foreground --no-process-group"),
                  *[("smbd", "root", "/usr/sbin/smbd", f"smbd: {w}") for w in ("notifyd", "cleanupd", "client [192.168.1.77]")],
                  ("nmbd", "root", "/usr/sbin/nmbd", "/usr/sbin/nmbd --foreground --no-process-group"),
                  ("rpcbind", "_rpc", "/usr/sbin/rpcbind", "/sbin/rpcbind -f -w"),
                  ("rpc.mountd", "root", "/usr/sbin/rpc.mountd", "/usr/sbin/rpc.mountd"),
                  ("rpc.statd", "statd", "/usr/sbin/rpc.statd", "/sbin/rpc.statd"),
                  ("middlewared", "root", "/usr/bin/python3.11", "middlewared"),
                  *[("middlewared (wo", "root", "/usr/bin/python3.11", "middlewared (worker)")] * 2,
                  ("nginx", "root", "/usr/sbin/nginx", "nginx: master process /usr/sbin/nginx"),
                  ("nginx", "www-data", "/usr/sbin/nginx", "nginx: worker process"),
                  ("avahi-daemon", "avahi", "/usr/sbin/avahi-daemon", "avahi-daemon: running [nas.local]"),
                  ("zed", "root", "/usr/sbin/zed", "/usr/sbin/zed -F"),
                  ("minidlnad", "minidlna", "/usr/sbin/minidlnad", "/usr/sbin/minidlnad -f /etc/minidlna.conf -P /run/minidlna/minidlna.pid -S"),
                  ("chronyd", "_chrony", "/usr/sbin/chronyd", "/usr/sbin/chronyd -F 1")],
        "ports": [listen(22, "sshd"), listen(445, "smbd"), listen(139, "smbd"), listen(137, "nmbd", "0.0.0.0", "udp"),
                  listen(138, "nmbd", "0.0.0.0", "udp"), listen(111, "rpcbind"), listen(2049, "rpc.mountd"),
                  listen(20048, "rpc.mountd"), listen(80, "nginx"), listen(443, "nginx"),
                  listen(8200, "minidlnad"), listen(5353, "avahi-daemon", "0.0.0.0", "udp"),
                  listen(6000, "middlewared", "127.0.0.1")],
        "logged_in": [],
        "users": [*SYSTEM_USERS, human("truenas_admin", 950, ["builtin_administrators"]),
                  human("media", 3000, ["media"])],
        "keys": [key("truenas_admin", 1, "backup@pve1")],
        "conns": [("middlewared", "104.18.8.42", 443)],
    },
    "vps-nextcloud": {
        "hostname": "cloud.example.net", "kernel": "6.8.0-48-generic", "ips": ["198.51.100.7", "10.8.0.1"],
        "procs": [*BASE, SSHD,
                  ("caddy", "caddy", "/usr/bin/caddy", "/usr/bin/caddy run --environ --config /etc/caddy/Caddyfile"),
                  ("php-fpm8.3", "root", "/usr/sbin/php-fpm8.3", "php-fpm: master process (/etc/php/8.3/fpm/php-fpm.conf)"),
                  *[("php-fpm8.3", "www-data", "/usr/sbin/php-fpm8.3", "php-fpm: pool www")] * 4,
                  ("mariadbd", "mysql", "/usr/sbin/mariadbd", "/usr/sbin/mariadbd"),
                  ("redis-server", "redis", "/usr/bin/redis-server", "/usr/bin/redis-server 127.0.0.1:6379"),
                  ("crowdsec", "root", "/usr/bin/crowdsec", "/usr/bin/crowdsec -c /etc/crowdsec/config.yaml"),
                  ("crowdsec-firewa", "root", "/usr/bin/crowdsec-firewall-bouncer", "/usr/bin/crowdsec-firewall-bouncer -c /etc/crowdsec/bouncers/crowdsec-firewall-bouncer.yaml"),
                  *session("noah")],
        "ports": [listen(22, "sshd"), listen(80, "caddy"), listen(443, "caddy"), listen(443, "caddy", "0.0.0.0", "udp"),
                  listen(3306, "mariadbd", "127.0.0.1"), listen(6379, "redis-server", "127.0.0.1"),
                  listen(8080, "crowdsec", "127.0.0.1"), listen(51820, None, "0.0.0.0", "udp"),
                  listen(2019, "caddy", "127.0.0.1"), listen(9000, "php-fpm8.3", "127.0.0.1")],
        "logged_in": ["noah"],
        "users": [*SYSTEM_USERS, {"name": "mysql", "uid": 112, "groups": ["mysql"], "shell": "/bin/false"},
                  human("noah", 1000, ["noah", "sudo"])],
        "keys": [key("noah", 1, "noah@desktop"), key("noah", 2, "noah@phone")],
        "conns": [("php-fpm8.3", "127.0.0.1", 3306), ("crowdsec", "52.51.112.45", 443), ("caddy", "127.0.0.1", 9000)],
    },
}  # fmt: skip


def build(slug: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
    rnd = random.Random(slug)
    agent_id = f"corpus-{slug}"
    snapshots = []
    uptime = rnd.randint(3, 90) * 86400 + rnd.randint(0, 86399)
    for i in range(SNAPSHOTS):
        pid = 1
        processes = []
        # pid 2 is kthreadd; kernel threads are its children
        for name in KTHREADS:
            kpid = 2 if name == "kthreadd" else 3 + KTHREADS.index(name)
            processes.append({"pid": kpid, "name": name, "user": "root", "cpu_percent": 0.0,
                              "exe": None, "cmdline": "", "ppid": 0 if kpid == 2 else 2})  # fmt: skip
        pid = 400
        for name, user, exe, cmd in spec["procs"]:
            pid += rnd.randint(1, 40)
            cpu = round(rnd.choice([0.0, 0.0, 0.1, 0.3, 1.2, 2.5, 7.0]) * (1 + i % 3), 1)
            processes.append({"pid": 1 if name == "systemd" and user == "root" else pid, "name": name,
                              "user": user, "cpu_percent": cpu, "exe": exe, "cmdline": cmd or name,
                              "ppid": 1})  # fmt: skip
        by_name = {p["name"]: p["pid"] for p in processes}
        ports = [dict(lp, pid=by_name.get(lp["process"])) for lp in spec["ports"]]
        conns = [{"protocol": "tcp", "local_port": 32768 + rnd.randint(0, 28000), "remote_address": ip,
                  "remote_port": port, "process": proc, "state": "ESTABLISHED"}
                 for proc, ip, port in spec["conns"]]  # fmt: skip
        snapshots.append({
            "agent_id": agent_id,
            "timestamp": (START + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "hostname": spec["hostname"], "os": "linux", "kernel": spec["kernel"],
            "uptime_seconds": uptime + 60 * i, "ip_addresses": spec["ips"],
            "processes": processes, "listening_ports": ports,
            "logged_in_users": spec["logged_in"], "connections": conns,
            "users": spec["users"], "ssh_authorized_keys": spec["keys"],
            "agent_version": "0.1.0",
        })  # fmt: skip
    return snapshots


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for slug, spec in HOSTS.items():
        path = OUT / f"{slug}.json"
        path.write_text(json.dumps(build(slug, spec), indent=1) + "\n")
        print(f"wrote {path} ({len(spec['procs']) + len(KTHREADS)} processes)")


if __name__ == "__main__":
    main()
