"""A small PayPal-speaking server (the billing fixtures in conftest.py run it on
127.0.0.1): OAuth, subscriptions, webhook signature checks."""

from __future__ import annotations

import base64
import http.server
import json
from typing import Any

CLIENT_ID, SECRET = "client-id-123", "client-secret-456"
PLAN_IDS = {"starter": "P-STARTER0000000000000000", "professional": "P-PRO000000000000000000000"}


class FakePayPal(http.server.BaseHTTPRequestHandler):
    calls: list[tuple[str, str]]
    subscriptions: dict[str, dict[str, Any]]

    def _json(self, status: int, body: Any = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        cls = type(self)
        cls.calls.append(("POST", self.path))
        if self.path == "/v1/oauth2/token":
            expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
            if (
                self.headers.get("Authorization") != expected
                or b"grant_type=client_credentials" not in raw
            ):
                return self._json(401, {"error": "invalid_client"})
            return self._json(200, {"scope": "https://uri.paypal.com/services/subscriptions",
                                    "access_token": "A21AAtoken", "token_type": "Bearer",
                                    "app_id": "APP-80W284485P519543T", "expires_in": 32400})  # fmt: skip
        if self.headers.get("Authorization") != "Bearer A21AAtoken":
            return self._json(401, {"name": "AUTHENTICATION_FAILURE"})
        body = json.loads(raw) if raw else {}
        if self.path == "/v1/billing/subscriptions":
            sub_id = f"I-{len(cls.subscriptions) + 1:012d}"
            cls.subscriptions[sub_id] = {
                "plan_id": body["plan_id"],
                "custom_id": body["custom_id"],
                "status": "APPROVAL_PENDING",
            }
            return self._json(201, {"id": sub_id, "status": "APPROVAL_PENDING", "create_time": "2026-11-02T09:00:05Z",
                                    "links": [{"href": f"https://www.sandbox.paypal.com/webapps/billing/subscriptions?ba_token=BA-{sub_id}",
                                               "rel": "approve", "method": "GET"},
                                              {"href": f"https://api-m.sandbox.paypal.com/v1/billing/subscriptions/{sub_id}",
                                               "rel": "self", "method": "GET"}]})  # fmt: skip
        if self.path.endswith("/cancel"):
            sub_id = self.path.split("/")[-2]
            cls.subscriptions[sub_id]["status"] = "CANCELLED"
            return self._json(204)
        if self.path == "/v1/notifications/verify-webhook-signature":
            ok = (
                body.get("transmission_sig") == "good-signature"
                and body.get("webhook_id") == "WH-ID-1"
            )
            return self._json(200, {"verification_status": "SUCCESS" if ok else "FAILURE"})
        return self._json(404, {"name": "RESOURCE_NOT_FOUND"})

    def log_message(self, *args: Any) -> None:
        pass
