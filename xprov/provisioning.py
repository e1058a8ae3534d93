"""The request core: identify -> look up -> render, the same for every transport.

Pure: no sockets, no reactor, no clock. Both transports reach it through the gate
(`xprov.guard.Gate`), which decides who may have a file before `Provisioner.render` makes
it, so TFTP and HTTP can never disagree about a file. Every answer is one of the typed
outcomes below; each transport maps it to its own wire format.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from xprov.config import Config
from xprov.inventory import Inventory, Phone
from xprov.mac import colon_mac
from xprov.render import RenderCache, RenderError, Templates
from xprov.selection import ActiveSites, Selection, service_variables, sip_servers
from xprov.vendors import VENDORS, FileRequest, identify, shared_requests


@dataclass(frozen=True)
class Inputs:
    """Everything a file depends on, apart from the selection; replaced whole on reload."""

    config: Config
    config_generation: int
    templates: Templates
    inventory: Inventory


@dataclass(frozen=True)
class Served:
    body: bytes
    request: FileRequest
    mac: str | None  # the known phone that fetched (by file name, or User-Agent hint)
    selection_generation: int

    @property
    def content_type(self) -> str:
        return self.request.spec.content_type


class Charge(enum.Enum):
    """What a refusal cost its source's bad-answer budget."""

    NONE = "none"  # nothing: a challenge, a stale nonce, a source already out of tokens
    REPEAT = "repeat"  # the same miss again within the repeat window: already paid for
    CHARGED = "charged"  # one token
    EXHAUSTED = "exhausted"  # one token, its last: the source is now rate limited


@dataclass(frozen=True)
class NotFound:
    reason: str  # for logs and metrics only: a phone never learns why
    request: FileRequest | None = None
    charge: Charge = Charge.NONE


@dataclass(frozen=True)
class Failed:
    request: FileRequest
    error: RenderError


@dataclass(frozen=True)
class Refused:
    """Not for this asker. `status` is the HTTP status (401, 403 or 429); TFTP answers 401
    and 403 with ERROR 2 and a rate limit (429) with silence. Never carries a file."""

    status: int
    reason: str  # for the security log: never a secret
    request: FileRequest | None
    challenges: tuple[str, ...] = ()  # WWW-Authenticate values, with a 401
    charge: Charge = Charge.NONE
    retry_after: int | None = None  # seconds, with a 429


Outcome = Served | NotFound | Failed
Answer = Served | NotFound | Failed | Refused  # what the gate gives a transport


