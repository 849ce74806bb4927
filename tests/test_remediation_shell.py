"""Remediation commands against hostile host values: every template of every builtin, every
predicate kind and every novelty field, on linux, darwin and windows, with hostile text in
every evidence key a template reads (any key: the evidence answers every lookup) and in the
subject.

- POSIX, statically: each command splits (shlex) into words, the hostile value sits whole
  inside one word, and no comment carries it.
- POSIX, for real: each action runs under bash with stub executables on PATH that record
  their argv. The hostile run must call exactly the stubs a benign run calls, with exactly
  the benign argv except the benign word replaced by the hostile value, and plant nothing.
- PowerShell: the hostile value only ever appears whole inside one single-quoted string,
  with every quote PowerShell ends a string on (' and the four typographic ones) doubled.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kefal_lite.detect.builtins import BY_ID
from kefal_lite.remediate import estate
from kefal_lite.remediate import templates as t

OSES = ("linux", "darwin", "windows")
BENIGN = "benign"
HEAD, TAIL = "KQ1", "KQ2"  # brackets around a hostile value, to see it split or cut

# Every template function reachable from render(), by a name for the report.
TEMPLATES: dict[str, t.Template] = {f"builtin:{k}": v for k, v in t.BY_INVARIANT.items()}
TEMPLATES |= {f"kind:{k.__name__}": v for k, v in t.BY_KIND.items()}
TEMPLATES |= {f"novel:{k}": v for k, v in t._NOVEL_BY_FIELD.items()}
# The lateral pack's estate findings have their own templates (no predicate, no OS).
TEMPLATES |= {f"estate:{k}": (lambda c, f=f: f(c.evidence, c.subject, c.windows))
              for k, f in estate._BY_RULE.items()}  # fmt: skip
# Many entries share a function (malicious_process serves nine): render each function once.
DISTINCT = {id(f): (name, f) for name, f in TEMPLATES.items()}.values()
ANY_INVARIANT = BY_ID["crypto_miner"]


class Evidence(dict[str, Any]):
    """Answers every key with `value`, so a key added to evidence later is covered too;
    `fixed` pins the keys whose numeric branch must run as well."""

    def __init__(self, value: Any, fixed: dict[str, Any]) -> None:
        super().__init__(fixed)
        self.value = value

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        if key in self:
            return self[key]
        # an outbound peer is "process:port": keep the hostile part whole in the process
        return f"{self.value}:443" if key == "value" else self.value


NUMERIC = {"pid": 4242, "port": 5432, "protocol": "tcp", "kernel_changed": True}


def variants(value: str) -> Iterator[tuple[str, dict[str, Any] | Evidence, str]]:
    """(subject, evidence, the value used): all hostile; hostile with valid numbers; only
    the subject (without the subject's own separators, which the template splits on)."""
    yield f"process:{value}", Evidence(value, {}), value
    yield f"port:{value}", Evidence(value, NUMERIC), value
    plain = value.replace(":", "_").replace("/", "_")
    yield f"x:{plain}", {}, plain


def render_all(value: str, os_: str) -> list[tuple[str, int, list[t.Action], str]]:
    out = []
    for name, template in DISTINCT:
        for i, (subject, evidence, used) in enumerate(variants(value)):
            ctx = t.Ctx(ANY_INVARIANT, subject, evidence, os_)
            actions = template(ctx)
            assert len(actions) == 3, name
            out.append((name, i, actions, used))
    return out


def comment_start(cmd: str) -> int:
    """Where bash starts a comment in `cmd` (an unquoted # at a word's start), or len."""
    quote, i = "", 0
    while i < len(cmd):
        ch = cmd[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"':
                i += 1
        elif ch in "'\"":
            quote = ch
        elif ch == "\\":
            i += 1
        elif ch == "#" and (i == 0 or cmd[i - 1] in " \t;|&("):
            return i
        i += 1
    return len(cmd)


PS_QUOTES = "'\u2018\u2019\u201a\u201b"


def ps_split(cmd: str) -> tuple[str, list[str]]:
    """PowerShell's view of `cmd`: the text outside single-quoted strings, and the strings."""
    outside, strings, i = [], [], 0
    while i < len(cmd):
        if cmd[i] in PS_QUOTES:
            j, buf = i + 1, []
            while True:
                assert j < len(cmd), f"unterminated string in {cmd!r}"
                if cmd[j] in PS_QUOTES:
                    if j + 1 < len(cmd) and cmd[j + 1] in PS_QUOTES:
                        buf.append(cmd[j])
                        j += 2
                        continue
                    break
                buf.append(cmd[j])
                j += 1
            strings.append("".join(buf))
            i = j + 1
        else:
            outside.append(cmd[i])
            i += 1
    return "".join(outside), strings


def check_static(value: str) -> None:
    for os_ in OSES:
        for name, variant, actions, used in render_all(value, os_):
            shown = t.visible(used)
            for cmd in (c for a in actions for c in a.commands):
                where = f"{name} v{variant} {os_}: {cmd!r}"
                assert not t._UNSAFE.search(cmd), where
                if os_ == "windows":
                    if cmd.startswith("#"):  # a comment line, in PowerShell too
                        assert HEAD not in cmd, where
                        continue
                    outside, strings = ps_split(cmd)
                    assert HEAD not in outside and TAIL not in outside, where
                    for s in strings:
                        if HEAD in s or TAIL in s:
                            assert shown in s, where
                    continue
                words = shlex.split(cmd[: comment_start(cmd)])
                for w in words:
                    if HEAD in w or TAIL in w:
                        assert shown in w, where
                assert HEAD not in cmd[comment_start(cmd) :], where


hostile_text = st.text(
    alphabet=st.sampled_from(list(" ;|&$`\\\"'<>(){}[]*?!#~=,:/.-_%^@+\n\r\t\x00\x15\x1b\x7f\x85"
                                  "\u2018\u2019\u201a\u201b\u201c\u201d\u202e\u2028abcP"))
    | st.characters(),
    max_size=24,
)  # fmt: skip


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_text)
def test_hostile_values_stay_one_word_in_every_template(payload: str) -> None:
    check_static(HEAD + payload + TAIL)


# --- running the commands ----------------------------------------------------------------

STUBS = """
adduser apt-get awk chronyc command crontab cp cut date dpkg fuser getent gpasswd grep head id
journalctl kefal-lite kill last lsof ls mkdir passwd pfctl pgrep ping pkill ps psql pwpolicy
readlink renice rpm sed sha256sum sntp sort ss ssh ssh-keygen sshd systemctl systemsetup tail
tee timedatectl top truncate ufw uname uniq userdel usermod log sudo
""".split()

STUB = """#!/bin/sh
printf '%s\\0' "$KEFAL_CMD" "${0##*/}" "$@" > "$KEFAL_LOG/$$"  # a file per call: no interleaving
case "${0##*/}" in
  getent) echo "x:x:1000:1000::/home/x:/bin/sh" ;;
  cut) echo /home/x ;;
esac
exit 0
"""

RUNNER = """
command_not_found_handle() {
  printf '%s\\0' "$KEFAL_CMD" UNEXPECTED "$@" > "$KEFAL_LOG/$BASHPID"; return 127
}
for action in "$KEFAL_CMDS"/*; do
  (
    for f in "$action"/*; do
      export KEFAL_CMD="${f#$KEFAL_CMDS/}"
      eval "$(< "$f")" </dev/null >/dev/null 2>>"$KEFAL_CMDS.err.${KEFAL_CMD//\\//_}"
    done
  )
done
"""


def run_posix(
    tmp: Path, renders: dict[str, list[str]]
) -> tuple[dict[str, list[list[str]]], set[str]]:
    """Run each action's commands in one bash subshell (as pasted, in order); return the stub
    calls per command and the commands bash found a syntax error in."""
    stubs, cmds, work = tmp / "bin", tmp / "cmds", tmp / "work"
    for d in (stubs, cmds, work):
        d.mkdir(parents=True)
    for name in STUBS:
        (stubs / name).write_text(STUB)
        (stubs / name).chmod(stat.S_IRWXU)
    for key, commands in renders.items():
        adir = cmds / key
        adir.mkdir()
        for i, c in enumerate(commands):
            (adir / f"{i:03d}").write_text(c)
    log = tmp / "log"
    log.mkdir()
    env = {"PATH": str(stubs), "KEFAL_LOG": str(log), "KEFAL_CMDS": str(cmds), "HOME": "/home/kefal-test",
           "LANG": "C.UTF-8"}  # fmt: skip
    subprocess.run(["/bin/bash", "--norc", "--noprofile", "-c", RUNNER], cwd=work, env=env,
                   check=True, timeout=120)  # fmt: skip
    assert sorted(os.listdir(work)) == [], "a command planted a file"
    calls: dict[str, list[list[str]]] = {}
    for record in log.iterdir():
        cmd, *argv = record.read_bytes().decode().split("\0")[:-1]
        calls.setdefault(cmd, []).append(argv)
    errors = {
        p.name.removeprefix("cmds.err.")
        for p in tmp.glob("cmds.err.*")
        if "syntax error" in p.read_text() or "unexpected EOF" in p.read_text()
    }
    return calls, errors


def posix_renders(value: str) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The actions to run, one per distinct template function, and the value each carries.
    Only actions a host value reaches: the others are the same text whatever the host sends
    (the benign run tells which)."""
    renders, used = {}, {}
    for os_ in ("linux", "darwin"):
        benign = render_all(BENIGN, os_)
        for (name, variant, actions, value_used), (_, _, b_actions, _) in zip(
            render_all(value, os_), benign, strict=True
        ):
            for k, (action, b_action) in enumerate(zip(actions, b_actions, strict=True)):
                if any(BENIGN in c for c in b_action.commands):
                    key = f"{name.replace(':', '_')}-{variant}-{os_}-{k}"
                    renders[key], used[key] = list(action.commands), t.visible(value_used)
    return renders, used


@functools.cache
def benign_run(tmp: Path) -> tuple[dict[str, list[list[str]]], frozenset[str]]:
    calls, errors = run_posix(tmp, posix_renders(BENIGN)[0])
    return calls, frozenset(errors)


def check_runs(tmp: Path, value: str) -> None:
    hostile, shown = posix_renders(value)
    b_calls, b_err = benign_run(tmp.parent / "benign")
    h_calls, h_err = run_posix(tmp, hostile)
    assert h_err <= b_err, f"hostile text broke the syntax of {sorted(h_err - b_err)}"
    assert set(h_calls) == set(b_calls)
    for cmd, expected in b_calls.items():
        got = h_calls[cmd]
        action, index = cmd.split("/")
        where = f"{cmd}: {hostile[action][int(index)]!r}"
        # the same programs with the same argv, the benign word replaced by the hostile value
        # (sorted: the sides of a pipeline start in any order)
        want = sorted([arg.replace(BENIGN, shown[action]) for arg in e] for e in expected)
        assert sorted(got) == want, where


# The four reproduced attacks of issue 14, verbatim, and the shell's other ways in, as one
# value: each run costs a few seconds of bash, so they share one.
ATTACKS = [
    "x/.ssh/authorized_keys;touch /tmp/P;#",  # logged_in_users, through the ~{user} forms
    ";reboot",  # a listening port's protocol
    "6.2\ntouch /tmp/P",  # kernel, out of a `# ...` comment
    "a\u2019; Remove-Item C:\\ -Recurse; \u2018",  # PowerShell's typographic quotes
    "$(touch PLANTED)`touch PLANTED`>PLANTED'\"';touch PLANTED;\\'|touch PLANTED&&touch PLANTED",
    "-oProxyCommand=touch PLANTED",  # an option, where a name was expected
]
BASE = Path(tempfile.mkdtemp(prefix="kefal-remed-"))


@pytest.fixture(scope="module")
def runs() -> Iterator[Path]:
    yield BASE
    shutil.rmtree(BASE, ignore_errors=True)


def test_hostile_values_run_as_data_under_bash(runs: Path) -> None:
    check_runs(runs / "attacks", HEAD + "".join(ATTACKS) + TAIL)


@settings(max_examples=1, deadline=None)
@given(hostile_text)
def test_generated_hostile_values_run_as_data_under_bash(runs: Path, payload: str) -> None:
    check_runs(Path(tempfile.mkdtemp(dir=runs)), HEAD + payload + TAIL)


# --- the four reproduced attacks of issue 14, verbatim --------------------------------------


def _commands(actions: list[t.Action]) -> list[str]:
    return [c for a in actions for c in a.commands]


def test_attack_login_user_home_comes_from_getent_not_tilde(runs: Path) -> None:
    evil = "x/.ssh/authorized_keys;touch /tmp/P;#"
    login = t.render(BY_ID["new_login_user"], f"user:{evil}",
                     {"field": "logged_in_users", "value": evil}, "linux")  # fmt: skip
    keys = t.render(BY_ID["new_ssh_authorized_key"], f"key:{evil}:SHA256:k",
                    {"field": "authorized_keys", "value": f"{evil}:SHA256:k", "user": evil,
                     "fingerprint": "SHA256:k", "comment": evil}, "linux")  # fmt: skip
    for actions in (login, keys):
        cmds = _commands(actions)
        assert not any("~" in c for c in cmds), cmds
        assert any(
            c.startswith(f"HOME_DIR=$(getent passwd {t.sh(evil)} | cut -d: -f6)") for c in cmds
        )
        calls, errors = run_posix(Path(tempfile.mkdtemp(dir=runs)), {"a": cmds})
        programs = {argv[0] for argvs in calls.values() for argv in argvs}
        assert "UNEXPECTED" not in programs and not errors  # touch never ran


def test_attack_protocol_is_tcp_or_udp_in_every_command() -> None:
    evidence = {"port": 5432, "protocol": ";reboot", "address": "0.0.0.0", "process": "pg"}
    for inv in ("database_exposed", "new_listening_port", "shell_listening"):
        for os_ in OSES:
            cmds = _commands(t.render(BY_ID[inv], "port:5432/;reboot", evidence, os_))
            # only ever quoted whole (shell_listening names the process after the subject)
            assert not any("reboot" in c.replace("'5432/;reboot'", "") for c in cmds), cmds
    linux = _commands(t.render(BY_ID["new_listening_port"], "port:5432/;reboot", evidence, "linux"))
    # the firewall rule sits inside the command that picks ufw, firewalld or nft on the host
    assert any("sudo ufw deny 5432/tcp;" in c for c in linux) and "sudo fuser -k 5432/tcp" in linux


def test_attack_kernel_newline_never_reaches_a_comment() -> None:
    evil = "6.2\ntouch /tmp/P"
    evidence = {"previous_kernel": "6.1", "kernel": evil, "kernel_changed": True}
    for os_ in OSES:
        actions = t.render(BY_ID["host_rebooted"], "boot:x", evidence, os_)
        assert not any("touch" in c or "6.2" in c for c in _commands(actions))
        assert "6.2\ufffdtouch /tmp/P" in actions[1].why  # told in prose, made visible


def test_attack_powershell_typographic_quotes_are_doubled() -> None:
    evil = "a\u2019; Stop-Computer; \u2018b\u201a\u201b'"
    assert t.ps(evil) == "'a\u2019\u2019; Stop-Computer; \u2018\u2018b\u201a\u201a\u201b\u201b'''"
    cmds = _commands(t.render(BY_ID["crypto_miner"], f"process:{evil}", {"name": evil}, "windows"))
    assert any(t.ps(evil) in c for c in cmds)
    for c in cmds:
        outside, _ = ps_split(c)
        assert "Stop-Computer" not in outside, c


def test_options_cannot_hide_in_a_host_name() -> None:
    cmds = _commands(t.render(BY_ID["agent_silent"], "agent:a",
                              {"hostname": "-oProxyCommand=touch /tmp/P", "agent_id": "a"}, "linux"))  # fmt: skip
    assert "ssh -- '-oProxyCommand=touch /tmp/P' uptime" in cmds
