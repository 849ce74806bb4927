"""The running server's parts, built once in the app's lifespan and shared by handlers."""

from __future__ import annotations

from dataclasses import dataclass

from kefal_lite.accounts import Accounts
from kefal_lite.agent_tokens import AgentTokenCache
from kefal_lite.billing import BillingProvider
from kefal_lite.clock import Clock
from kefal_lite.community import Community
from kefal_lite.config import Settings
from kefal_lite.events import EventBus
from kefal_lite.ingest import Ingestor
from kefal_lite.jobs import JobRunner
from kefal_lite.mail import Mailer
from kefal_lite.monitor import Monitor
from kefal_lite.notify import Notifier
from kefal_lite.rules import Rules
from kefal_lite.store.db import Database


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
