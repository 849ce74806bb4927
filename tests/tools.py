"""System tools some tests need. A missing one fails the test with the command that installs
it: a skip would hide the gap, and `scripts/test` installs all of them."""

from __future__ import annotations

import shutil

import pytest

PACKAGES = {"chromium": "chromium", "node": "nodejs", "npm": "npm", "ssh-keygen": "openssh-client"}


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(
            f"{tool} is needed: sudo apt-get install -y {PACKAGES[tool]}"
            " (or run scripts/test, which installs it)",
            pytrace=False,
        )
    return path
