"""Optional remediation from any OpenAI-compatible chat-completions endpoint.

Works with hosted APIs and with a local Ollama (`http://127.0.0.1:11434/v1`) or
llama.cpp server. The prompt carries the invariant, the incident's evidence and
the host's facts, never a token or another tenant's data. The answer must parse
into exactly three actions with commands; anything else is an error the caller
records before falling back to the template.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import msgspec

from kefal_lite.detect.model import Invariant
from kefal_lite.remediate.templates import Action

SYSTEM_PROMPT = (
    "You are a senior Linux/macOS/Windows security engineer helping the only sysadmin of a"
    " small company. For the incident you are given, answer with JSON only, no prose and no"
    ' code fences: {"actions": [{"title": str, "commands": [str, ...], "why": str}]} with'
    " exactly three actions, ordered: contain or fix first, then harden, then verify. Commands"
    " must be exact, copy-pasteable shell commands for the host's OS (PowerShell on Windows),"
    " non-destructive where investigation comes first; `why` is one sentence."
)


class LlmError(Exception):
    """The endpoint failed or answered something unusable; the message says which."""


class _Answer(msgspec.Struct):
    actions: list[Action]


class LlmProvider:
    def __init__(self, base_url: str, model: str, api_key: str | None, timeout: float,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:  # fmt: skip
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = api_key
        self._timeout = timeout
        self._transport = transport

    def prompt(self, invariant: Invariant, subject: str, evidence: dict[str, Any],
               host: dict[str, Any]) -> list[dict[str, str]]:  # fmt: skip
        facts = {
            "invariant": invariant.name,
            "description": invariant.metadata.get("description", ""),
            "severity": invariant.severity,
            "attack": invariant.attack,
            "subject": subject,
            "evidence": evidence,
            "host": host,
        }
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": json.dumps(facts, indent=1, default=str)},
        ]

    async def remediate(self, invariant: Invariant, subject: str, evidence: dict[str, Any],
                        host: dict[str, Any]) -> list[Action]:  # fmt: skip
        raw = await self._complete(self.prompt(invariant, subject, evidence, host), json_mode=True)
        return parse_answer(raw)

    async def chat(self, messages: list[dict[str, str]]) -> str:
        """Free text (advisory opinions); raises LlmError like remediate()."""
        try:
            content = json.loads(await self._complete(messages))["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise LlmError("the answer is not a chat completion") from None
        if not isinstance(content, str) or not content.strip():
            raise LlmError("the completion has no text content")
        return content.strip()[:4000]

    async def _complete(self, messages: list[dict[str, str]], json_mode: bool = False) -> bytes:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0.2}
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        timeout = httpx.Timeout(self._timeout, connect=min(5.0, self._timeout))
        try:
            async with httpx.AsyncClient(timeout=timeout, transport=self._transport) as client:
                response = await client.post(f"{self.base_url}/chat/completions", json=body,
                                             headers=headers)  # fmt: skip
        except httpx.TimeoutException:
            raise LlmError(
                f"the model endpoint did not answer within {self._timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise LlmError(f"the model endpoint is unreachable: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise LlmError(f"the model endpoint answered HTTP {response.status_code}")
        return response.content


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)


def parse_answer(raw: bytes) -> list[Action]:
    try:
        content = json.loads(raw)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise LlmError("the answer is not a chat completion") from None
    if not isinstance(content, str):
        raise LlmError("the completion has no text content")
    try:
        answer = msgspec.json.decode(_FENCE.sub("", content.strip()).encode(), type=_Answer)
    except msgspec.DecodeError as exc:
        raise LlmError(f"the completion is not the three-action JSON: {exc}") from None
    actions = answer.actions
    if len(actions) != 3:
        raise LlmError(f"the completion has {len(actions)} actions, not 3")
    for action in actions:
        if not action.title.strip() or not action.why.strip():
            raise LlmError("an action lacks a title or a why")
        if not action.commands or not all(
            isinstance(c, str) and c.strip() for c in action.commands
        ):
            raise LlmError("an action has no commands")
    return actions
