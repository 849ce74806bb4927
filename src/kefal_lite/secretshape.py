"""What a credential looks like: provider key shapes, private keys, URLs with a password.

Used by the agent before anything from an MCP client's config leaves the host (values
become `***`, only the fact and the place of a secret are sent) and again by the server
at ingest, for an agent that did not. Shapes are the providers' documented prefixes, so
a random word does not look like a key; a variable named like a secret (DB_PASSWORD)
with a literal value counts too. Python 3.10 and stdlib only: it ships with the agent.
"""

from __future__ import annotations

import re

import msgspec

from kefal_lite.scrub import MASK, scrub
from kefal_lite.snapshot import McpServer

# Each alternative starts at a word boundary and has a fixed prefix, so a scan is linear.
SHAPES: dict[str, str] = {
    "aws access key": r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b",
    "github token": r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
    "slack token": r"\bxox[abposre]-[A-Za-z0-9-]{10,250}",
    "slack webhook": r"hooks\.slack\.com/services/T[A-Za-z0-9_/]{8,120}",
    "anthropic key": r"\bsk-ant-[a-z]{3,8}\d{0,3}-[A-Za-z0-9_-]{20,250}",
    "openai key": r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,250}",
    "google api key": r"\bAIza[0-9A-Za-z_-]{35}",
    "google oauth token": r"\bya29\.[0-9A-Za-z_-]{20,}",
    "stripe key": r"\b[rs]k_(?:live|test)_[0-9A-Za-z]{16,250}",
    "jwt": r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    "private key": r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
    "url with password": r"(?i:\b[a-z][a-z0-9+.-]{1,30}://[^/\s:@]{0,256}:[^@\s/]{1,256}@)",
}
_ANY = re.compile("|".join(f"(?:{p})" for p in SHAPES.values()))
# Masked whole; a URL's password is masked by the scrubber, which keeps the host readable.
_MASKED = re.compile("|".join(f"(?:{p})" for k, p in SHAPES.items() if k != "url with password"))
# A whole private key block (it spans lines): masked as one.
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----.*?(?:-----END [A-Z0-9 ]*-----|$)",
                  re.S)  # fmt: skip
_SECRET_NAME = re.compile(
    r"(?i)(?:pass(?:wd|word)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key"
    r"|credential|auth|bearer|session|cookie|dsn|connection[_-]?string)"
)
# ${VAR} ${env:VAR} ${input:id} $VAR {env:VAR} %VAR%: the value lives elsewhere.
_REFERENCE = re.compile(r"^\s*(?:\$\{[^}]{1,256}\}|\$[A-Za-z_]\w{0,255}|\{env:[^}]{1,256}\}"
                        r"|%[A-Za-z_]\w{0,255}%)\s*$")  # fmt: skip
# What people leave in a config before they fill it in.
_PLACEHOLDER = re.compile(r"(?i)^\s*(?:<[^>]*>|\[[^\]]*\]|your[ _-].*|.*[ _-]here|x{3,}|\*+"
                          r"|changeme-?later|todo|none|null|false|true|\d{1,5})\s*$")  # fmt: skip


def has_shape(text: str) -> bool:
    """Whether `text` holds something shaped like a credential anywhere in it."""
    return _ANY.search(text) is not None


def secret_named(name: str) -> bool:
    return _SECRET_NAME.search(name) is not None


def is_reference(value: str) -> bool:
    return _REFERENCE.match(value) is not None


def literal_secret(name: str, value: str) -> bool:
    """A value written in a config that is a secret: credential-shaped, or a literal (not a
    reference, not a placeholder) under a name that says it is one (DB_PASSWORD=hunter2)."""
    if not value or is_reference(value):
        return False
    if has_shape(value):
        return True
    return secret_named(name) and len(value.strip()) >= 4 and not _PLACEHOLDER.match(value)


def redact(text: str) -> str:
    """`text` with every credential-shaped part and every password-style option value
    (the command-line scrubber's rules) replaced by ***."""
    if "PRIVATE KEY" in text:
        text = _PEM.sub(MASK, text)
    if _MASKED.search(text):
        text = _MASKED.sub(MASK, text)
    return scrub(text)


def scrub_servers(servers: list[McpServer]) -> list[McpServer] | None:
    """The MCP servers with credential-shaped text masked (marked `secrets_inline`, with
    where), or None when nothing changed: the agent masks already, an older or foreign
    one may not, and ingest stores nothing it would not have sent."""
    out: list[McpServer] | None = None
    for i, m in enumerate(servers):
        args = [redact(a) for a in m.args]
        texts = {"command": m.command, "url": m.url, "name": m.name}
        clean = {k: redact(v) if v else v for k, v in texts.items()}
        paths = [redact(x) for x in m.paths]
        where = [k for k in texts if clean[k] != texts[k]]
        if args != m.args or paths != m.paths:
            where.append("args")
        if not where:
            continue
        if out is None:
            out = list(servers)
        secret_in = list(dict.fromkeys([*m.secret_in, *where]))[:64]
        out[i] = msgspec.structs.replace(m, args=args, paths=paths, secrets_inline=True,
                                         secret_in=secret_in, **clean)  # fmt: skip
    return out
