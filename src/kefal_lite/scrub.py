"""Secrets out of command lines: one table of rules, applied by the agent before a snapshot
leaves the host and again by the server at ingest, so an old or third-party agent that
sends `mysql -pSECRET` never gets it stored, shown or passed to an LLM.

A rule masks its `secret` group with ***; the rest of the command line is kept so a
person can still read it. Program rules (`-p` means a password to mysql and a port to
ssh) apply only to what follows a word naming the program.
"""

from __future__ import annotations

import re
import sys
from typing import NamedTuple

import msgspec

from kefal_lite.snapshot import Snapshot

MASK = "***"
_WORDS = r"(?:password|passwd|pwd|pass|token|secret|api[_-]?key|access[_-]?key|auth|credentials?)"
_SCHEMES = r"(?:bearer|basic|token|digest|negotiate|apikey)"
# A value: quoted (cron lines and `sh -c '...'` strings keep the quotes, and a quoted
# value may hold spaces), else up to a space or quote.
_VALUE = r"(?:\"[^\"]*\"|'[^']*'|[^\s'\"]+)"


def _compile(pattern: str) -> re.Pattern[str]:
    """Possessive quantifiers (`*+`, `++`) keep the expressions linear, but arrived in
    Python 3.11 and the shipped agent also runs on 3.10 (Ubuntu 22.04). There they become
    plain greedy ones: the same or more text masked (never less), at a quadratic worst case
    on a 4 KB line instead of a linear one."""
    if sys.version_info < (3, 11):
        pattern = re.sub(r"([*+?}])\+", r"\1", pattern)
    return re.compile(pattern)


class Rule(NamedTuple):
    name: str
    pattern: re.Pattern[str]
    # Lower-case substrings, one of which the line must hold for the rule to be tried:
    # most command lines hold none, and skip the regular expressions altogether.
    hints: tuple[str, ...]
    programs: re.Pattern[str] | None = None


def _program(*names: str) -> re.Pattern[str]:
    # the program's word: at the start, after a space, a path or the quote of `sh -c '...'`
    return _compile(r"(?:^|[\s/'\"])(?:" + "|".join(names) + r")(?=\s)")


# Patterns start only where a word starts (lookbehind) and never give back what a
# possessive quantifier took: a 4 KB command line costs linear time, not quadratic
# (the previous expressions took 30 ms on one such line).
_KEYWORDS = ("pass", "pwd", "token", "secret", "key", "auth", "cred")


