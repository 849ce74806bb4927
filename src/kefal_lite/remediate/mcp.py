"""Remediation for the mcp pack: the exact entry to change in the client's config file.

The edits are small Python programs that never change: the file, the keys and the values
reach them as arguments, each through `Ctx.q` like every other host value, so a hostile
server name is one argv word, never code. Python rewrites the file in place (owner and
mode kept, unlike a `> tmp && mv` run by root) after a `cp -p` backup, and a file it
cannot parse (settings.json with comments) is left untouched: json.load fails first.
"""

from __future__ import annotations

from typing import Any

from kefal_lite.remediate.templates import Action, Ctx, num, visible

_READ = 'import json,sys;{args}=sys.argv[1:];d=json.load(open(f,encoding="utf-8"));o=d;'
_WRITE = 's=json.dumps(d,indent=2,ensure_ascii=False)+"\\n";open(f,"w",encoding="utf-8").write(s)'
JSON_DROP = _READ.format(args="f,*k") + "[o:=o[x] for x in k[:-1]];del o[k[-1]];" + _WRITE
JSON_SWAP = (_READ.format(args="f,old,new,*k") + "[o:=o[x] for x in k];"
             'o["args"]=[new if a==old else a for a in o.get("args",[])];' + _WRITE)  # fmt: skip
JSON_UNSET = (_READ.format(args="f,n,ref,*k") + '[o:=o[x] for x in k];e=o.get("env") or {};'
              'e.pop(n,None) if not ref else e.__setitem__(n,ref);o["env"]=e;'
              + _WRITE)  # fmt: skip
# TOML (Codex): lines under [mcp_servers.<name>] and its sub-tables, found by header.
_TOML = (r'import json,re,sys;f,n,*a=sys.argv[1:];q=re.escape(n);'
         r'h=re.compile(r"\s*\[+\s*mcp_servers\s*\.\s*(\x22"+q+r"\x22|\x27"+q+r"\x27|"+q+r")'
         r'\s*[].]");st=[0];L=open(f,encoding="utf-8").read().splitlines(True);'
         r'hd=lambda l:st.__setitem__(0,bool(h.match(l)))'
         r' if l.lstrip().startswith("[") else 0;')  # fmt: skip
_TOML_WRITE = r'open(f,"w",encoding="utf-8").write("".join(x for x in out if x is not None))'
TOML_DROP = _TOML + r"out=[None if hd(l) or st[0] else l for l in L];" + _TOML_WRITE
TOML_SWAP = (_TOML + r"out=[hd(l) or (l.replace(json.dumps(a[0]),json.dumps(a[1])) if st[0] "
             r"else l) for l in L];" + _TOML_WRITE)  # fmt: skip
TOML_UNSET = (_TOML + r'e=re.compile(r"(^|[{,])\s*(\x22?)"+re.escape(a[0])+r"\2\s*=\s*'
              r'(\x22[^\x22]*\x22|\x27[^\x27]*\x27)\s*,?");'
              r'out=[hd(l) or (re.sub(r",\s*}"," }",e.sub(r"\1",l)) if st[0] else l) for l in L];'
              + _TOML_WRITE)  # fmt: skip

# How each client refers to an environment variable instead of holding the value;
# the others cannot, and the entry is removed for the variable to be set where they start.
REFERENCE = {"claude-code": "${%s}", "cursor": "${env:%s}", "vscode": "${env:%s}",
             "vscode-insiders": "${env:%s}", "windsurf": "${env:%s}",
             "gemini-cli": "${%s}"}  # fmt: skip


def _strs(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)] if isinstance(value, str) and value else []


class _Server:
    """The server an incident is about, from its evidence (or its subject alone)."""

    def __init__(self, c: Ctx) -> None:
        tail = c.subject_value.split(":", 2)[-1]
        self.name = str(c.get("name") or tail)
        self.client = str(c.get("client") or "")
        self.file = str(c.get("config_path") or "")
        self.toml = c.get("config_format") == "toml" or self.file.endswith(".toml")
        self.keys = _strs(c.get("key_path")) or ["mcpServers", self.name]
        self.where = " > ".join(visible(k) for k in self.keys)

    def entry(self) -> str:
        if self.toml:
            return f"the [mcp_servers.{visible(self.name)}] table in {visible(self.file)}"
        return f'the "{visible(self.name)}" entry ({self.where}) in {visible(self.file)}'


def _backup(c: Ctx, s: _Server) -> str:
    if c.windows:
        return f"Copy-Item -LiteralPath {c.q(s.file)} -Destination {c.q(s.file + '.kefal.bak')}"
    return f"cp -p -- {c.q(s.file)} {c.q(s.file + '.kefal.bak')}"


def _py(c: Ctx, program: str, *args: str) -> str:
    exe = "python" if c.windows else "python3"
    return " ".join([exe, "-c", c.q(program), *(c.q(a) for a in args)])


