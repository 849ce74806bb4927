"""Three actions for the estate findings of the `lateral` pack (kefal_lite.lateral).

Those findings are not invariants (no predicate), so they have their own templates; every
value taken from evidence went through a host's snapshot and is quoted with the same
`sh()` as the per-host templates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kefal_lite.remediate.templates import Action, ps, sh, visible


def _key_lines(fingerprint: str, windows: bool) -> list[str]:
    if windows:
        return [
            "Get-ChildItem C:\\Users\\*\\.ssh\\authorized_keys,"
            " $env:ProgramData\\ssh\\administrators_authorized_keys -ErrorAction"
            " SilentlyContinue | ForEach-Object { ssh-keygen -lf $_.FullName |"
            f" Select-String -SimpleMatch {ps(fingerprint)} }}",
        ]
    fp = sh(fingerprint)
    return [
        # run on each host listed in the incident: prints the matching lines with their file
        "for f in /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys; do"
        f' sudo ssh-keygen -lf "$f" 2>/dev/null | grep -nF -- {fp} | sed "s|^|$f:|"; done',
    ]


def _remove_lines(fingerprint: str, windows: bool, keys: str) -> list[str]:
    if windows:
        return [
            f"Copy-Item {keys} {keys}.bak",
            f"ssh-keygen -lf {keys} | Select-String -SimpleMatch {ps(fingerprint)}"
            "   # note the line number N",
            f"notepad {keys}   # delete line N, save",
        ]
    return [
        f'sudo cp {keys} "{keys}.bak.$(date +%s)"',
        f"sudo ssh-keygen -lf {keys} | grep -nF -- {sh(fingerprint)}   # note the line number N",
        f"sudo sed -i 'Nd' {keys}   # N from the previous command",
    ]


def _spread(evidence: dict[str, Any], subject: str, windows: bool) -> list[Action]:
    fp = str(evidence.get("fingerprint") or subject.partition(":")[2])
    hosts = ", ".join(visible(h) for h in evidence.get("hosts") or []) or "the hosts listed"
    return [
        Action(f"Find the key on {hosts}", _key_lines(fp, windows),
               "The fingerprint identifies the exact authorized_keys line on each host; its"
               " comment usually says whose key it is."),
        Action("Remove it where root does not need it",
               _remove_lines(fp, windows, ADMIN_KEYS[windows]),
               "One stolen private key should open one host, not the estate."),
        Action("Give each admin and each automation its own key", [
            "ssh-keygen -t ed25519 -C \"$(whoami)@$(hostname) for <one host or role>\"",
            "# or short-lived SSH certificates: ssh-keygen -s ca_key -I <id> -V +8h key.pub",
        ], "Per-host or per-role keys (or certificates) limit what one leaked key reaches."),
    ]  # fmt: skip


def _across_groups(evidence: dict[str, Any], subject: str, windows: bool) -> list[Action]:
    fp = str(evidence.get("fingerprint") or subject.partition(":")[2])
    groups = evidence.get("groups") or {}
    where = "; ".join(
        f"{visible(g)}: {', '.join(visible(h) for h in hosts)}" for g, hosts in groups.items()
    ) if isinstance(groups, dict) else ""
    return [
        Action("Find the key in each group", _key_lines(fp, windows),
               f"Where it is authorized: {where or 'see the incident'}."),
        Action("Remove it from the group it does not belong to",
               _remove_lines(fp, windows, USER_KEYS[windows]),
               "A key used in development should not open production: laptops are where keys"
               " leak."),
        Action("Use separate keys per environment", [
            "ssh-keygen -t ed25519 -f ~/.ssh/id_prod -C \"$(whoami) prod\"",
            "# ~/.ssh/config: Host prod-*  IdentityFile ~/.ssh/id_prod  IdentitiesOnly yes",
        ], "Per-environment keys keep a compromise of one environment inside it."),
    ]  # fmt: skip


def _near_critical(evidence: dict[str, Any], subject: str, windows: bool) -> list[Action]:
    source = visible(evidence.get("from_hostname") or "the compromised host")
    reason = visible(evidence.get("reason") or "")
    return [
        Action(f"Cut the step from {source}", [
            "sudo ss -tnp state established   # connections from that host",
            "sudo grep -h '' /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys"
            " | ssh-keygen -lf - 2>/dev/null   # keys it could use here",
        ], f"How this host is reachable from {source}: {reason or 'see the incident'}."),
        Action("Review logins from there", [
            "last -F -a | head -30",
            "sudo journalctl -u ssh -u sshd --since -2d | grep -E 'Accepted' | tail -50",
        ], "A login from the compromised host after its incident opened means the intruder"
           " already moved."),
        Action("Rotate what the two hosts share", [
            "sudo passwd <shared account>",
            "# replace shared SSH keys and service credentials used on both hosts",
        ], "Credentials present on a compromised host must be considered known."),
    ]  # fmt: skip


ADMIN_KEYS = {False: "/root/.ssh/authorized_keys",
              True: "$env:ProgramData\\ssh\\administrators_authorized_keys"}
USER_KEYS = {False: "$HOME/.ssh/authorized_keys", True: "$HOME\\.ssh\\authorized_keys"}

_BY_RULE: dict[str, Callable[[dict[str, Any], str, bool], list[Action]]] = {
    "lateral.root_key_spread": _spread,
    "lateral.key_across_groups": _across_groups,
    "lateral.one_hop_from_critical": _near_critical,
}


def is_estate(invariant_id: str) -> bool:
    return invariant_id in _BY_RULE


def render(invariant_id: str, subject: str, evidence: dict[str, Any], os: str) -> list[Action]:
    actions = _BY_RULE[invariant_id](evidence, subject, os == "windows")
    assert len(actions) == 3, invariant_id
    return actions
