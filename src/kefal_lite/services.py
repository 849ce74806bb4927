"""The running server's parts, built once in the app's lifespan and shared by handlers,
and the order in which they start and stop."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from kefal_lite import metrics
from kefal_lite.accounts import Accounts
from kefal_lite.agent_tokens import AgentTokenCache
from kefal_lite.billing import BillingProvider
from kefal_lite.billing.noop import NoopBilling
from kefal_lite.billing.paypal import PayPalBilling
from kefal_lite.clock import Clock
from kefal_lite.community import Community
from kefal_lite.config import Settings
from kefal_lite.enrollment import EnrollmentTokens
from kefal_lite.events import EventBus
from kefal_lite.graphs import Graphs
from kefal_lite.ingest import Ingestor
from kefal_lite.jobs import JobRunner
from kefal_lite.mail import Mailer
from kefal_lite.monitor import Monitor
from kefal_lite.notify import Notifier
from kefal_lite.organizations import Organizations
from kefal_lite.remediate.llm import LlmProvider
from kefal_lite.remediate.service import Remediator
from kefal_lite.rules import Rules, detection_settings
from kefal_lite.security import SecretBox
from kefal_lite.sessions import SessionGate
from kefal_lite.store import sessions, users
from kefal_lite.store.db import Database
from kefal_lite.store.users import User


@dataclass
class Services:
    settings: Settings
    clock: Clock
    db: Database
    agent_tokens: AgentTokenCache
    accounts: Accounts
    mailer: Mailer
    rules: Rules
    billing: BillingProvider
    ingestor: Ingestor
    monitor: Monitor
    jobs: JobRunner
    community: Community
    events: EventBus
    notifier: Notifier
    enrollment: EnrollmentTokens
    orgs: Organizations
    graphs: Graphs
    sessions: SessionGate


def llm_provider(settings: Settings) -> LlmProvider | None:
    if not settings.llm_base_url:
        return None
    return LlmProvider(
        settings.llm_base_url,
        settings.llm_model,
        os.environ.get(settings.llm_api_key_env) or None,  # the key lives only in the environment
        settings.llm_timeout_seconds,
    )


def _observe_batch(size: int, seconds: float) -> None:
    metrics.BATCH_SIZE.observe(size)
    metrics.COMMIT_SECONDS.observe(seconds)


async def build(
    settings: Settings,
    clock: Clock,
    db: Database,
    secret: str,
    issue_session: Callable[[User, str, str], str],
) -> Services:
    """Wire the parts over a started database."""
    tokens = AgentTokenCache(db)
    mailer = Mailer(settings, db, clock)
    bus = EventBus()
    billing: BillingProvider = (
        PayPalBilling(settings, db, clock)
        if settings.billing_provider == "paypal"
        else NoopBilling()
    )
    accounts = Accounts(settings, db, clock, SecretBox(secret), tokens, issue_session, mailer.kick,
                        billing, bus.end_sessions)  # fmt: skip
    rules = Rules(
        settings.agents_silent_minutes,
        detection_settings(settings),
        settings.detection_guarded_processes,
    )
    llm = llm_provider(settings)
    community = Community(db, clock, rules, llm, billing)
    await community.withdraw_forbidden()
    await community.reload()
    notifier = Notifier(
        settings, db, clock, SecretBox(secret, b"kefal-lite channels v1"), rules, mailer.kick
    )
    runner = JobRunner(
        db,
        clock,
        {"remediate": Remediator(db, clock, rules, llm, billing).run, "notify": notifier.deliver},
    )
    monitor = Monitor(
        settings,
        db,
        clock,
        rules,
        on_incident=runner.kick,
        on_silent=lambda h: bus.publish(h.org_id, {"type": "host.silent", "host_id": h.id}),
        refresh_rules=community.refresh,
        purge_accounts=accounts.purge_due,
    )
    db.on_batch = _observe_batch
    return Services(
        settings=settings,
        clock=clock,
        db=db,
        agent_tokens=tokens,
        accounts=accounts,
        mailer=mailer,
        rules=rules,
        billing=billing,
        ingestor=Ingestor(db, clock, rules, settings.remediation_auto),
        monitor=monitor,
        jobs=runner,
        community=community,
        events=bus,
        notifier=notifier,
        enrollment=EnrollmentTokens(db, clock, accounts),
        orgs=Organizations(settings, db, clock, issue_session, mailer.kick, bus.end_membership),
        graphs=Graphs(db),
        sessions=SessionGate(db, clock, bus.end_session, bus.end_sessions),
    )


async def start(svc: Services) -> None:
    svc.mailer.start()
    svc.events.start(
        lambda ids: svc.db.read(users.session_versions, ids),
        lambda ids: svc.db.read(sessions.live_ids, ids),
    )
    svc.monitor.start()
    await svc.jobs.start()


async def stop(svc: Services) -> None:
    await svc.events.stop()
    await svc.jobs.stop()
    await svc.monitor.stop()
    await svc.mailer.stop()
