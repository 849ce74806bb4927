"""Schema migrations: an append-only list; PRAGMA user_version counts the applied ones.

Never edit or reorder an entry once it is on main: a user's database has run it.
Add a new entry instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

# A migration is SQL statements, or a Python function for what SQL cannot do (recompress).
Migration = str | Callable[[sqlite3.Connection], None]


def _history_folds_in_background(conn: sqlite3.Connection) -> None:
    """Nothing: the history stored before migration 13 is folded by the background
    compactor (history/service.py `compact`), which takes every finished hour of rows
    that is not a host's latest snapshot, however old, in bounded batches beside ingest.

    This entry used to fold it all here, at 1-5 ms a snapshot (benchmarks/README.md, Host
    history: minutes for a few hundred thousand rows, during which `serve` did not start).
    Editing it is safe both ways: a database that ran the old fold has no unfolded rows
    left, and one that runs this no-op keeps its rows readable as they are (reads look in
    rows and segments alike) until the compactor folds them.
    """
    del conn


# Tables whose tenant column was user_id and becomes org_id (issue #17). Each user's
# personal organization has the user's id, so the rename keeps every row where it is.
_TENANT_TABLES = ("agents", "hosts", "snapshots", "incidents", "channels", "subscriptions",
                  "suppressions", "enrollment_tokens", "changes", "snapshot_segments")  # fmt: skip
# Of those, the ones whose tenant column names users(id) as its parent: it names orgs(id) now.
_TENANT_FKS = ("agents", "hosts", "channels", "subscriptions", "suppressions",
               "enrollment_tokens")  # fmt: skip


def _organizations(conn: sqlite3.Connection) -> None:
    """Organizations own what users owned: a personal organization per user, with the
    user's id and the user as owner, so tenant columns are renamed, not rewritten. Run on
    SQLite and (by store/pg.py, with a PgConnection) on PostgreSQL: the DDL goes through
    its translation there, and the foreign keys are altered the way each one can."""
    sqlite = isinstance(conn, sqlite3.Connection)
    if not sqlite:
        from kefal_lite.store.pg import ddl  # only with the postgres extra installed
    for statement in _statements(
        """
        CREATE TABLE orgs (
            id         TEXT PRIMARY KEY,
            name       TEXT NOT NULL,
            personal   INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE TABLE memberships (
            org_id     TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
            user_id    TEXT NOT NULL REFERENCES users(id),
            role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
            created_at TEXT NOT NULL,
            PRIMARY KEY (org_id, user_id)
        );
        CREATE INDEX memberships_by_user ON memberships(user_id, org_id);
        CREATE TABLE invitations (
            id          TEXT PRIMARY KEY,
            org_id      TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
            email       TEXT NOT NULL COLLATE NOCASE,
            role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
            token_hash  BLOB NOT NULL UNIQUE,
            invited_by  TEXT NOT NULL,
            created_at  TEXT NOT NULL,
            expires_at  TEXT NOT NULL,
            accepted_at TEXT,
            accepted_by TEXT
        );
        CREATE INDEX invitations_by_org ON invitations(org_id, created_at);
        CREATE TABLE api_keys (
            id           TEXT PRIMARY KEY,
            org_id       TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
            created_by   TEXT NOT NULL REFERENCES users(id),
            name         TEXT NOT NULL,
            role         TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
            prefix       TEXT NOT NULL,
            token_hash   BLOB NOT NULL UNIQUE,
            created_at   TEXT NOT NULL,
            expires_at   TEXT,
            last_used_at TEXT,
            revoked_at   TEXT
        );
        CREATE INDEX api_keys_by_org ON api_keys(org_id, created_at);
        INSERT INTO orgs (id, name, personal, created_at)
            SELECT id, username, 1, created_at FROM users;
        INSERT INTO memberships (org_id, user_id, role, created_at)
            SELECT id, id, 'owner', created_at FROM users;
        ALTER TABLE audit ADD COLUMN org_id TEXT;
        UPDATE audit SET org_id = user_id;
        CREATE INDEX audit_by_org ON audit(org_id, at);
        ALTER TABLE invariants ADD COLUMN org_id TEXT;
        UPDATE invariants SET org_id = contributed_by
        """
    ):
        conn.execute(statement if sqlite else ddl(statement))
    for table in _TENANT_TABLES:
        conn.execute(f"ALTER TABLE {table} RENAME COLUMN user_id TO org_id")
    if not sqlite:  # PostgreSQL names a column's foreign key <table>_<column>_fkey
        for table in _TENANT_FKS:
            conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_user_id_fkey")
            conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_org_id_fkey"
                         " FOREIGN KEY (org_id) REFERENCES orgs(id)")  # fmt: skip
        return
    # SQLite cannot ALTER a foreign key; its documented way for a change that leaves the
    # stored rows valid (every org_id is an orgs.id now) is to edit the schema text.
    (version,) = conn.execute("PRAGMA schema_version").fetchone()
    conn.execute("PRAGMA writable_schema = ON")
    marks = ",".join("?" * len(_TENANT_FKS))
    conn.execute(
        "UPDATE sqlite_schema SET sql = replace(sql, 'REFERENCES users(id)', 'REFERENCES orgs(id)')"
        f" WHERE type = 'table' AND name IN ({marks})",
        _TENANT_FKS,
    )
    conn.execute(f"PRAGMA schema_version = {version + 1}")
    conn.execute("PRAGMA writable_schema = OFF")


MIGRATIONS: tuple[Migration, ...] = (
    # 1: accounts, agents, password resets, mail outbox
    """
    CREATE TABLE users (
        id             TEXT PRIMARY KEY,
        username       TEXT NOT NULL UNIQUE COLLATE NOCASE,
        email          TEXT UNIQUE COLLATE NOCASE,
        password_hash  TEXT NOT NULL,
        role           TEXT NOT NULL CHECK (role IN ('admin', 'user')),
        disabled       INTEGER NOT NULL DEFAULT 0,
        token_version  INTEGER NOT NULL DEFAULT 0,
        mfa_enabled    INTEGER NOT NULL DEFAULT 0,
        mfa_secret     TEXT,
        mfa_pending    TEXT,
        mfa_last_step  INTEGER NOT NULL DEFAULT 0,
        plan           TEXT NOT NULL DEFAULT 'self-hosted',
        trial_ends_at  TEXT,
        created_at     TEXT NOT NULL,
        last_active_at TEXT
    );
    CREATE TABLE agents (
        id            TEXT PRIMARY KEY,
        user_id       TEXT NOT NULL REFERENCES users(id),
        name          TEXT NOT NULL,
        hostname      TEXT,
        token_hash    BLOB NOT NULL UNIQUE,
        status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
        agent_version TEXT,
        created_at    TEXT NOT NULL,
        last_seen_at  TEXT,
        revoked_at    TEXT
    );
    CREATE INDEX agents_by_user ON agents(user_id, created_at);
    CREATE TABLE password_resets (
        token_hash BLOB PRIMARY KEY,
        user_id    TEXT NOT NULL REFERENCES users(id),
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at    TEXT
    );
    CREATE INDEX password_resets_by_user ON password_resets(user_id);
    CREATE TABLE outbox (
        id         INTEGER PRIMARY KEY,
        recipient  TEXT NOT NULL,
        subject    TEXT NOT NULL,
        body       TEXT,
        status     TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'local')),
        attempts   INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at TEXT NOT NULL,
        sent_at    TEXT
    );
    CREATE INDEX outbox_pending ON outbox(status, id);
    """,
    # 2: hosts with their latest state, snapshot history, incidents and their history
    """
    CREATE TABLE hosts (
        id            TEXT PRIMARY KEY,
        user_id       TEXT NOT NULL REFERENCES users(id),
        agent_id      TEXT NOT NULL UNIQUE REFERENCES agents(id),
        hostname      TEXT NOT NULL,
        os            TEXT,
        kernel        TEXT,
        agent_version TEXT,
        first_seen_at TEXT NOT NULL,
        last_seen_at  TEXT NOT NULL,
        snapshot_id   TEXT,
        state         BLOB,
        silent        INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX hosts_by_user ON hosts(user_id, hostname);
    CREATE INDEX hosts_by_last_seen ON hosts(silent, last_seen_at);
    CREATE TABLE snapshots (
        id          TEXT PRIMARY KEY,
        user_id     TEXT NOT NULL,
        host_id     TEXT NOT NULL,
        received_at TEXT NOT NULL,
        taken_at    TEXT NOT NULL,
        body        BLOB NOT NULL
    );
    CREATE INDEX snapshots_by_received ON snapshots(received_at);
    CREATE INDEX snapshots_by_host ON snapshots(host_id, received_at);
    CREATE TABLE incidents (
        id              TEXT PRIMARY KEY,
        user_id         TEXT NOT NULL,
        host_id         TEXT NOT NULL,
        invariant_id    TEXT NOT NULL,
        invariant_name  TEXT NOT NULL,
        category        TEXT NOT NULL,
        severity        TEXT NOT NULL,
        status          TEXT NOT NULL
                        CHECK (status IN ('open', 'acknowledged', 'dismissed', 'resolved')),
        state_like      INTEGER NOT NULL,
        subject         TEXT NOT NULL,
        title           TEXT NOT NULL,
        evidence        TEXT NOT NULL,
        snapshot_id     TEXT,
        attack          TEXT,
        contributed_by  TEXT,
        first_seen_at   TEXT NOT NULL,
        last_seen_at    TEXT NOT NULL,
        occurrences     INTEGER NOT NULL DEFAULT 1,
        resolved_at     TEXT,
        resolved_by     TEXT,
        dismiss_reason  TEXT,
        dismissed_until TEXT
    );
    CREATE UNIQUE INDEX incidents_one_active ON incidents(host_id, invariant_id, subject)
        WHERE status IN ('open', 'acknowledged');
    CREATE INDEX incidents_by_key ON incidents(host_id, invariant_id, subject, status);
    CREATE INDEX incidents_by_user ON incidents(user_id, last_seen_at);
    CREATE INDEX incidents_by_host_status ON incidents(host_id, status);
    CREATE TABLE incident_events (
        id          INTEGER PRIMARY KEY,
        incident_id TEXT NOT NULL REFERENCES incidents(id),
        at          TEXT NOT NULL,
        actor       TEXT NOT NULL,
        action      TEXT NOT NULL,
        detail      TEXT
    );
    CREATE INDEX incident_events_by_incident ON incident_events(incident_id, id);
    """,
    # 3: remediation on incidents, and the persisted jobs table
    """
    ALTER TABLE incidents ADD COLUMN remediation_status TEXT NOT NULL DEFAULT 'none';
    ALTER TABLE incidents ADD COLUMN remediation_mode TEXT;
    ALTER TABLE incidents ADD COLUMN remediation_source TEXT;
    ALTER TABLE incidents ADD COLUMN remediation_actions TEXT;
    ALTER TABLE incidents ADD COLUMN remediation_generated_at TEXT;
    ALTER TABLE incidents ADD COLUMN remediation_error TEXT;
    CREATE INDEX incidents_awaiting_verification ON incidents(host_id)
        WHERE remediation_status = 'applied';
    CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY,
        kind        TEXT NOT NULL,
        payload     TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        run_after   TEXT NOT NULL,
        last_error  TEXT,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    );
    CREATE INDEX jobs_due ON jobs(status, run_after);
    """,
    # 4: community invariants
    """
    CREATE TABLE invariants (
        id             TEXT PRIMARY KEY,
        name           TEXT NOT NULL UNIQUE COLLATE NOCASE,
        invariant_type TEXT NOT NULL,
        predicate      TEXT NOT NULL,
        severity       TEXT NOT NULL,
        metadata       TEXT NOT NULL,
        source         TEXT NOT NULL CHECK (source IN ('community', 'pack')),
        status         TEXT NOT NULL CHECK (status IN ('pending', 'active', 'rejected', 'retired')),
        contributed_by TEXT NOT NULL REFERENCES users(id),
        report         TEXT,
        created_at     TEXT NOT NULL,
        verified_at    TEXT,
        retired_at     TEXT
    );
    CREATE INDEX invariants_by_status ON invariants(status);
    CREATE INDEX invariants_by_contributor ON invariants(contributed_by, status);
    """,
    # 5: daily counters for the admin dashboard, and the audit log
    """
    CREATE TABLE daily_counts (
        day    TEXT NOT NULL,
        metric TEXT NOT NULL,
        value  INTEGER NOT NULL,
        PRIMARY KEY (day, metric)
    );
    CREATE TABLE daily_active_agents (
        day      TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        PRIMARY KEY (day, agent_id)
    );
    CREATE TABLE audit (
        id      INTEGER PRIMARY KEY,
        at      TEXT NOT NULL,
        user_id TEXT,
        actor   TEXT NOT NULL,
        action  TEXT NOT NULL,
        target  TEXT,
        client  TEXT,
        detail  TEXT
    );
    CREATE INDEX audit_by_user ON audit(user_id, at);
    CREATE INDEX audit_by_action ON audit(action, at);
    CREATE INDEX audit_by_time ON audit(at);
    """,
    # 6: notification channels, and host notices (rate limit for flapping hosts)
    """
    CREATE TABLE channels (
        id              TEXT PRIMARY KEY,
        user_id         TEXT NOT NULL REFERENCES users(id),
        name            TEXT NOT NULL,
        url_sealed      TEXT NOT NULL,
        url_masked      TEXT NOT NULL,
        secret_sealed   TEXT,
        min_severity    TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        last_success_at TEXT,
        last_error      TEXT,
        last_error_at   TEXT
    );
    CREATE INDEX channels_by_user ON channels(user_id);
    CREATE TABLE host_notices (
        host_id TEXT NOT NULL,
        at      TEXT NOT NULL
    );
    CREATE INDEX host_notices_by_host ON host_notices(host_id, at);
    """,
    # 7: billing state per user and processed PayPal webhook events
    """
    CREATE TABLE subscriptions (
        user_id              TEXT PRIMARY KEY REFERENCES users(id),
        plan                 TEXT NOT NULL,
        state                TEXT NOT NULL,
        provider_id          TEXT,
        current_period_end   TEXT,
        next_billing_date    TEXT,
        cancel_at_period_end INTEGER NOT NULL DEFAULT 0,
        updated_at           TEXT NOT NULL
    );
    CREATE INDEX subscriptions_by_provider_id ON subscriptions(provider_id);
    CREATE TABLE webhook_events (
        event_id    TEXT PRIMARY KEY,
        event_type  TEXT NOT NULL,
        received_at TEXT NOT NULL
    );
    """,
    # 8: the silent-agent timer keeps its state per rule per host (a host marked silent once,
    # at the shortest threshold, let a 1-minute community rule hide the builtin's incident);
    # why an invariant was retired or rejected without a person (kinds no longer contributable).
    # Seeded from the agent-silence incidents already opened in a host's current silence, so
    # an upgrade does not open them again.
    """
    CREATE TABLE silent_timers (
        host_id      TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
        invariant_id TEXT NOT NULL,
        last_seen_at TEXT NOT NULL,
        PRIMARY KEY (host_id, invariant_id)
    );
    INSERT INTO silent_timers (host_id, invariant_id, last_seen_at)
        SELECT DISTINCT i.host_id, i.invariant_id, h.last_seen_at
        FROM incidents i JOIN hosts h ON h.id = i.host_id
        WHERE h.silent = 1 AND i.subject = 'agent:' || h.agent_id
          AND i.first_seen_at >= h.last_seen_at;
    CREATE INDEX hosts_by_seen ON hosts(last_seen_at);
    ALTER TABLE invariants ADD COLUMN status_reason TEXT;
    """,
    # 9: suppressions (findings that open no incident), and per-host suppressed counts
    """
    CREATE TABLE suppressions (
        id           TEXT PRIMARY KEY,
        user_id      TEXT NOT NULL REFERENCES users(id),
        invariant_id TEXT,
        host_id      TEXT,
        subject_glob TEXT,
        reason       TEXT NOT NULL,
        expires_at   TEXT,
        created_by   TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        hits         INTEGER NOT NULL DEFAULT 0,
        last_hit_at  TEXT,
        CHECK (invariant_id IS NOT NULL OR host_id IS NOT NULL OR subject_glob IS NOT NULL)
    );
    CREATE INDEX suppressions_by_user ON suppressions(user_id, created_at);
    ALTER TABLE hosts ADD COLUMN suppressed INTEGER NOT NULL DEFAULT 0;
    """,
    # 10: enrollment tokens: enroll agents without a user's password (max_uses 0: unlimited)
    """
    CREATE TABLE enrollment_tokens (
        id           TEXT PRIMARY KEY,
        user_id      TEXT NOT NULL REFERENCES users(id),
        name         TEXT,
        token_hash   BLOB NOT NULL UNIQUE,
        created_at   TEXT NOT NULL,
        expires_at   TEXT NOT NULL,
        max_uses     INTEGER NOT NULL CHECK (max_uses >= 0),
        uses         INTEGER NOT NULL DEFAULT 0,
        last_used_at TEXT,
        revoked_at   TEXT
    );
    CREATE INDEX enrollment_tokens_by_user ON enrollment_tokens(user_id, created_at);
    """,
    # 11: a person's group for a host (prod, dev, ...); the estate graph groups by it
    """
    ALTER TABLE hosts ADD COLUMN host_group TEXT;
    """,
    # 12: timer: the incident's rule is judged by a timer (agent silence), not by snapshots; a
    # property of the rule's kind, so a rule of that kind with another id is treated alike
    """
    ALTER TABLE incidents ADD COLUMN timer INTEGER NOT NULL DEFAULT 0;
    UPDATE incidents SET timer = 1 WHERE invariant_id = 'agent_silent';
    """,
    # 13: host history: what changed between consecutive snapshots, and snapshots folded
    # into hourly segments once their hour is over (store/history.py)
    """
    CREATE TABLE changes (
        id          INTEGER PRIMARY KEY,
        user_id     TEXT NOT NULL,
        host_id     TEXT NOT NULL,
        snapshot_id TEXT NOT NULL,
        at          TEXT NOT NULL,
        kind        TEXT NOT NULL,
        change      TEXT NOT NULL CHECK (change IN ('added', 'removed', 'modified')),
        subject     TEXT NOT NULL,
        before      TEXT,
        after       TEXT
    );
    CREATE INDEX changes_by_host ON changes(host_id, at);
    CREATE INDEX changes_by_time ON changes(at);
    CREATE TABLE snapshot_segments (
        id       INTEGER PRIMARY KEY,
        user_id  TEXT NOT NULL,
        host_id  TEXT NOT NULL,
        first_at TEXT NOT NULL,
        last_at  TEXT NOT NULL,
        entries  INTEGER NOT NULL,
        -- 1: past the snapshot tier, a day's hourly snapshots in one segment
        thinned  INTEGER NOT NULL DEFAULT 0,
        body     BLOB NOT NULL
    );
    CREATE INDEX snapshot_segments_by_host ON snapshot_segments(host_id, first_at);
    CREATE INDEX snapshot_segments_by_last ON snapshot_segments(last_at);
    """,
    # 14: the history already stored, folded into segments: now by the background compactor
    _history_folds_in_background,
    # 15: a row per login (the JWT carries its id, so one session can end alone; the token
    # version it was issued under, so the existing "end every session" bumps end it too),
    # MFA recovery codes (SHA-256 of 80 random bits, single use), and self-service account
    # deletion (disabled now, purged once delete_after passes unless the person logs back in)
    """
    CREATE TABLE sessions (
        id            TEXT PRIMARY KEY,
        user_id       TEXT NOT NULL REFERENCES users(id),
        token_version INTEGER NOT NULL,
        created_at    TEXT NOT NULL,
        last_seen_at  TEXT NOT NULL,
        client        TEXT,
        user_agent    TEXT,
        revoked_at    TEXT
    );
    CREATE INDEX sessions_by_user ON sessions(user_id, created_at);
    CREATE INDEX sessions_by_created ON sessions(created_at);
    CREATE TABLE recovery_codes (
        user_id    TEXT NOT NULL REFERENCES users(id),
        code_hash  BLOB NOT NULL,
        created_at TEXT NOT NULL,
        used_at    TEXT,
        PRIMARY KEY (user_id, code_hash)
    );
    ALTER TABLE users ADD COLUMN delete_after TEXT;
    CREATE INDEX users_by_delete_after ON users(delete_after) WHERE delete_after IS NOT NULL;
    """,
    # 16: organizations own the tenant data, with memberships and roles, invitations and
    # API keys
    _organizations,
    # 17: what the estate view and attack paths read of each host's latest snapshot
    # (paths.HostFacts, msgpack), written into the host row every snapshot rewrites anyway,
    # with the id of the snapshot they were taken from (a release without them that
    # ingests meanwhile leaves facts_of behind snapshot_id: they are not trusted then).
    # The first estate request after a start reads these instead of decompressing and
    # decoding every latest snapshot.
    """
    ALTER TABLE hosts ADD COLUMN facts BLOB;
    ALTER TABLE hosts ADD COLUMN facts_of TEXT;
    """,
)


class SchemaTooNew(Exception):
    pass


def migrate(conn: sqlite3.Connection) -> int:
    """Apply what is missing, each migration in its own transaction; return the version."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise SchemaTooNew(
            f"the database is at schema {version} but this kefal-lite knows {len(MIGRATIONS)}:"
            " it was written by a newer release; upgrade kefal-lite"
        )
    for number in range(version + 1, len(MIGRATIONS) + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-check under the write lock: a CLI command may have migrated meanwhile.
            (current,) = conn.execute("PRAGMA user_version").fetchone()
            if current >= number:
                conn.execute("ROLLBACK")
                continue
            step = MIGRATIONS[number - 1]
            if isinstance(step, str):
                for statement in _statements(step):
                    conn.execute(statement)
            else:
                step(conn)
            conn.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT on its own; splitting keeps each migration atomic.
    # Our migrations hold no ';' inside literals or triggers, so a plain split is exact.
    return [s.strip() for s in script.split(";") if s.strip()]
