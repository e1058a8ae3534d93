"""The admin API: operators' status and manual failover, on a listener of its own.

Every request but /healthz needs `Authorization: Bearer <token>`, compared in constant time.
Answers are JSON.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from xprov.logs import get_logger
from xprov.monitor import ManualChoiceError, Monitor

log = get_logger("xprov.admin")
MAX_BODY = 4096


class AdminApi(Resource):
    isLeaf = True

    def __init__(
        self, token: str, monitor: Monitor | None, status: Callable[[], dict[str, Any]]
    ) -> None:
        super().__init__()
        self.token = f"Bearer {token}".encode()
        self.monitor, self.status = monitor, status

    def render_GET(self, request: Request) -> bytes:
        if request.path == b"/healthz":
            return _json(request, 200, {"status": "ok"})
        if not self._authorized(request):
            return _json(request, 401, {"error": "missing or wrong bearer token"})
        if request.path == b"/status":
            return _json(request, 200, self.status())
        return _json(request, 404, {"error": "no such resource"})

    def render_POST(self, request: Request) -> bytes:
        if not self._authorized(request):
            return _json(request, 401, {"error": "missing or wrong bearer token"})
        action = {b"/failover": self._failover, b"/failback": self._failback}.get(request.path)
        if action is None:
            return _json(request, 404, {"error": "no such resource"})
        if self.monitor is None:
            return _json(request, 409, {"error": "the monitor is disabled"})
        try:
            body = json.loads(request.content.read(MAX_BODY + 1) or b"{}")
            if not isinstance(body, dict) or len(json.dumps(body)) > MAX_BODY:
                raise ValueError("expected a JSON object")
            action(body)
        except (ValueError, KeyError, TypeError) as exc:
            status = 409 if isinstance(exc, ManualChoiceError) else 400
            return _json(request, status, {"error": str(exc)})
        return _json(request, 200, self.status())

    def _failover(self, body: dict[str, Any]) -> None:
        service, site, force = body["service"], body["site"], bool(body.get("force", False))
        log.warning("operator_failover", service=service, site=site, force=force)
        self.monitor.failover(str(service), str(site), force)  # type: ignore[union-attr]

    def _failback(self, body: dict[str, Any]) -> None:
        service, force = body["service"], bool(body.get("force", False))
        log.warning("operator_failback", service=service, force=force)
        self.monitor.failback(str(service), force)  # type: ignore[union-attr]

    def _authorized(self, request: Request) -> bool:
        given = request.getHeader(b"authorization") or b""
        return hmac.compare_digest(
            given if isinstance(given, bytes) else given.encode(), self.token
        )


def _json(request: Request, code: int, body: Any) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, indent=2, sort_keys=True).encode() + b"\n"


class AdminSite(Site):
    displayTracebacks = False
    noisy = False

    def log(self, request: Request) -> None:
        pass


def site(api: AdminApi) -> AdminSite:
    return AdminSite(api, timeout=30)
