"""A blocking client of a running server's admin API (`servers/admin.py`), for the command
line: one request, a JSON answer, typed errors when the server cannot be asked."""

from __future__ import annotations

import json
import os
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xprov.config import HttpConfig
from xprov.config.sections import read_admin
from xprov.config.table import Table

# Seconds to wait for an answer: a reload builds templates and reads the inventory before
# it answers, which takes seconds on a large inventory.
TIMEOUT = 60.0
# A server listening on every address is asked on loopback.
LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}


class AdminError(Exception):
    """The server could not be asked; str() says why, for people."""


class NoAdminApi(AdminError):
    """The config has no [admin] section, so the server has no admin API."""


class Unreachable(AdminError):
    """No HTTP answer: connection refused, timeout, or a body that is not JSON."""


@dataclass(frozen=True)
class Answer:
    """The server's answer: its HTTP status and JSON body (an object)."""

    status: int
    body: dict[str, Any]

    @property
    def agreed(self) -> bool:
        return self.status == 200


def local_host(host: str) -> str:
    """The address to reach a listener bound to `host` from this machine."""
    return LOOPBACK.get(host, host)


@dataclass(frozen=True)
class AdminClient:
    """`url` is the API's root (`http://host:port`, no trailing slash); `token` the bearer."""

    url: str
    token: str
    timeout: float = TIMEOUT

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> AdminClient:
        """The client of the server the config file `path` names, from its `[admin]` table
        alone: the rest of a file being edited is the server's to judge (`xprov reload`
        then gets, and the server logs, every problem). Raises NoAdminApi, or AdminError
        when the file or its `[admin]` table cannot be read."""
        file = Path(path).resolve()
        try:
            data = tomllib.loads(file.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise AdminError(
                f"{file}: cannot find the admin API ({exc}); the server keeps running: "
                "fix the file, or send SIGHUP (systemctl reload xprov) to have it log every "
                "problem"
            ) from None
        problems: list[str] = []
        admin = read_admin(Table(data, "", problems), file.parent, HttpConfig(()))
        if admin is None:
            raise NoAdminApi(f"{file}: no [admin] section: the server has no admin API")
        if problems:
            raise AdminError("; ".join(problems))
        listen = admin.listen[0]
        host = local_host(listen.host)
        return cls(f"http://{f'[{host}]' if ':' in host else host}:{listen.port}", admin.token)

    def get(self, path: str) -> Answer:
        """GET `path` (`/status`). Raises Unreachable."""
        return self._call(path, None)

    def post(self, path: str, body: dict[str, Any]) -> Answer:
        """POST `body` as JSON to `path` (`/failover`, `/failback`, `/reload`).
        Raises Unreachable."""
        return self._call(path, body)

    def _call(self, path: str, body: dict[str, Any] | None) -> Answer:
        url = f"{self.url}{path}"
        request = urllib.request.Request(
            url,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method="GET" if body is None else "POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return Answer(response.status, json.loads(response.read()))
        except urllib.error.HTTPError as exc:  # a refusal still carries the server's reason
            try:
                return Answer(exc.code, json.loads(exc.read() or b"{}"))
            except ValueError:
                return Answer(exc.code, {"error": exc.reason})
        except (OSError, ValueError) as exc:
            raise Unreachable(f"cannot reach the admin API at {url}: {exc}") from exc
