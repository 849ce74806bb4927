"""Live updates: POST /api/v1/events/ticket, then GET /api/v1/events?ticket=… as SSE."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
from litestar import get, post
from litestar.params import QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.status_codes import HTTP_200_OK

from kefal_lite.api.deps import USER, CurrentUser, Org, Svc
from kefal_lite.api.docs import documented
from kefal_lite.errors import Unauthorized
from kefal_lite.store import orgs, sessions, users

KEEPALIVE_SECONDS = 15.0


class Ticket(msgspec.Struct, frozen=True):
    ticket: str  # GET /api/v1/events?ticket=...


@post("/api/v1/events/ticket", status_code=HTTP_200_OK, dependencies=USER)
async def ticket(user: CurrentUser, org: Org, svc: Svc) -> Ticket:
    """A single-use ticket, valid 60 s, for opening the event stream of the session's
    organization."""
    return Ticket(svc.events.ticket(user.id, user.token_version, org.session_id or "",
                                    org.org_id))  # fmt: skip


# One `data:` line of JSON per event, e.g. {"type": "incident.opened", "incident_id", "host_id"}.
@get("/api/v1/events", exclude_from_auth=True,
     operation_class=documented(response={"text/event-stream": str}))  # fmt: skip
async def stream(
    svc: Svc, ticket: Annotated[str, QueryParameter(max_length=100)]
) -> ServerSentEvent:
    """`incident.opened|updated|resolved` and `host.silent|recovered` for the ticket's tenant.

    The stream ends when the session it was opened from ends (logout, revoked, logout-all,
    password change or reset, role change, disable); at most 5 per user, the 6th is 429."""
    redeemed = svc.events.redeem(ticket)
    if redeemed is None:
        raise Unauthorized("invalid, used or expired event ticket; ask for a new one")
    user_id, token_version, sid, org_id = redeemed
    # The session may have ended in the seconds since the ticket was issued.
    current = await svc.db.read(users.session_versions, [user_id])
    live = await svc.db.read(sessions.live_ids, [sid])
    # ... and the user may have been removed from the ticket's organization (issue #17,
    # hole 6): end_membership closes only the streams open at removal time.
    role = await svc.db.read(orgs.role_of, org_id, user_id)
    if current.get(user_id) != token_version or sid not in live or role is None:
        raise Unauthorized("invalid, used or expired event ticket; ask for a new one")
    sub = svc.events.subscribe(user_id, token_version, sid, org_id)

    async def messages() -> AsyncIterator[ServerSentEventMessage]:
        try:
            yield ServerSentEventMessage(comment="connected")
            while not sub.dropped:
                try:
                    event = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ServerSentEventMessage(comment="keep-alive")
                    continue
                if event is None:
                    break  # the session ended
                yield ServerSentEventMessage(event=str(event["type"]), data=json.dumps(event))
        finally:
            svc.events.unsubscribe(sub)  # the client went away or was too slow

    return ServerSentEvent(messages())


handlers = [ticket, stream]
