"""Detection that generalises: each behaviour the corpus report showed missed or noisy,
with the benign look-alike it was checked against. Every case here failed before."""

from __future__ import annotations

from typing import Any

from kefal_lite.detect.model import SEVERITY_RANK, Finding
from tests.builders import proc, snap
from tests.helpers.engine import findings_of, learned, outbound, persisting, run_packs


def loud(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if SEVERITY_RANK[f.severity] >= SEVERITY_RANK["medium"]]


def cron_job(*children: dict[str, Any]) -> list[dict[str, Any]]:
    """cron -> sh -> run-parts -> the job's processes (each child's ppid is run-parts)."""
    return [proc("cron", pid=1200, exe="/usr/sbin/cron", cmdline="/usr/sbin/CRON -f"),
            proc("sh", pid=1201, ppid=1200, exe="/usr/bin/dash",
                 cmdline="/bin/sh -c run-parts --report /etc/cron.daily"),
            proc("run-parts", pid=1202, ppid=1201, cmdline="run-parts --report /etc/cron.daily"),
            *children]  # fmt: skip


SUID_HUNT = "find / -xdev -perm -4000 -type f"


def test_suid_hunt_from_a_cron_security_job_is_a_notice_with_its_parent() -> None:
    job = proc("find", pid=1203, ppid=1202, cmdline=SUID_HUNT)
    [hit] = findings_of("privesc_enumeration", run_packs([snap(0, add_processes=cron_job(job))]))
    assert hit.severity == "low"
    assert "run-parts" in hit.evidence["benign"][0] or "cron" in hit.evidence["benign"][0]
    # the same command from a web shell is the technique
    shell = proc("find", "www-data", pid=1204, ppid=420, cmdline=SUID_HUNT)
    [hit] = findings_of("privesc_enumeration", run_packs([snap(0, add_processes=[shell])]))
    assert hit.severity == "high" and "benign" not in hit.evidence


def test_a_kernel_thread_name_without_its_cpu_suffix_is_still_an_imitation() -> None:
    scanner = proc("kworker", pid=1210, exe="/usr/bin/kworker", cmdline="kworker -p2375 10.0.0.0/8")
    [hit] = findings_of("daemon_name_mismatch", run_packs([snap(0, add_processes=[scanner])]))
    assert hit.severity == "high" and hit.evidence["pid"] == 1210
    # the watchdog package's daemon and irqbalance are userland programs of those names
    benign = [proc("watchdog", pid=1211, exe="/usr/sbin/watchdog"),
              proc("irqbalance", pid=1212, exe="/usr/sbin/irqbalance")]  # fmt: skip
    assert findings_of("daemon_name_mismatch", run_packs([snap(0, add_processes=benign)])) == []


def test_shred_over_backups_is_destructive_but_a_shredded_key_file_is_not() -> None:
    wipe = proc("shred", pid=1220, cmdline="shred -n 3 -z -u /srv/backups/db-2026-11-01.sql.gz")
    [hit] = findings_of("destructive_command", run_packs([snap(0, add_processes=[wipe])]))
    assert hit.severity == "critical" and "backups" in hit.title
    tidy = proc("shred", "alice", pid=1221, cmdline="shred -u /home/alice/old-id_rsa")
    assert findings_of("destructive_command", run_packs([snap(0, add_processes=[tidy])])) == []


def test_binaries_in_every_world_writable_directory_are_flagged() -> None:
    for path in ("/dev/mqueue/ld", "/run/lock/apt-check", "/var/lock/x", "/var/crash/.u"):
        p = proc("x", pid=1230, exe=path)
        assert loud(findings_of("exe_in_writable_or_hidden_path", run_packs([snap(0, add_processes=[p])]))), path
    # editor extensions live in a dot-directory of the home: where they install, not hiding
    ext = proc(
        "rust-analyzer",
        "alice",
        pid=1231,
        exe="/home/alice/.vscode/extensions/rust-lang.rust-analyzer-0.3/server/rust-analyzer",
    )
    assert findings_of("exe_in_writable_or_hidden_path", run_packs([snap(0, add_processes=[ext])])) == []


def _listener(name: str, pid: int, port: int) -> dict[str, Any]:
    return {"port": port, "protocol": "tcp", "address": "0.0.0.0", "process": name, "pid": pid}


def test_a_port_published_by_the_container_runtime_is_one_notice() -> None:
    proxy = [proc("docker-proxy", pid=1240, exe="/usr/bin/docker-proxy")]
    seq = [*learned(), *persisting(3, add_processes=proxy,
                                   add_ports=[_listener("docker-proxy", 1240, 8080)])]  # fmt: skip
    findings = run_packs(seq)
    about = [
        f for f in findings if f.invariant_id in ("new_listening_port", "new_listening_process")
    ]
    assert len(about) == 1 and about[0].severity == "low", about  # port and process: one socket
    assert "container runtime" in about[0].evidence["benign"][0]
    assert {r["invariant_id"] for r in about[0].evidence["rules"]} == {
        "new_listening_port", "new_listening_process"}  # fmt: skip
    # a python3 opening the same port to the world is still an incident
    py = [proc("python3", pid=1241, cmdline="python3 -m http.server 8080")]
    seq = [*learned(), *persisting(3, add_processes=py,
                                   add_ports=[_listener("python3", 1241, 8080)])]  # fmt: skip
    assert [f.severity for f in run_packs(seq) if f.subject == "port:8080/tcp"] == ["medium"]


def test_a_new_root_client_on_its_own_protocol_port_is_a_notice() -> None:
    def seq(name: str, cmdline: str, port: int) -> list[Any]:
        p = [proc(name, pid=1250, cmdline=cmdline)]
        return [*learned(), *persisting(3, add_processes=p,
                                        connections=[outbound(name, 1250, "192.168.1.10", port)])]  # fmt: skip

    [ssh] = findings_of("new_root_process", run_packs(seq("ssh", "ssh backup@192.168.1.10 -s sftp", 22)))
    assert ssh.severity == "low"
    [odd] = findings_of("new_root_process", run_packs(seq("agent", "/root/agent", 4444)))
    assert odd.severity == "medium" and any("4444" in s for s in odd.evidence["signals"])


def test_a_connection_without_a_pid_names_every_candidate() -> None:
    real = proc("systemd-logind", pid=545, exe="/usr/lib/systemd/systemd-logind")
    fake = proc("systemd-logind", pid=1260, exe="/usr/libexec/systemd-logind")
    c = {**outbound("systemd-logind", 0, "203.0.113.7", 8443), "pid": None}
    [hit] = findings_of(
        "local_daemon_outbound", run_packs([snap(0, add_processes=[real, fake], connections=[c])])
    )
    assert "pids 545, 1260" in hit.title
    assert [x["pid"] for x in hit.evidence["candidates"]] == [545, 1260]
