"""The predicate catalogue: every `kind` with its typed params, as a tagged union.

Contributed invariants use the same catalogue, so no user input is ever
executed as code: a predicate is data that picks one of these functions. Params
forbid unknown fields and carry ranges, so a malformed contribution is a 400
before anything is stored.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Names = Annotated[list[Name], msgspec.Meta(min_length=1, max_length=256)]
PortNumber = Annotated[int, msgspec.Meta(ge=0, le=65535)]
# Absolute POSIX path, or a Windows drive path.
AbsPath = Annotated[
    str, msgspec.Meta(min_length=2, max_length=512, pattern=r"^(/[^\x00]*|[A-Za-z]:\\[^\x00]*)$")
]
Pattern = Annotated[str, msgspec.Meta(min_length=3, max_length=256)]

NovelField = Literal[
    "listening_ports",
    "listening_processes",
    "root_processes",
    "logged_in_users",
    "admin_accounts",
    "authorized_keys",
    "outbound_peers",
    "accounts",
    "login_accounts",
    "privileged_accounts",
    "mcp_servers",
]

# Patterns are plain case-insensitive substrings. Something that reads like a
# regular expression would silently never match, so it is refused up front.
# A shell pipe ("base64 -d | sh") is fine; alternation without spaces ("nc|ncat") is not.
_REGEX_LIKE = re.compile(r"\.\*|\.\+|\\[dswbDSWB.]|\(\?|\[[^\]]*\]|\{\d+(,\d*)?\}|^\^|\$$|\w\|\w")


class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class NoParams(Params, frozen=True):
    pass


class SuspiciousPathParams(Params, frozen=True):
    suspicious_paths: Annotated[list[AbsPath], msgspec.Meta(min_length=1, max_length=64)]
    user: Name | None = None


class NamesParams(Params, frozen=True):
    names: Names
    users: Names | None = None


class PatternsParams(Params, frozen=True):
    patterns: Annotated[list[Pattern], msgspec.Meta(min_length=1, max_length=64)]

    def __post_init__(self) -> None:
        for pattern in self.patterns:
            if _REGEX_LIKE.search(pattern):
                raise ValueError(
                    f"pattern {pattern!r} looks like a regular expression; patterns are plain"
                    " case-insensitive substrings"
                )
            if not pattern.strip():
                raise ValueError("a pattern cannot be blank")


class PortsParams(Params, frozen=True):
    ports: Annotated[list[PortNumber], msgspec.Meta(min_length=1, max_length=1024)]


class PortOwnerNotInParams(Params, frozen=True):
    port: PortNumber
    allowed: Names


class PortOwnerInParams(Params, frozen=True):
    processes: Names


class UsersParams(Params, frozen=True):
    users: Names


class SystemAccountLoginParams(Params, frozen=True):
    max_uid: Annotated[int, msgspec.Meta(ge=0, le=65535)]
    except_: Annotated[list[Name], msgspec.Meta(max_length=256)] = msgspec.field(
        default_factory=list, name="except"
    )


class NovelValueParams(Params, frozen=True):
    field: NovelField
    learning_snapshots: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 3


class AgentSilentParams(Params, frozen=True):
    minutes: Annotated[int, msgspec.Meta(ge=1, le=10_080)]


class ClockSkewParams(Params, frozen=True):
    seconds: Annotated[int, msgspec.Meta(ge=1, le=86_400)]


class ProcessDisappearedParams(Params, frozen=True):
    names: Names


class SustainedCpuParams(Params, frozen=True):
    # psutil reports per-process CPU over all cores, so >100 is possible.
    percent: Annotated[float, msgspec.Meta(gt=0, le=25_600)]
    snapshots: Annotated[int, msgspec.Meta(ge=1, le=1_000)]


class ProcessCountSpikeParams(Params, frozen=True):
    factor: Annotated[float, msgspec.Meta(gt=1, le=1_000)]
    min_baseline: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]


class ProcessExeSuspiciousParams(Params, frozen=True):
    # Directories anyone can write to; a binary there runs whatever its name.
    paths: Annotated[list[AbsPath], msgspec.Meta(min_length=1, max_length=64)]
    hidden: bool = True  # a dot-directory or dot-file anywhere in the path
    memfd: bool = True  # an anonymous memory file (fileless execution)
    # Path fragments that are not hiding (toolchains in ~/.cargo, ~/.vscode-server, ...).
    except_: Annotated[list[Pattern], msgspec.Meta(max_length=128)] = msgspec.field(
        default_factory=list, name="except"
    )


class ProcessNameMismatchParams(Params, frozen=True):
    names: Names  # system daemons a process may pretend to be
    kernel_threads: bool = True  # names like kworker/0:1 with a binary on disk


class ProcessOutboundParams(Params, frozen=True):
    names: Names  # a trailing * matches a prefix: python* is python3.12
    allowed_ports: Annotated[list[PortNumber], msgspec.Meta(max_length=1024)] = []


class ProcessParentInParams(Params, frozen=True):
    names: Names
    parents: Names


class CpuWithConnectionParams(Params, frozen=True):
    percent: Annotated[float, msgspec.Meta(gt=0, le=25_600)]
    snapshots: Annotated[int, msgspec.Meta(ge=1, le=1_000)]
    ports: Annotated[list[PortNumber], msgspec.Meta(min_length=1, max_length=1024)]


class CmdlineAllParams(Params, frozen=True):
    # Every group must match (one of its substrings) in the same command line.
    all_of: Annotated[
        list[Annotated[list[Pattern], msgspec.Meta(min_length=1, max_length=32)]],
        msgspec.Meta(min_length=1, max_length=8),
    ]

    def __post_init__(self) -> None:
        for group in self.all_of:
            PatternsParams(patterns=group)  # the same refusal of regex-looking patterns


class Predicate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="kind"):
    pass


class ProcessInSuspiciousPath(Predicate, frozen=True, tag="process_in_suspicious_path"):
    params: SuspiciousPathParams


class ProcessNameIn(Predicate, frozen=True, tag="process_name_in"):
    params: NamesParams


class ProcessCmdlineContains(Predicate, frozen=True, tag="process_cmdline_contains"):
    params: PatternsParams


class ProcessExeDeleted(Predicate, frozen=True, tag="process_exe_deleted"):
    params: NoParams = NoParams()


class ProcessMasqueradesKernelThread(
    Predicate, frozen=True, tag="process_masquerades_kernel_thread"
):
    params: NoParams = NoParams()


class PortExposed(Predicate, frozen=True, tag="port_exposed"):
    params: PortsParams


class PortListening(Predicate, frozen=True, tag="port_listening"):
    params: PortsParams


class PortOwnerNotIn(Predicate, frozen=True, tag="port_owner_not_in"):
    params: PortOwnerNotInParams


class PortOwnerIn(Predicate, frozen=True, tag="port_owner_in"):
    params: PortOwnerInParams


class LoggedInUserIn(Predicate, frozen=True, tag="logged_in_user_in"):
    params: UsersParams


class SystemAccountLogin(Predicate, frozen=True, tag="system_account_login"):
    params: SystemAccountLoginParams


class Uid0NotRoot(Predicate, frozen=True, tag="uid0_not_root"):
    params: NoParams = NoParams()


class NovelValue(Predicate, frozen=True, tag="novel_value"):
    params: NovelValueParams


class AgentSilent(Predicate, frozen=True, tag="agent_silent"):
    params: AgentSilentParams


class TimestampNotMonotonic(Predicate, frozen=True, tag="timestamp_not_monotonic"):
    params: NoParams = NoParams()


class ClockSkew(Predicate, frozen=True, tag="clock_skew"):
    params: ClockSkewParams


class UptimeDecreased(Predicate, frozen=True, tag="uptime_decreased"):
    params: NoParams = NoParams()


class ProcessDisappeared(Predicate, frozen=True, tag="process_disappeared"):
    params: ProcessDisappearedParams


class SustainedCpu(Predicate, frozen=True, tag="sustained_cpu"):
    params: SustainedCpuParams


class ProcessCountSpike(Predicate, frozen=True, tag="process_count_spike"):
    params: ProcessCountSpikeParams


class ProcessExeSuspicious(Predicate, frozen=True, tag="process_exe_suspicious"):
    params: ProcessExeSuspiciousParams


class ProcessNameMismatch(Predicate, frozen=True, tag="process_name_mismatch"):
    params: ProcessNameMismatchParams


class ProcessOutbound(Predicate, frozen=True, tag="process_outbound"):
    params: ProcessOutboundParams


class ProcessParentIn(Predicate, frozen=True, tag="process_parent_in"):
    params: ProcessParentInParams


class CpuWithConnection(Predicate, frozen=True, tag="cpu_with_connection"):
    params: CpuWithConnectionParams


class ProcessCmdlineAll(Predicate, frozen=True, tag="process_cmdline_all"):
    params: CmdlineAllParams


class DestructiveCommand(Predicate, frozen=True, tag="destructive_command"):
    params: NoParams = NoParams()


class ServiceAccountDiscovery(Predicate, frozen=True, tag="service_account_discovery"):
    params: NoParams = NoParams()


class CredentialGuessing(Predicate, frozen=True, tag="credential_guessing"):
    params: NoParams = NoParams()


# The mcp pack's (detect/mcp.py): an MCP server's risk reasons, per group.
class McpShellAccess(Predicate, frozen=True, tag="mcp_shell_access"):
    params: NoParams = NoParams()


class McpBroadScope(Predicate, frozen=True, tag="mcp_broad_scope"):
    params: NoParams = NoParams()


class McpInlineSecret(Predicate, frozen=True, tag="mcp_inline_secret"):
    params: NoParams = NoParams()


LeafPredicate = (
    ProcessInSuspiciousPath
    | ProcessNameIn
    | ProcessCmdlineContains
    | ProcessExeDeleted
    | ProcessMasqueradesKernelThread
    | PortExposed
    | PortListening
    | PortOwnerNotIn
    | PortOwnerIn
    | LoggedInUserIn
    | SystemAccountLogin
    | Uid0NotRoot
    | NovelValue
    | AgentSilent
    | TimestampNotMonotonic
    | ClockSkew
    | UptimeDecreased
    | ProcessDisappeared
    | SustainedCpu
    | ProcessCountSpike
    | ProcessExeSuspicious
    | ProcessNameMismatch
    | ProcessOutbound
    | ProcessParentIn
    | CpuWithConnection
    | ProcessCmdlineAll
    | DestructiveCommand
    | McpShellAccess
    | McpBroadScope
    | McpInlineSecret
    | ServiceAccountDiscovery
    | CredentialGuessing
)


class AnyOfParams(Params, frozen=True):
    # Leaves only: any_of does not nest.
    predicates: Annotated[list[LeafPredicate], msgspec.Meta(min_length=1, max_length=16)]


class AnyOf(Predicate, frozen=True, tag="any_of"):
    params: AnyOfParams


AnyPredicate = LeafPredicate | AnyOf


def parse(data: object) -> AnyPredicate:
    """A predicate from decoded JSON (dicts); raises msgspec.ValidationError."""
    result: AnyPredicate = msgspec.convert(data, AnyPredicate)
    return result


def leaves(predicate: AnyPredicate) -> list[LeafPredicate]:
    if isinstance(predicate, AnyOf):
        return list(predicate.params.predicates)
    return [predicate]
