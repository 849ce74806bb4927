"""The three plans a hosted operator sells. Self-hosting (noop) has none of these limits."""

from __future__ import annotations

import msgspec


class Plan(msgspec.Struct, frozen=True):
    id: str
    name: str
    price_usd_month: int
    max_agents: int | None  # None: unlimited
    features: list[str]


PLANS: tuple[Plan, ...] = (
    Plan(
        "starter",
        "Starter",
        49,
        3,
        ["3 agents", "32 builtin invariants", "remediation templates", "email and webhook alerts"],
    ),
    Plan(
        "professional",
        "Professional",
        149,
        15,
        [
            "15 agents",
            "everything in Starter",
            "adversarial verification of contributed invariants",
            "LLM remediation",
        ],
    ),
    Plan(
        "enterprise",
        "Enterprise",
        399,
        None,
        ["unlimited agents", "everything in Professional", "audit export", "priority support"],
    ),
)
BY_ID = {p.id: p for p in PLANS}

# The plan features enforced under a paying provider (noop: all on). A trial tries
# verification, as it always has.
VERIFICATION = "adversarial verification"
LLM_REMEDIATION = "LLM remediation"
AUDIT_EXPORT = "audit export"
FEATURES: dict[str, frozenset[str]] = {
    "trial": frozenset({VERIFICATION}),
    "starter": frozenset(),
    "professional": frozenset({VERIFICATION, LLM_REMEDIATION}),
    "enterprise": frozenset({VERIFICATION, LLM_REMEDIATION, AUDIT_EXPORT}),
}
TRIAL_AGENTS = 3  # a trial gets Starter's agent limit
