"""The head of one plain HTTP/1.1 ``GET`` or ``HEAD`` request, read strictly.

Used by the gunicorn worker (webapp/httpworker.py) to answer render-cache hits on its
event-loop thread, without gunicorn's parser: only a request that gunicorn would read
the same way is taken (origin-form target of visible ASCII, ``HTTP/1.1``, well-formed
fields, each named once, no body, no ``Connection`` other than ``keep-alive``, nothing
gunicorn or a proxy header would act on). Anything else, including a head that is not
complete in the bytes at hand or has bytes behind it, is ``None``: gunicorn's own parser
then reads it, with its own errors and limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FIELDS_MAX = 100  # as ``cropstack serve``'s limit_request_fields
FIELD_MAX = 8190  # bytes of one field line, as limit_request_field_size
# Fields that change how gunicorn or the app reads the request, beyond what a cached
# render depends on: a body, an upgrade, a client's claim about the scheme.
REFUSED = frozenset(
    {
        "content-length", "transfer-encoding", "expect", "upgrade", "http2-settings",
        "te", "trailer", "forwarded", "x-forwarded-proto", "x-forwarded-ssl",
        "x-forwarded-protocol", "x-forwarded-host", "x-forwarded-port", "x-forwarded-prefix",
    }
)  # fmt: skip
_TOKEN = re.compile(r"[!#$%&'*+.^`|~0-9A-Za-z-]+")  # RFC 9110 token, without "_"
# origin-form only; "//" starts what urllib reads as an authority; "#" a fragment
_TARGET = re.compile(r"/(?!/)[\x21\x24-\x7e]*")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Head:
    """A request head: ``method`` (``GET`` or ``HEAD``), ``target`` (the raw path and
    query as sent) and ``fields`` (lower-case name -> value without surrounding blanks)."""

    method: str
    target: str
    fields: dict[str, str]

    def environ(self, client: object) -> dict[str, str]:
        """The WSGI keys of this request that gunicorn would set and a render-cache hit
        reads (webapp/hitmemo.py); ``client`` is the peer address as gunicorn has it."""
        environ = {
            "REQUEST_METHOD": self.method,
            "RAW_URI": self.target,
            "QUERY_STRING": self.target.partition("?")[2],
            "REMOTE_ADDR": client[0] if isinstance(client, tuple) else str(client),
        }
        for name, value in self.fields.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        return environ


def parse(data: bytes, *, line_max: int) -> Head | None:
    """The request whose head is exactly ``data`` (ending in an empty line, nothing after
    it); None for anything this strict reading does not take. ``line_max``: the longest
    request line in bytes (gunicorn's ``limit_request_line``)."""
    end = data.find(b"\r\n\r\n")
    if end < 0 or end + 4 != len(data):
        return None
    lines = data[:end].decode("latin-1").split("\r\n")
    if len(lines[0]) > line_max or len(lines) - 1 > FIELDS_MAX:
        return None
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[0] not in ("GET", "HEAD") or parts[2] != "HTTP/1.1":
        return None
    if not _TARGET.fullmatch(parts[1]):
        return None
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or len(line) > FIELD_MAX or not _TOKEN.fullmatch(name):
            return None
        value = value.strip(" \t")
        name = name.lower()
        if name in fields or _BAD_VALUE.search(value):
            return None  # a repeated field: gunicorn joins them, not repeated here
        fields[name] = value
    if fields.get("connection", "keep-alive").lower() != "keep-alive":
        return None
    if not REFUSED.isdisjoint(fields):
        return None
    return Head(parts[0], parts[1], fields)
