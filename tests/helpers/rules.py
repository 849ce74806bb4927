"""A contributed rule that verifies: the one other tests contribute when they need any."""

from __future__ import annotations

GOOD = {
    "name": "Busybox netcat listener",
    "invariant_type": "structural",
    "predicate": {"kind": "port_owner_in", "params": {"processes": ["busybox", "socat"]}},
    "severity": "high",
    "metadata": {"description": "busybox or socat owns a listening socket.",
                 "pitch": "A bind shell on an IoT box often looks exactly like this."},
}  # fmt: skip