def show(c: Ctx, s: _Server) -> Action:
    if c.windows:
        cmds = [
            f"Select-String -LiteralPath {c.q(s.file)} -SimpleMatch -Pattern {c.q(s.name)}",
            f"Get-Acl -LiteralPath {c.q(s.file)} | Format-List Owner,AccessToString",
        ]
    else:
        cmds = [f"grep -n -F -e {c.q(s.name)} -- {c.q(s.file)}", f"ls -l -- {c.q(s.file)}"]
    return Action("Find the server in its configuration", cmds,
                  f"It is {s.entry()}; the owner of the file is who added it.")  # fmt: skip


def drop(c: Ctx, s: _Server) -> Action:
    if c.windows and not s.toml:
        parent = "".join(f".({c.q(k)})" for k in s.keys[:-1])
        cmds = [_backup(c, s),
                f"$c = Get-Content -Raw -LiteralPath {c.q(s.file)} | ConvertFrom-Json; "
                f"$c{parent}.PSObject.Properties.Remove({c.q(s.keys[-1])}); "
                f"$c | ConvertTo-Json -Depth 64 | Set-Content -Encoding utf8 -LiteralPath "
                f"{c.q(s.file)}"]  # fmt: skip
    elif s.toml:
        cmds = [_backup(c, s), _py(c, TOML_DROP, s.file, s.name)]
    else:
        cmds = [_backup(c, s), _py(c, JSON_DROP, s.file, *s.keys)]
    return Action(f"Remove {visible(s.name)} from the client's configuration", cmds,
                  f"Deletes {s.entry()} (a .kefal.bak copy is kept); the client no longer "
                  "starts it. Re-add it only in a form that cannot run arbitrary "
                  "commands.")  # fmt: skip


# The checks print how much of what was changed is still there: 0 once the edit took.
JSON_HAS = _READ.format(args="f,*k") + "[o:=o[x] for x in k[:-1]];print(int(k[-1] in o))"
JSON_COUNT = (_READ.format(args="f,old,*k") + "[o:=o[x] for x in k];"
              'print(o.get("args",[]).count(old))')  # fmt: skip
TOML_HAS = _TOML + "print(sum(bool(h.match(l)) for l in L))"
TOML_COUNT = (_TOML + "out=[hd(l) or (json.dumps(a[0]) in l if st[0] else 0) for l in L];"
              "print(sum(x is True for x in out))")  # fmt: skip


def still_there(c: Ctx, s: _Server, old: str | None = None) -> str:
    """A command printing 0 when the entry is gone (old None) or no longer has `old` as an
    argument: it tests what was changed, not the name, which the kept entry still holds."""
    if c.windows and not s.toml:
        read = f"(Get-Content -Raw -LiteralPath {c.q(s.file)} | ConvertFrom-Json)"
        if old is None:
            parent = "".join(f".({c.q(k)})" for k in s.keys[:-1])
            key = c.q(s.keys[-1])
            names = f"{read}{parent}.PSObject.Properties.Name"
            return f"@({names} | Where-Object {{ $_ -eq {key} }}).Count"
        path = "".join(f".({c.q(k)})" for k in s.keys)
        return f"@({read}{path}.args | Where-Object {{ $_ -eq {c.q(old)} }}).Count"
    if s.toml:
        return (_py(c, TOML_HAS, s.file, s.name) if old is None
                else _py(c, TOML_COUNT, s.file, s.name, old))  # fmt: skip
    if old is None:
        return _py(c, JSON_HAS, s.file, *s.keys)
    return _py(c, JSON_COUNT, s.file, old, *s.keys)


def restart(c: Ctx, s: _Server, old: str | None = None) -> Action:
    pids = [n for n in (num(x, 1) for x in _strs(c.get("running_pids"))) if n is not None]
    stop = "Stop-Process -Id" if c.windows else "kill"
    cmds = [f"{stop} {pid}" for pid in pids[:8]]
    cmds.append(still_there(c, s, old))
    what = ("the entry is gone" if old is None
            else f"{visible(old)} is no longer among its arguments")  # fmt: skip
    return Action("Stop what it started and restart the client", cmds,
                  "A client keeps the servers it started until it restarts; quit and reopen "
                  f"it. The last command prints 0 when {what}.")  # fmt: skip


def shell_access(c: Ctx) -> list[Action]:
    s = _Server(c)
    return [show(c, s), drop(c, s), restart(c, s)]


