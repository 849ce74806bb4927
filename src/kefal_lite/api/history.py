"""A host's history: what changed and when, a snapshot as ingested, the diff of two times."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import msgspec
from litestar import Response, get
from litestar.params import FromPath, QueryParameter

from kefal_lite import snapshot as wire
from kefal_lite.api.deps import USER, CurrentUser, Offset, Svc
from kefal_lite.api.docs import documented
from kefal_lite.clock import iso, parse_iso
from kefal_lite.errors import NotFound, ValidationFailed, validation_item
from kefal_lite.history import diff
from kefal_lite.store import history, hosts
from kefal_lite.store.history import ChangeRecord

KindFilter = Annotated[
    str | None,
    QueryParameter(max_length=200, description="kinds, comma-separated: " + ", ".join(diff.KINDS)),
]
Time = Annotated[datetime | None, QueryParameter(description="ISO 8601; default now")]
ChangeLimit = Annotated[int, QueryParameter(ge=1, le=5000, description="page size")]


class ChangePage(msgspec.Struct, frozen=True):
    items: list[ChangeRecord]
    total: int


class DiffEnd(msgspec.Struct, frozen=True):
    snapshot_id: str
    at: str  # when the server received it


class DiffPage(msgspec.Struct, frozen=True):
    from_: DiffEnd = msgspec.field(name="from")
    to: DiffEnd
    items: list[ChangeRecord]
    total: int


def changes_before(host_id: str, opened_at: str) -> str:
    """The changes of the hour before an incident opened (and of its own snapshot)."""
    start = iso(parse_iso(opened_at) - timedelta(hours=1))
    query = urlencode({"since": start, "until": opened_at})
    return f"/api/v1/hosts/{quote(host_id, safe='')}/changes?{query}"


def _kinds(kind: str | None) -> tuple[str, ...]:
    if not kind:
        return ()
    kinds = tuple(k.strip() for k in kind.split(",") if k.strip())
    unknown = [k for k in kinds if k not in diff.KINDS]
    if unknown:
        raise ValidationFailed([validation_item(
            ["query", "kind"], f"unknown kind {unknown[0]!r}; one of {', '.join(diff.KINDS)}"
        )])  # fmt: skip
    return kinds


async def _host(svc: Svc, user_id: str, host_id: str) -> None:
    if not await svc.db.read(hosts.exists, user_id, host_id):
        raise NotFound("no such host")


@get("/api/v1/hosts/{host_id:str}/changes", dependencies=USER)
async def list_changes(
    host_id: FromPath[str],
    user: CurrentUser,
    svc: Svc,
    since: Time = None,
    until: Time = None,
    kind: KindFilter = None,
    limit: ChangeLimit = 1000,
    offset: Offset = 0,
) -> ChangePage:
    """What changed on the host between `since` (default: a day before `until`) and `until`
    (default: now), oldest first: processes by binary + command line + user, listening
    sockets, connections by peer, logins, accounts, authorized keys, addresses, the host
    itself (kernel, reboots). CPU and pids are not changes."""
    kinds = _kinds(kind)
    end = until or svc.clock.now()
    start = since or end - timedelta(days=1)
    await _host(svc, user.id, host_id)
    items, total = await svc.db.read(
        history.list_changes, user.id, host_id, since=iso(start), until=iso(end), kinds=kinds,
        limit=limit, offset=offset,
    )  # fmt: skip
    return ChangePage(items, total)


async def _at(svc: Svc, user_id: str, host_id: str, at: datetime | None, name: str) -> Any:
    snap = await svc.db.read(history.snapshot_at, user_id, host_id, iso(at or svc.clock.now()))
    if snap is None:
        raise NotFound(f"no snapshot of this host at or before `{name}`")
    return snap


# The bytes as stored, not re-encoded: the schema is the wire Snapshot's.
@get("/api/v1/hosts/{host_id:str}/snapshots", dependencies=USER, media_type="application/json",
     operation_class=documented(response={"application/json": wire.Snapshot}))  # fmt: skip
async def snapshot_at(
    host_id: FromPath[str], user: CurrentUser, svc: Svc, at: Time = None
) -> Response[bytes]:
    """The snapshot in force at `at` (the last received at or before it), byte for byte as
    the agent sent it; `X-Snapshot-Id` and `X-Received-At` say which."""
    await _host(svc, user.id, host_id)
    snap = await _at(svc, user.id, host_id, at, "at")
    return Response(
        snap.body,
        media_type="application/json",
        headers={"X-Snapshot-Id": snap.snapshot_id, "X-Received-At": snap.received_at},
    )


@get("/api/v1/hosts/{host_id:str}/diff", dependencies=USER)
async def diff_between(
    host_id: FromPath[str],
    user: CurrentUser,
    svc: Svc,
    from_: Annotated[datetime, QueryParameter(name="from", description="ISO 8601")],
    to: Time = None,
    kind: KindFilter = None,
) -> DiffPage:
    """What differs between the snapshots in force at `from` and at `to` (default now)."""
    kinds = _kinds(kind)
    await _host(svc, user.id, host_id)
    a = await _at(svc, user.id, host_id, from_, "from")
    b = await _at(svc, user.id, host_id, to, "to")
    found = diff.diff(wire.DECODER.decode(a.body), wire.DECODER.decode(b.body))
    items = [
        ChangeRecord(b.received_at, b.snapshot_id, c.kind, c.change, c.subject, c.before, c.after)
        for c in found
        if not kinds or c.kind in kinds
    ]
    return DiffPage(
        DiffEnd(a.snapshot_id, a.received_at), DiffEnd(b.snapshot_id, b.received_at), items,
        len(items),
    )  # fmt: skip


handlers = [list_changes, snapshot_at, diff_between]