RULES: tuple[Rule, ...] = (
    # scheme://user:secret@host (also redis://:secret@host)
    Rule("url userinfo", _compile(
        r"(?i)(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*+://[^/\s:@]*+:(?P<secret>[^@\s/]++)@"),
         ("://",)),
    # https://TOKEN@host: GitHub and GitLab tokens travel as the whole userinfo
    Rule("url token", _compile(
        r"(?i)(?<![a-z0-9+.-])(?:https?|git)://(?P<secret>[^/\s:@?#'\"]++)@"), ("://",)),
    # an HTTP credential header, as curl -H / wget --header pass it
    Rule("authorization header", _compile(
        rf"(?i)\b(?:proxy-)?authorization\s*:\s*(?:{_SCHEMES}\s+)?(?P<secret>[^\s'\"]+)"),
         ("authorization",)),
    Rule("cookie header", _compile(r"(?i)\b(?:set-)?cookie\s*:\s*(?P<secret>[^'\"]+)"),
         ("cookie",)),
    # key=value / key:value, e.g. --db-password=hunter2, PGPASSWORD=x, token:abc
    # (not the scheme word of an Authorization header, masked above)
    Rule("assigned", _compile(rf"(?i)(?<![\w.-])[\w.-]*?{_WORDS}[\w.-]*+\s*[=:]\s*"
                                rf"(?!{_SCHEMES}\s)(?P<secret>{_VALUE})"), _KEYWORDS),
    # --password hunter2 (a flag naming a secret, then a value that is not another flag;
    # --password-stdin and --password-file name no secret)
    Rule("flag value", _compile(rf"(?i)(?:^|\s)--?[\w-]*?{_WORDS}[\w-]*+(?<!stdin)"
                                  rf"(?<!file)\s+(?!-)(?P<secret>\"[^\"]*\"|'[^']*'|\S+)"),
         _KEYWORDS),
    # mysql -pSECRET (attached only: `-p name` is the database name, `-p` alone prompts)
    Rule("mysql -p", _compile(rf"\s-p(?P<secret>{_VALUE})"), ("mysql", "mariadb"),
         _program(r"mysql\w*", "mariadb", r"mariadb-\w+")),
    Rule("sshpass -p", _compile(rf"\s-p\s*(?P<secret>{_VALUE})"), ("sshpass",),
         _program("sshpass")),
    Rule("redis-cli -a", _compile(rf"\s-a\s*(?P<secret>{_VALUE})"), ("-cli",),
         _program("redis-cli", "valkey-cli", "keydb-cli")),
    # curl -u user:secret, --user user:secret, --proxy-user, -U
    Rule("curl -u", _compile(
        r"\s(?:-u|-U|--user|--proxy-user)(?:\s+|=)?['\"]?[^\s:'\"]*+:(?P<secret>[^\s'\"]+)"),
         ("curl",), _program("curl")),
    # docker login -p SECRET (docker run -p 80:80 is a port)
    Rule("registry login -p", _compile(rf"\slogin\b.*?\s-p\s*(?P<secret>{_VALUE})"),
         ("login",), _program("docker", "podman", "nerdctl", "buildah", "skopeo", "helm")),
    # 7z -pSECRET, unrar -pSECRET
    Rule("archive -p", _compile(rf"\s-p(?P<secret>{_VALUE})"), ("7z", "rar"),
         _program("7z", "7za", "7zr", "unrar", "rar")),
    # ldapsearch -w SECRET (-W prompts)
    Rule("ldap -w", _compile(rf"\s-w\s*(?P<secret>{_VALUE})"), ("ldap",),
         _program(r"ldap\w+")),
    # sqlcmd/bcp/ipmitool -P SECRET, zip/unzip -P SECRET
    Rule("-P password", _compile(rf"\s-P\s*(?P<secret>{_VALUE})"),
         ("sqlcmd", "bcp", "ipmitool", "zip"),
         _program("sqlcmd", "bcp", "ipmitool", "zip", "unzip")),
    # smbclient -U user%SECRET
    Rule("smb -U user%pass", _compile(
        r"\s(?:-U|--user)(?:\s+|=)?['\"]?[^\s%'\"]*+%(?P<secret>[^\s'\"]+)"),
         ("smb", "rpcclient"), _program("smbclient", "rpcclient", "smbcacls", "smbget")),
)  # fmt: skip


# One search decides for most lines: a line holding no hint of any rule is returned as is.
_ANY_HINT = _compile("|".join(sorted({re.escape(h) for r in RULES for h in r.hints})))


def _mask(rule: Rule, text: str, count: int = 0) -> str:
    def one(m: re.Match[str]) -> str:
        start, end = m.span("secret")
        return text[m.start() : start] + MASK + text[end : m.end()]

    return rule.pattern.sub(one, text, count=count)


def scrub(cmdline: str) -> str:
    """Mask values that look like secrets; keep the shape so a person can still read it."""
    low = cmdline.lower()
    if _ANY_HINT.search(low) is None:
        return cmdline
    out = cmdline
    for rule in RULES:
        if not any(hint in low for hint in rule.hints):
            continue
        if rule.programs is None:
            out = _mask(rule, out)
            continue
        # After each mention of the program, its first such option only: in
        # `sshpass -p pw ssh -p 22 host` the second -p is ssh's port.
        starts = [m.end() for m in rule.programs.finditer(out)]
        if not starts:
            continue
        parts = [out[: starts[0]]]
        for start, stop in zip(starts, [*starts[1:], len(out)], strict=True):
            parts.append(_mask(rule, out[start:stop], count=1))
        out = "".join(parts)
    return out


def scrub_snapshot(snap: Snapshot) -> Snapshot:
    """The snapshot with every command line scrubbed; the same object when nothing changed
    (the common case: the agent scrubbed already, and the stored body stays as sent)."""
    processes = None
    for i, proc in enumerate(snap.processes):
        if proc.cmdline:
            clean = scrub(proc.cmdline)
            if clean != proc.cmdline:
                if processes is None:
                    processes = list(snap.processes)
                processes[i] = msgspec.structs.replace(proc, cmdline=clean)
    if processes is not None:
        snap = msgspec.structs.replace(snap, processes=processes)
    if snap.mcp_servers:
        from kefal_lite.secretshape import scrub_servers  # it builds on this module

        servers = scrub_servers(snap.mcp_servers)
        if servers is not None:
            snap = msgspec.structs.replace(snap, mcp_servers=servers)
    return snap