def broad_scope(c: Ctx) -> list[Action]:
    s = _Server(c)
    paths = _strs(c.get("paths"))
    old = paths[0] if paths else "/"
    if c.windows and not s.toml:
        path = "".join(f".({c.q(k)})" for k in s.keys)
        cmds = [_backup(c, s),
                "$ProjectDir = '<one project directory>'; if (-not (Test-Path -LiteralPath "
                "$ProjectDir)) { throw 'set $ProjectDir first' }",
                f"$c = Get-Content -Raw -LiteralPath {c.q(s.file)} | ConvertFrom-Json; "
                f"$s = $c{path}; $s.args = @($s.args | ForEach-Object {{ if ($_ -eq {c.q(old)})"
                f" {{ $ProjectDir }} else {{ $_ }} }}); $c | ConvertTo-Json -Depth 64 | "
                f"Set-Content -Encoding utf8 -LiteralPath {c.q(s.file)}"]  # fmt: skip
    else:
        program = TOML_SWAP if s.toml else JSON_SWAP
        args = [s.file, s.name, old] if s.toml else [s.file, old]
        tail = [] if s.toml else s.keys
        cmds = [_backup(c, s), "PROJECT_DIR='<one project directory>'",
                'test -d "$PROJECT_DIR" && ' + _py(c, program, *args)
                + ' "$PROJECT_DIR" ' + " ".join(c.q(k) for k in tail)]  # fmt: skip
        cmds[-1] = cmds[-1].rstrip()
    return [
        show(c, s),
        Action(f"Give {visible(s.name)} one project, not {visible(old)}", cmds,
               f"Replaces the argument {visible(old)} of {s.entry()} with the directory you "
               "set: a server sees only what it is handed, and a model can be talked into "
               "reading ~/.ssh or writing ~/.bashrc when it is handed everything."),
        restart(c, s, old),
    ]  # fmt: skip


def inline_secret(c: Ctx) -> list[Action]:
    s = _Server(c)
    where = _strs(c.get("secret_in"))
    env = next((w.partition(":")[2] for w in where if w.startswith("env:")), "")
    ref = REFERENCE[s.client] % env if env and s.client in REFERENCE else ""
    if not env:
        change = Action(
            "Take the credential out of the arguments",
            [f"grep -n -F -e {c.q(s.name)} -- {c.q(s.file)}"] if not c.windows else
            [f"Select-String -LiteralPath {c.q(s.file)} -SimpleMatch -Pattern {c.q(s.name)}"],
            f"It sits in {', '.join(visible(w) for w in where) or 'the entry'} of {s.entry()}: "
            "move it to an environment variable the server reads, or the client's own "
            "secret prompt (VS Code inputs), and delete it from the file.")  # fmt: skip
    else:
        if c.windows and not s.toml:
            path = "".join(f".({c.q(k)})" for k in s.keys)
            edit = (f"$c = Get-Content -Raw -LiteralPath {c.q(s.file)} | ConvertFrom-Json; "
                    f"$c{path}.env.PSObject.Properties.Remove({c.q(env)}); "
                    + (f"$c{path}.env | Add-Member -NotePropertyName {c.q(env)} "
                       f"-NotePropertyValue {c.q(ref)}; " if ref else "")
                    + f"$c | ConvertTo-Json -Depth 64 | Set-Content -Encoding utf8 -LiteralPath "
                    f"{c.q(s.file)}")  # fmt: skip
        elif s.toml:
            edit = _py(c, TOML_UNSET, s.file, s.name, env)
        else:
            edit = _py(c, JSON_UNSET, s.file, env, ref, *s.keys)
        then = (f"the client reads {visible(ref)} from its environment" if ref else
                f"set {visible(env)} in the environment the client starts from" + (
                    f' and add env_vars = ["{visible(env)}"] to the table'
                    if s.toml else ""))  # fmt: skip
        change = Action(f"Replace the value of {visible(env)} with a reference",
                        [_backup(c, s), edit],
                        f"Removes the literal value of {visible(env)} from {s.entry()}; {then}."
                        " Delete the .kefal.bak copy once it works: it still holds the"
                        " value.")  # fmt: skip
    if c.windows:
        lock = [f"icacls {c.q(s.file)} /inheritance:r /grant:r ($env:USERNAME + ':F')"]
    else:
        lock = [f"chmod 600 -- {c.q(s.file)}", f"ls -l -- {c.q(s.file)}"]
    rotate = Action("Rotate the credential, and close the file to others", lock,
                    "It was on disk in plain text, in backups and perhaps in a dotfiles repo: "
                    "revoke it at the provider and issue a new one; the file should be "
                    "readable by its owner only.")  # fmt: skip
    return [show(c, s), change, rotate]


def new_server(c: Ctx) -> list[Action]:
    s = _Server(c)
    if c.windows:
        when = [f"Get-Item -LiteralPath {c.q(s.file)} | Format-List LastWriteTime,Owner"]
    elif c.macos:
        when = [f"ls -lT -- {c.q(s.file)}"]
    else:
        when = [f"ls -l --time-style=full-iso -- {c.q(s.file)}"]
    return [show(c, s),
            Action("See when the configuration changed", when,
                   "Ask the owner whether they added it; a server someone else slipped into a "
                   "config runs with their rights the next time the client starts."),
            drop(c, s)]  # fmt: skip
