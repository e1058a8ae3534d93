"""HTTP and HTTPS transport (twisted.web): phones' files and /healthz, nothing else.

Every request goes through the gate (`xprov.guard.Gate`), which decides who may have a file
before it is rendered; `resource` only maps the gate's typed answer to HTTP. A refusal and
an error have an empty body, always (HEAD included, and an unexpected exception too).
Connections are bounded: a request (head and any body) must arrive in time and within size
limits, a request body is refused before a byte of it is read unless the listener takes one
(the admin API, a few KB, kept in memory), a connection whose answers pile up unread is read
no more, and sources may hold only so many.

Modules: `resource` (the phones' files), `body` (a request's content, and the answers that
carry none), `channel` (one connection's bounds), `site` (the listener's: allow-list, caps,
the request deadline's sweep), `tls` (HTTPS).
"""

from twisted.web import server

from xprov.servers.http.resource import PhoneFiles
from xprov.servers.http.site import PhoneSite, site
from xprov.servers.http.tls import BoundedTLSFactory, CurrentTLS, tls_options

__all__ = ["BoundedTLSFactory", "CurrentTLS", "PhoneFiles", "PhoneSite", "site", "tls_options"]

# Every answer of every listener names xprov, not twisted.web and its version (the way
# twisted.web.server offers to change it). Here, so that importing any part of the
# transport sets it.
server.version = b"xprov"
