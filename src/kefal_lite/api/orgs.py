"""Organizations, members, invitations, switching, and API keys. Who may call each route
is decided in api/access.py (RULES); these handlers translate HTTP to Organizations calls."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Response, delete, get, patch, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from kefal_lite import security
from kefal_lite.accounts import Email
from kefal_lite.api.deps import USER, CurrentUser, Org, Svc, actor
from kefal_lite.roles import Role
from kefal_lite.store import export
from kefal_lite.store.orgs import ApiKey, Invitation, Member, MyOrg
from kefal_lite.store.orgs import Org as OrgRow

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
SESSION_SECONDS = int(security.SESSION_TTL.total_seconds())


class OrgBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Name


class RoleBody(msgspec.Struct, forbid_unknown_fields=True):
    role: Role


class InviteBody(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    role: Role = "member"


class AcceptBody(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(max_length=256)]


class KeyBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    role: Role = "viewer"
    expires_at: datetime | None = None


class OrgList(msgspec.Struct, frozen=True):
    items: list[MyOrg]
    total: int


class MemberList(msgspec.Struct, frozen=True):
    items: list[Member]
    total: int


class InvitationInfo(msgspec.Struct, frozen=True):
    """An invitation as listed: never its token (only the hash is kept; the link is mailed)."""

    id: str
    email: str
    role: str
    invited_by: str
    created_at: str
    expires_at: str
    accepted_at: str | None
    accepted_by: str | None


class InvitationList(msgspec.Struct, frozen=True):
    items: list[InvitationInfo]
    total: int


class SwitchedSession(msgspec.Struct, frozen=True):
    access_token: str  # a session bound to the organization switched to
    token_type: str
    expires_in: int
    org_id: str


class ApiKeyInfo(msgspec.Struct, frozen=True):
    id: str
    name: str
    role: str
    prefix: str
    created_by: str
    created_at: str
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None


class NewApiKey(ApiKeyInfo, frozen=True):
    key: str  # `kfk_...`, in this answer only: send it as `Authorization: Bearer <key>`


class ApiKeyList(msgspec.Struct, frozen=True):
    items: list[ApiKeyInfo]
    total: int


Rows = list[dict[str, Any]]


class OrgExport(msgspec.Struct, frozen=True):
    """Everything the organization owns; no secret (token hashes, sealed channel URLs,
    password hashes and MFA seeds are left out)."""

    organization: dict[str, Any]
    members: Rows
    agents: Rows
    hosts: Rows
    latest_snapshots: dict[str, Any]
    incidents: Rows
    incident_events: Rows
    changes: Rows
    suppressions: Rows
    channels: Rows
    enrollment_tokens: Rows
    api_keys: Rows
    invitations: Rows
    invariants: Rows
    subscriptions: Rows
    audit: Rows


def _invitation(inv: Invitation) -> InvitationInfo:
    return InvitationInfo(inv.id, inv.email, inv.role, inv.invited_by, inv.created_at,
                          inv.expires_at, inv.accepted_at, inv.accepted_by)  # fmt: skip


def _key(key: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(key.id, key.name, key.role, key.prefix, key.created_by, key.created_at,
                      key.expires_at, key.last_used_at, key.revoked_at)  # fmt: skip


@get("/api/v1/orgs", dependencies=USER)
async def list_orgs(user: CurrentUser, svc: Svc) -> OrgList:
    """The caller's organizations, each with the caller's role in it."""
    items = await svc.orgs.mine(user.id)
    return OrgList(items, len(items))


@post("/api/v1/orgs", status_code=HTTP_201_CREATED, dependencies=USER)
async def create_org(data: JSONBody[OrgBody], user: CurrentUser, org: Org, svc: Svc) -> OrgRow:
    """The caller becomes its owner; switch to it with POST /api/v1/orgs/{id}/switch."""
    return await svc.orgs.create(actor(user, org), data.name)


@get("/api/v1/orgs/{org_id:str}", dependencies=USER)
async def get_org(org_id: FromPath[str], svc: Svc) -> OrgRow:
    return await svc.orgs.get(org_id)


@patch("/api/v1/orgs/{org_id:str}", dependencies=USER)
async def rename_org(
    org_id: FromPath[str], data: JSONBody[OrgBody], user: CurrentUser, org: Org, svc: Svc
) -> OrgRow:
    return await svc.orgs.rename(actor(user, org), org_id, data.name)


class DeleteOrgBody(msgspec.Struct, forbid_unknown_fields=True):
    name: str  # the organization's name typed again


@delete("/api/v1/orgs/{org_id:str}", status_code=HTTP_204_NO_CONTENT, dependencies=USER)
async def delete_org(
    org_id: FromPath[str], data: JSONBody[DeleteOrgBody], user: CurrentUser, org: Org, svc: Svc
) -> None:
    """The owner deletes the organization with everything it owns (export it first); its
    audit rows stay. Not a personal organization (409: it goes with its account), not
    while a paid subscription runs (409)."""
    found = await svc.orgs.get(org_id)
    status = await svc.billing.status(found)
    paid = svc.billing.name != "noop" and status["state"] in ("active", "past_due")
    await svc.orgs.delete(actor(user, org), org_id, data.name, paid)
    svc.agent_tokens.invalidate_org(org_id)  # its agents' tokens fail from the next request


@get("/api/v1/orgs/{org_id:str}/members", dependencies=USER)
async def list_members(org_id: FromPath[str], svc: Svc) -> MemberList:
    items = await svc.orgs.members(org_id)
    return MemberList(items, len(items))


@patch("/api/v1/orgs/{org_id:str}/members/{user_id:str}", dependencies=USER)
async def set_member_role(
    org_id: FromPath[str], user_id: FromPath[str], data: JSONBody[RoleBody], user: CurrentUser,
    org: Org, svc: Svc,
) -> Member:  # fmt: skip
    """Demoting the last owner is 409."""
    return await svc.orgs.set_role(actor(user, org), org_id, user_id, data.role)


@delete("/api/v1/orgs/{org_id:str}/members/{user_id:str}", status_code=HTTP_204_NO_CONTENT,
        dependencies=USER)  # fmt: skip
async def remove_member(
    org_id: FromPath[str], user_id: FromPath[str], user: CurrentUser, org: Org, svc: Svc
) -> None:
    """An owner removes a member, or a member leaves; the last owner cannot leave (409)."""
    await svc.orgs.remove(actor(user, org), org_id, user_id)


@post("/api/v1/orgs/{org_id:str}/invitations", status_code=HTTP_201_CREATED, dependencies=USER)
async def invite(
    org_id: FromPath[str], data: JSONBody[InviteBody], user: CurrentUser, org: Org, svc: Svc
) -> InvitationInfo:
    """Mails a link valid 7 days, single use; a role above the inviter's own is 403."""
    role = await svc.orgs.role_in(org, user.id, org_id)
    return _invitation(await svc.orgs.invite(actor(user, org), role, org_id, data.email,
                                             data.role))  # fmt: skip


