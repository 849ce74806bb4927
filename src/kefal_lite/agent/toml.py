"""TOML for the agent: `tomllib` where Python has it (3.11+), else a small reader of the
subset configuration files use (tables, dotted keys, strings, numbers, booleans, arrays,
inline tables; dates are kept as text). The agent runs on Python 3.10 and ships with no
dependency beyond psutil and msgspec, and msgspec's TOML decoding needs tomli there."""

from __future__ import annotations

import re
from typing import Any

try:
    import tomllib as _tomllib
except ImportError:  # Python 3.10
    _tomllib = None  # type: ignore[assignment,unused-ignore]


def loads(text: str) -> dict[str, Any]:
    """The document; ValueError if it is not TOML."""
    if _tomllib is not None:
        try:
            return _tomllib.loads(text)
        except _tomllib.TOMLDecodeError as exc:
            raise ValueError(str(exc)) from None
    return Parser(text).document()


_BARE = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR = re.compile(r"[^\s,\]}#]+")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
MAX_DEPTH = 64


class Parser:
    def __init__(self, text: str) -> None:
        self.s = text.replace("\r\n", "\n")
        self.i = 0
        self.root: dict[str, Any] = {}

    def fail(self, what: str) -> ValueError:
        line = self.s.count("\n", 0, self.i) + 1
        return ValueError(f"{what} (line {line})")

    def ws(self, newlines: bool = False) -> None:
        while self.i < len(self.s):
            ch = self.s[self.i]
            if ch in " \t" or (newlines and ch == "\n"):
                self.i += 1
            elif ch == "#":
                end = self.s.find("\n", self.i)
                self.i = len(self.s) if end < 0 else end
            else:
                return

    def document(self) -> dict[str, Any]:
        table = self.root
        while True:
            self.ws(newlines=True)
            if self.i >= len(self.s):
                return self.root
            if self.s.startswith("[[", self.i):
                self.i += 2
                keys = self.keys()
                self.expect("]]")
                parent = self.table_at(keys[:-1])
                items = parent.setdefault(keys[-1], [])
                if not isinstance(items, list):
                    raise self.fail("array of tables over a value")
                table = {}
                items.append(table)
            elif self.s[self.i] == "[":
                self.i += 1
                table = self.table_at(self.keys())
                self.expect("]")
            else:
                keys = self.keys()
                self.expect("=")
                self.ws()
                target = self.table_at(keys[:-1], table)
                if keys[-1] in target:
                    raise self.fail(f"duplicate key {keys[-1]!r}")
                target[keys[-1]] = self.value(0)
            self.ws()
            if self.i < len(self.s) and self.s[self.i] != "\n":
                raise self.fail("expected the end of the line")

    def expect(self, token: str) -> None:
        self.ws()
        if not self.s.startswith(token, self.i):
            raise self.fail(f"expected {token!r}")
        self.i += len(token)

    def table_at(self, keys: list[str], start: dict[str, Any] | None = None) -> dict[str, Any]:
        table = self.root if start is None else start
        for key in keys:
            nxt = table.setdefault(key, {})
            if isinstance(nxt, list) and nxt and isinstance(nxt[-1], dict):
                nxt = nxt[-1]
            if not isinstance(nxt, dict):
                raise self.fail(f"{key!r} is a value, not a table")
            table = nxt
        return table

    def keys(self) -> list[str]:
        out = []
        while True:
            self.ws()
            if self.i < len(self.s) and self.s[self.i] in "\"'":
                out.append(self.string())
            else:
                m = _BARE.match(self.s, self.i)
                if not m:
                    raise self.fail("expected a key")
                out.append(m.group())
                self.i = m.end()
            self.ws()
            if self.i < len(self.s) and self.s[self.i] == ".":
                self.i += 1
                continue
            return out

    def string(self) -> str:
        s, i = self.s, self.i
        if s.startswith('"""', i) or s.startswith("'''", i):
            quote = s[i : i + 3]
            end = s.find(quote, i + 3)
            if end < 0:
                raise self.fail("unterminated string")
            while s.startswith(quote[0], end + 3):  # up to two quotes may end the content
                end += 1
            body = s[i + 3 : end].removeprefix("\n")
            self.i = end + 3
            return self.unescape(body) if quote[0] == '"' else body
        quote = s[i]
        j = i + 1
        while j < len(s) and s[j] != quote and s[j] != "\n":
            j += 2 if quote == '"' and s[j] == "\\" else 1
        if j >= len(s) or s[j] != quote:
            raise self.fail("unterminated string")
        self.i = j + 1
        body = s[i + 1 : j]
        return self.unescape(body) if quote == '"' else body

    def unescape(self, body: str) -> str:
        def one(m: re.Match[str]) -> str:
            e = m.group(1)
            if e[0] in "uU":
                return chr(int(e[1:], 16))
            if e[0] == "\n" or e[0] in " \t":
                return ""  # a line-ending backslash joins lines
            return _ESCAPES.get(e, e)

        return re.sub(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|[ \t]*\n\s*|.)", one, body)

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail("nested too deeply")
        s = self.s
        if self.i >= len(s):
            raise self.fail("expected a value")
        ch = s[self.i]
        if ch in "\"'":
            return self.string()
        if ch == "[":
            self.i += 1
            items: list[Any] = []
            while True:
                self.ws(newlines=True)
                if s.startswith("]", self.i):
                    self.i += 1
                    return items
                items.append(self.value(depth + 1))
                self.ws(newlines=True)
                if s.startswith(",", self.i):
                    self.i += 1
                elif not s.startswith("]", self.i):
                    raise self.fail("expected , or ]")
        if ch == "{":
            self.i += 1
            table: dict[str, Any] = {}
            self.ws()
            if s.startswith("}", self.i):
                self.i += 1
                return table
            while True:
                keys = self.keys()
                self.expect("=")
                self.ws()
                self.table_at(keys[:-1], table)[keys[-1]] = self.value(depth + 1)
                self.ws()
                if s.startswith(",", self.i):
                    self.i += 1
                elif s.startswith("}", self.i):
                    self.i += 1
                    return table
                else:
                    raise self.fail("expected , or }")
        m = _SCALAR.match(s, self.i)
        if not m:
            raise self.fail("expected a value")
        self.i = m.end()
        word = m.group()
        if word in ("true", "false"):
            return word == "true"
        try:
            clean = word.replace("_", "")
            if re.fullmatch(r"[+-]?(?:0x[0-9a-fA-F]+|0o[0-7]+|0b[01]+)", clean):
                return int(clean, 0)
            if re.fullmatch(r"[+-]?\d+", clean):
                return int(clean)
            return float(clean)
        except ValueError:
            return word  # a date or time: kept as text
