"""The strict request-head reading of webapp/requesthead.py: what it takes is read as
gunicorn reads it; everything else is left to gunicorn (None)."""

from __future__ import annotations

import pytest

from webapp.requesthead import parse


def _head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def test_a_plain_get_and_head_are_read_with_their_fields() -> None:
    head = parse(
        _head(
            "GET /acme/dynamic/resize-width-3/abc.jpg?v=1 HTTP/1.1",
            "Host: img.example:8080",
            "If-None-Match:  \"0123\"\t",
            "accept: image/webp,*/*",
            "Connection: Keep-Alive",
        ),
        line_max=4096,
    )
    assert head is not None
    assert (head.method, head.target) == ("GET", "/acme/dynamic/resize-width-3/abc.jpg?v=1")
    environ = head.environ(("10.0.0.7", 5555))
    assert environ == {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/acme/dynamic/resize-width-3/abc.jpg?v=1",
        "QUERY_STRING": "v=1",
        "REMOTE_ADDR": "10.0.0.7",
        "HTTP_HOST": "img.example:8080",
        "HTTP_IF_NONE_MATCH": '"0123"',
        "HTTP_ACCEPT": "image/webp,*/*",
        "HTTP_CONNECTION": "Keep-Alive",
    }
    assert parse(_head("HEAD / HTTP/1.1"), line_max=4096).method == "HEAD"


@pytest.mark.parametrize(
    "data",
    [
        _head("GET / HTTP/1.0", "Host: a"),  # other keep-alive rules
        _head("POST / HTTP/1.1", "Host: a"),
        _head("get / HTTP/1.1"),
        _head("GET  / HTTP/1.1"),
        _head("GET http://a/ HTTP/1.1"),  # absolute-form
        _head("GET //a/b HTTP/1.1"),  # urllib would read "a" as an authority
        _head("GET /a#b HTTP/1.1"),
        _head("GET /a\x7fb HTTP/1.1"),
        _head("GET /a\xe9 HTTP/1.1"),
        _head("GET /" + "a" * 5000 + " HTTP/1.1"),  # past line_max
        _head("GET / HTTP/1.1", "Host: a", "Host: b"),  # repeated
        _head("GET / HTTP/1.1", "Content-Length: 0"),
        _head("GET / HTTP/1.1", "Transfer-Encoding: chunked"),
        _head("GET / HTTP/1.1", "Expect: 100-continue"),
        _head("GET / HTTP/1.1", "Connection: close"),
        _head("GET / HTTP/1.1", "Connection: Upgrade", "Upgrade: h2c"),
        _head("GET / HTTP/1.1", "X-Forwarded-Proto: https"),
        _head("GET / HTTP/1.1", "X_Forwarded_For: 1.2.3.4"),  # gunicorn drops these
        _head("GET / HTTP/1.1", "Host : a"),
        _head("GET / HTTP/1.1", " folded: a"),
        _head("GET / HTTP/1.1", "NoColon"),
        _head("GET / HTTP/1.1", "X-A: a\rb"),
        _head("GET / HTTP/1.1", "X-A: a\x00"),
        _head("GET / HTTP/1.1", "X-A: " + "a" * 9000),
        _head("GET / HTTP/1.1", *(f"X-{n}: a" for n in range(101))),
        b"GET / HTTP/1.1\r\nHost: a\r\n",  # not complete yet
        _head("GET / HTTP/1.1") + b"GET / HTTP/1.1\r\n\r\n",  # pipelined
        _head("GET / HTTP/1.1\nHost: a"),  # a bare LF
    ],
)
def test_anything_else_is_left_to_gunicorn(data: bytes) -> None:
    assert parse(data, line_max=4096) is None