@get("/api/v1/orgs/{org_id:str}/invitations", dependencies=USER)
async def list_invitations(org_id: FromPath[str], svc: Svc) -> InvitationList:
    items = [_invitation(i) for i in await svc.orgs.invitations(org_id)]
    return InvitationList(items, len(items))


@delete("/api/v1/orgs/{org_id:str}/invitations/{invitation_id:str}",
        status_code=HTTP_204_NO_CONTENT, dependencies=USER)  # fmt: skip
async def cancel_invitation(
    org_id: FromPath[str], invitation_id: FromPath[str], user: CurrentUser, org: Org, svc: Svc
) -> None:
    """Cancel a pending invitation: its link no longer opens (issue #17)."""
    await svc.orgs.cancel_invitation(actor(user, org), org_id, invitation_id)


@post("/api/v1/invitations/accept", status_code=HTTP_200_OK, dependencies=USER)
async def accept_invitation(
    data: JSONBody[AcceptBody], user: CurrentUser, org: Org, svc: Svc
) -> MyOrg:
    """The signed-in account joins; unknown, used or expired tokens are 400."""
    return await svc.orgs.accept(actor(user, org), data.token)


@post("/api/v1/orgs/{org_id:str}/switch", status_code=HTTP_200_OK, dependencies=USER)
async def switch(org_id: FromPath[str], user: CurrentUser, org: Org, svc: Svc) -> SwitchedSession:
    """The same session (one row in /auth/sessions), acting in another organization."""
    token = await svc.orgs.switch(user, org.session_id or "", org_id)
    return SwitchedSession(token, "bearer", SESSION_SECONDS, org_id)


@get("/api/v1/orgs/{org_id:str}/export", dependencies=USER)
async def export_org(org_id: FromPath[str], svc: Svc) -> Response[OrgExport]:
    """A JSON file of everything the organization owns (owner only)."""
    found = msgspec.convert(await svc.db.read(export.export, org_id), OrgExport)
    name = f"kefal-org-{org_id}.json"
    return Response(found, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@get("/api/v1/api-keys", dependencies=USER)
async def list_keys(org: Org, svc: Svc) -> ApiKeyList:
    items = [_key(k) for k in await svc.orgs.keys(org.org_id)]
    return ApiKeyList(items, len(items))


@post("/api/v1/api-keys", status_code=HTTP_201_CREATED, dependencies=USER)
async def create_key(data: JSONBody[KeyBody], user: CurrentUser, org: Org, svc: Svc) -> NewApiKey:
    """The key is in this answer only. Its role is at most the caller's (else 403)."""
    key, token = await svc.orgs.create_key(actor(user, org), org.role, data.name, data.role,
                                           data.expires_at)  # fmt: skip
    info = _key(key)
    return NewApiKey(**msgspec.structs.asdict(info), key=token)


@delete("/api/v1/api-keys/{key_id:str}", status_code=HTTP_204_NO_CONTENT, dependencies=USER)
async def revoke_key(key_id: FromPath[str], user: CurrentUser, org: Org, svc: Svc) -> None:
    """At once: the next request with the key is 401."""
    await svc.orgs.revoke_key(actor(user, org), key_id)


handlers = [
    list_orgs, create_org, get_org, rename_org, list_members, set_member_role, remove_member,
    invite, list_invitations, cancel_invitation, accept_invitation, switch, export_org, delete_org,
    list_keys, create_key, revoke_key,
]  # fmt: skip