class Provisioner:
    def __init__(
        self, inputs: Inputs, active: ActiveSites, cache: RenderCache | None = None
    ) -> None:
        self.inputs = inputs
        self.active = active
        self.cache = cache or RenderCache()
        self.renders = 0

    def use(self, inputs: Inputs) -> None:
        """Serve from `inputs` from now on (a reload, an inventory refresh): one reference
        swapped on the reactor; the cache's generation stamps retire the old entries."""
        self.inputs = inputs

    def provide(self, path: str, user_agent: str | None = None) -> Outcome:
        """The file at `path`, for anyone: `xprov render` and tests. Phones go through the
        gate, which decides first who may have it. `path` is a name as written, not a URL
        (no percent-decoding: that is the gate's, for HTTP paths only)."""
        request = identify(path, user_agent)
        if request is None:
            return NotFound("unknown file")
        return self.render(request)

    def render(self, request: FileRequest) -> Outcome:
        """The file `request` names, from the current inputs and selection."""
        inputs, selection = self.inputs, self.active.current
        records = inputs.inventory.records
        # The raw record is enough to check and to find the cached file; the Phone view is
        # built only to render (a view costs more than a cache hit).
        mac = request.mac if request.spec.per_device else request.ua_mac
        record = records.get(mac) if mac else None
        if request.spec.per_model and request.model is None:
            return NotFound("unknown model", request)
        if request.spec.per_device:
            if record is None:
                return NotFound("unknown device", request)
            if record[0] != request.vendor:
                return NotFound("vendor mismatch", request)
        elif record is not None and record[0] != request.vendor:
            record = mac = None  # a User-Agent hint naming another vendor's phone
        # The body of a shared file must not depend on who asked, only on the file.
        owner = record if request.spec.per_device else None
        model = request.model if owner is None else owner[1]
        key = (request.vendor, request.kind, request.name, model)
        generation = (
            inputs.config_generation,
            inputs.templates.generation,
            inputs.inventory.generation,
            selection.generation,
        )
        body = self.cache.get(key, generation)
        if body is None:
            phone = Phone.of(mac, owner) if owner is not None and mac is not None else None
            try:
                body = inputs.templates.render(
                    request.spec.template, self._context(request, phone, model, selection)
                )
            except RenderError as error:
                return Failed(request, error)
            self.renders += 1
            self.cache.put(key, generation, body)
        return Served(body, request, mac if record is not None else None, selection.generation)

    def _context(
        self, request: FileRequest, phone: Phone | None, model: str | None, selection: Selection
    ) -> dict[str, Any]:
        config = self.inputs.config
        variables = config.shared_vars if phone is None else {**config.vars, **dict(phone.vars)}
        return {
            "file": request.name,
            "model": model,
            "phone": phone,
            "mac": phone.mac if phone else None,
            "mac_colon": colon_mac(phone.mac) if phone else None,
            "lines": phone.lines if phone else (),
            "vars": variables,
            "credentials": self._credentials(phone),
            "provisioning": {
                "url": config.provisioning.url,
                "poll_seconds": config.provisioning.poll_seconds,
                "poll_minutes": max(1, config.provisioning.poll_seconds // 60),
                "auth": config.auth.mode,  # "off", or how per-device files are protected
                "second_url": config.provisioning.second_url,  # None: off
                # the phone's own second SIP server (sip_servers); off: files as before
                "phone_redundancy": config.failover.phone_redundancy,
                # the keys a resync NOTIFY needs after a switch ([push]); off: none
                "push": config.push is not None and config.push.enabled,
            },
            **service_variables(config, selection),
            # every site's SIP, in the order the vendor's firmware wants (ServerOrder)
            "sip_servers": sip_servers(config, selection, VENDORS[request.vendor].SERVER_ORDER),
            **VENDORS[request.vendor].context(request, model),
        }

    def _credentials(self, phone: Phone | None) -> dict[str, str] | None:
        """What a phone sends to fetch its own files, for its per-device file (so a phone
        that got the file once, on a trusted network, keeps fetching it): its own account,
        else the shared [auth] user, else None. Never in a shared file."""
        auth = self.inputs.config.auth
        if phone is None or auth.mode == "off":
            return None
        if phone.http_user:
            return {"user": phone.http_user, "password": phone.http_password}
        if auth.user:
            return {"user": auth.user, "password": auth.password}
        return None

    def device_file(self, mac: str) -> str | None:
        """The main per-device file name of a known phone (`xprov render MAC`)."""
        phone = self.inputs.inventory.get(mac)
        return None if phone is None else VENDORS[phone.vendor].device_file(phone.mac)


def shared_file_problems(inputs: Inputs) -> list[str]:
    """Why a shared file (a common file, a model profile) would fail for some model of the
    tables, with each site active for every service: 'template line N: reason (file, model,
    site)', one per distinct failure. Rendered before a config serves, so a template that
    fails only in one model's or one site's branch is refused at check-config and reload,
    never found by phones (break-it pass). Blocking: about 250 renders."""
    problems: dict[tuple[str, int | None, str], str] = {}
    for site in sorted(inputs.config.sites):
        provisioner = Provisioner(inputs, ActiveSites(inputs.config.sites, site))
        for request in shared_requests():
            outcome = provisioner.render(request)
            if isinstance(outcome, Failed):
                error = outcome.error
                problems.setdefault(
                    (error.template, error.line, error.reason),
                    f"{error.template} line {error.line}: {error.reason} (rendering "
                    f"{request.name}{f' for a {request.model}' if request.model else ''}, "
                    f"every service on {site})",
                )
    return list(problems.values())
