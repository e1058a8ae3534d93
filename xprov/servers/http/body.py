"""A request's content: whether its head announces a body the listener takes (RFC 9112
section 6, decided before a byte of it is read), the request that keeps an admitted one in
memory, and the answers that carry no content."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import IO

from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.server import Request

from xprov.logs import get_logger

log = get_logger("xprov.http")


@dataclass(frozen=True)
class BodyAdmitted:
    """The request's content may be read: `length` bytes (0: it has none), into memory."""

    length: int


@dataclass(frozen=True)
class BodyRefused:
    """The request is answered `status` (empty) and its connection closed, its body unread."""

    status: int  # 400 Bad Request, 411 Length Required or 413 Content Too Large
    reason: str  # for the log


def request_body(
    content_length: Sequence[bytes], transfer_encoding: Sequence[bytes], max_body: int
) -> BodyAdmitted | BodyRefused:
    """Whether a request head announces a body we take, decided before any of it is read.

    `content_length` and `transfer_encoding` are the values of every such header field of
    the head, in order; `max_body` the most bytes of content the listener takes (0: none).
    The framing is RFC 9112 section 6.3: a Transfer-Encoding whose final coding is not
    chunked is a framing error (400); a chunked body has no length to bound before reading
    it (411, RFC 9110 section 15.5.12); Transfer-Encoding beside Content-Length is the shape
    of request smuggling (400, RFC 9112 section 6.1). Content-Length is 1*DIGIT (RFC 9110
    section 8.6; leading and trailing OWS are not part of a field value); anything else, a
    list, or several fields are 400. A length over `max_body` is 413 (RFC 9110 section
    15.5.14)."""
    if transfer_encoding:
        if content_length:
            return BodyRefused(400, "Transfer-Encoding with Content-Length")
        final = transfer_encoding[-1].rpartition(b",")[2].strip(b" \t").lower()
        if final != b"chunked":
            return BodyRefused(400, "Transfer-Encoding not ending in chunked")
        return BodyRefused(411, "chunked body")
    if not content_length:
        return BodyAdmitted(0)
    if len(content_length) > 1:
        return BodyRefused(400, "several Content-Length fields")
    value = content_length[0].strip(b" \t")
    if not value.isdigit():  # bytes: ASCII digits only
        return BodyRefused(400, "malformed Content-Length")
    digits = value.lstrip(b"0")
    if len(digits) > len(str(max_body)) or int(digits or b"0") > max_body:
        return BodyRefused(413, "body too large")
    return BodyAdmitted(int(digits or b"0"))


_STATUS_LINES = {
    400: b"400 Bad Request",
    411: b"411 Length Required",
    413: b"413 Content Too Large",
}


def refusal_answer(status: int) -> bytes:
    """The whole answer to a refused request: no content, and the connection closes (its
    body, if any, is never read: the connection cannot carry another request)."""
    return b"HTTP/1.1 %s\r\nServer: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % (
        _STATUS_LINES[status],
        server.version,
    )


def empty_answer(request: Request, code: int) -> bytes:
    """An error answer says nothing about why (no oracle for MAC enumeration)."""
    request.setResponseCode(code, _REASONS.get(code))
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"content-length", b"0")
    return b""


_REASONS = {429: b"Too Many Requests"}  # RFC 6585; twisted.web does not know it


class PhoneRequest(Request):
    """A request whose content is kept in memory (its channel admitted at most its site's
    `max_body` bytes), and whose unexpected failure is an empty 500, never twisted.web's
    error page."""

    # twisted.web declares `content = None` (unannotated) and documents a binary file.
    content: IO[bytes] | None = None  # type: ignore[assignment]

    def gotLength(self, length: int | None) -> None:
        # twisted.web would spool a body of 100,000 bytes or more, or of unknown length,
        # to a temporary file: never here.
        self.content = BytesIO()

    def processingFailed(self, reason: Failure) -> None:
        log.error("request_failed", error=reason.getErrorMessage(), type=reason.type.__name__)
        if self.finished or self._disconnected:
            return
        if not self.startedWriting:
            self.responseHeaders = type(self.responseHeaders)()
            empty_answer(self, 500)
            self.finish()
        else:  # never a partial file: cut the connection
            self.channel.loseConnection()
