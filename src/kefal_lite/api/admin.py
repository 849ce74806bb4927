"""Admin (role `admin`, others 403): platform analytics, users, and the audit trail."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

import msgspec
from litestar import Response, get, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from kefal_lite import csvsafe
from kefal_lite.accounts import Email, Password, Username
from kefal_lite.api.auth import Profile, profile
from kefal_lite.api.billing import BillingStatus, billing_status
from kefal_lite.api.deps import ADMIN, USER, CurrentUser, Limit, Offset, Org, Svc
from kefal_lite.api.docs import documented
from kefal_lite.api.incidents import IncidentView, incident_view
from kefal_lite.billing.plans import AUDIT_EXPORT
from kefal_lite.clock import iso, parse_iso
from kefal_lite.errors import NotAllowed, NotFound, ValidationFailed, validation_item
from kefal_lite.store import agents, audit, incidents, stats, users
from kefal_lite.store.agents import Agent

Days = Annotated[int, QueryParameter(ge=1, le=366)]
Since = Annotated[str | None, QueryParameter(max_length=40, description="ISO 8601, inclusive")]


class NewAccount(msgspec.Struct, forbid_unknown_fields=True):
    username: Username
    password: Password
    email: Email | None = None
    role: Literal["admin", "user"] = "user"


class OpenBySeverity(msgspec.Struct, frozen=True):
    critical: int
    high: int
    medium: int
    low: int


class Totals(msgspec.Struct, frozen=True):
    users: int
    agents: int  # active ones
    hosts_online: int
    hosts_silent: int
    snapshots: int
    open_incidents: OpenBySeverity  # open or acknowledged


class Day(msgspec.Struct, frozen=True):
    date: str
    new_users: int
    active_agents: int
    snapshots: int
    incidents: int


class Dashboard(msgspec.Struct, frozen=True):
    totals: Totals
    daily: list[Day]  # oldest first, one per day, zeros included


class UserSummary(msgspec.Struct, frozen=True):
    id: str
    username: str
    email: str | None
    role: str
    plan: str
    billing_state: str
    agents: int  # active ones
    last_active_at: str | None
    created_at: str
    disabled: bool


class UserPage(msgspec.Struct, frozen=True):
    items: list[UserSummary]
    total: int


class UserDetail(msgspec.Struct, frozen=True):
    user: Profile
    agents: list[Agent]
    recent_incidents: list[IncidentView]  # the 20 newest, any status
    billing: BillingStatus


@get("/api/v1/admin/dashboard", dependencies=ADMIN)
async def dashboard(user: CurrentUser, svc: Svc, days: Days = 30) -> Dashboard:
    """Totals now, and per-day counters kept as ingests commit (never a history scan)."""
    today = svc.clock.now().date()
    first = today - timedelta(days=days - 1)
    totals = await svc.db.read(stats.totals)
    series = await svc.db.read(stats.series, first.isoformat())
    daily = []
    for n in range(days):
        day = (first + timedelta(days=n)).isoformat()
        values = series.get(day, {})
        daily.append({"date": day, **{m: values.get(m, 0) for m in stats.METRICS}})
    return msgspec.convert({"totals": totals, "daily": daily}, Dashboard)


async def _summary(svc: Svc, summary: users.UserSummary) -> UserSummary:
    u = summary.user
    billing = await svc.billing.status(await svc.orgs.get(u.id))  # the personal org's
    return UserSummary(
        u.id, u.username, u.email, u.role, billing["plan"], billing["state"], summary.agents,
        u.last_active_at, u.created_at, bool(u.disabled),
    )  # fmt: skip


@get("/api/v1/admin/users", dependencies=ADMIN)
async def list_users(
    user: CurrentUser,
    svc: Svc,
    q: Annotated[str | None, QueryParameter(max_length=100)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> UserPage:
    """Every account; `q` searches username and email."""
    found, total = await svc.db.read(users.search, q, limit=limit, offset=offset)
    return UserPage([await _summary(svc, s) for s in found], total)


@get("/api/v1/admin/users/{user_id:str}", dependencies=ADMIN)
async def get_user(user_id: FromPath[str], user: CurrentUser, svc: Svc) -> UserDetail:
    target = await svc.db.read(users.get, user_id)
    if target is None:
        raise NotFound("no such user")
    their_agents, _ = await svc.db.read(agents.list_for_user, user_id, limit=500, offset=0)
    recent, _ = await svc.db.read(
        incidents.list_for_user, user_id, status=None, severity=None, host_id=None, limit=20,
        offset=0,
    )  # fmt: skip
    return UserDetail(
        profile(target), their_agents, [incident_view(svc, i) for i in recent],
        billing_status(await svc.billing.status(await svc.orgs.get(target.id))),
    )


@post("/api/v1/admin/users", status_code=HTTP_201_CREATED, dependencies=ADMIN)
async def create_user(data: JSONBody[NewAccount], user: CurrentUser, svc: Svc) -> Profile:
    created = await svc.accounts.create_user(
        user, data.username, data.password, role=data.role, email=data.email
    )
    return profile(created)


# --- audit -------------------------------------------------------------------------


def _bound(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return iso(parse_iso(value))
    except ValueError:
        raise ValidationFailed(
            [validation_item(["query", "since/until"], "not an ISO 8601 time")]
        ) from None


async def _audit(svc: Svc, user_id: str | None, action: str | None, since: str | None,
                 until: str | None, fmt: str, limit: int, offset: int,
                 org_id: str | None = None) -> Any:  # fmt: skip
    if fmt == "csv":
        limit, offset = 100_000, 0  # an export is the whole selection
    rows, total = await svc.db.read(
        audit.query, user_id=user_id, action=action, since=_bound(since), until=_bound(until),
        limit=limit, offset=offset, org_id=org_id,
    )  # fmt: skip
    if fmt == "json":
        return AuditPage(rows, total)
    body = csvsafe.write(
        ["at", "user_id", "actor", "action", "target", "client", "detail"],
        (
            [r.at, r.user_id or "", r.actor, r.action, r.target or "", r.client or "",
             msgspec.json.encode(r.detail).decode() if r.detail else ""]
            for r in rows
        ),
    )  # fmt: skip
    disposition = 'attachment; filename="kefal-audit.csv"'
    return Response(body, media_type="text/csv", headers={"Content-Disposition": disposition})


class AuditPage(msgspec.Struct, frozen=True):
    items: list[audit.Row]
    total: int


# JSON by default; `?format=csv` answers the same rows as a CSV download.
_AUDIT = documented(response={"application/json": AuditPage, "text/csv": str})

Action = Annotated[str | None, QueryParameter(max_length=64)]
Format = Annotated[Literal["json", "csv"], QueryParameter()]


@get("/api/v1/audit", dependencies=USER, operation_class=_AUDIT)
async def own_audit(
    user: CurrentUser, org: Org, svc: Svc, action: Action = None, since: Since = None,
    until: Since = None, format: Format = "json", limit: Limit = 50, offset: Offset = 0,
) -> Any:  # fmt: skip
    """What happened in the organization, and to your own account, newest first;
    `?format=csv` exports it (a plan feature under a paying billing provider)."""
    if format == "csv" and not await svc.billing.has_feature(org.org_id, AUDIT_EXPORT):
        raise NotAllowed("audit export comes with the Enterprise plan")
    # A key is not its maker: it sees the organization's rows only, never the maker's own
    # account trail (logins with client addresses, MFA changes). Issue #17, hole 14.
    own = user.id if org.key_id is None else None
    return await _audit(svc, own, action, since, until, format, limit, offset, org.org_id)


@get("/api/v1/admin/audit", dependencies=ADMIN, operation_class=_AUDIT)
async def all_audit(
    user: CurrentUser, svc: Svc, action: Action = None, since: Since = None, until: Since = None,
    format: Format = "json", limit: Limit = 50, offset: Offset = 0,
) -> Any:  # fmt: skip
    return await _audit(svc, None, action, since, until, format, limit, offset)


handlers = [dashboard, list_users, get_user, create_user, own_audit, all_audit]
