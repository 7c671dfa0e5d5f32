"""Request limits through a real ``cropstack serve``: the documented render path length
(4096 characters after the organization, docs/stacks.md) works end to end, and what is
over gunicorn's limits is answered in the JSON error shape, not gunicorn's HTML page."""

from __future__ import annotations

import io
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from stacks.url import MAX_PATH
from tests.conftest import Account
from tests.engine.conftest import decode, png, scene
from tests.realserver import running_server
from webapp import create_app
from webapp.cli import REQUEST_LINE_MAX


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, image hash) of a real server on a catalog holding one image."""
    tmp: Path = tmp_path_factory.mktemp("limits")
    app = create_app({"data_dir": str(tmp / "data")})
    account = Account(app.test_client(), "acme", "admin@acme.example")
    response = account.request(
        "POST",
        "/sourceimages/acme",
        data={"filedata": (io.BytesIO(png(scene(60, 40))), "s.png")},
        content_type="multipart/form-data",
    )
    image = response.get_json()["items"][0]["hash"]
    app.extensions["cropstack.catalog_anchor"].close()
    with running_server(tmp, workers=1) as base:
        yield base, image


def padded_render_path(image: str, length: int) -> str:
    """A valid render path (after ``/{org}/``) of exactly ``length`` characters: a resize
    plus variable segments ``v-<name>-1`` (variables no operation uses)."""
    head, tail = "dynamic/resize-width-12", f"/{image}.png"
    room = length - len(head) - len(tail)
    costs = []  # "/v-" + name + "-1" costs 5 + len(name) characters, names 1..64 long
    while room >= 69 + 6:
        costs.append(69)
        room -= 69
    if room > 69:
        costs.append(room - 6)
        room = 6
    if room:
        costs.append(room)
    path = head + "".join(f"/v-{'n' * (cost - 5)}-1" for cost in costs) + tail
    assert len(path) == length and all(6 <= cost <= 69 for cost in costs)
    return path


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def assert_json_error(status: int, headers: dict, body: bytes, expected: int) -> str:
    assert status == expected, body[:300]
    assert headers["Content-Type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == expected
    return error["message"]


@pytest.mark.server
def test_the_documented_path_length_renders_end_to_end(served):
    base, image = served
    path = padded_render_path(image, MAX_PATH)
    status, headers, body = get(f"{base}/acme/{path}")
    assert status == 200, body[:300]
    assert headers["Content-Type"] == "image/png" and decode(body).shape[1] == 12
    # the same with a ?v= query and a signature-sized query on top still fits the line
    query = "?v=" + "%7B%22a%22%3A1%7D" + "&sig=0123456789abcdef"
    assert get(f"{base}/acme/{path}{query}")[0] == 200
    status, headers, body = get(f"{base}/acme/{padded_render_path(image, MAX_PATH + 1)}")
    assert str(MAX_PATH) in assert_json_error(status, headers, body, 400)


@pytest.mark.server
def test_over_long_request_lines_and_headers_are_json(served):
    base, image = served
    status, headers, body = get(f"{base}/acme/{'x' * REQUEST_LINE_MAX}")
    assert "Too Long" in assert_json_error(status, headers, body, 414)
    status, headers, body = get(f"{base}/healthz", {"X-Big": "y" * 9000})
    assert_json_error(status, headers, body, 431)
    many = {f"X-H{i}": "1" for i in range(101)}
    status, headers, body = get(f"{base}/healthz", many)
    assert_json_error(status, headers, body, 431)
    # Just inside the limits is a normal answer.
    status, _, _ = get(f"{base}/healthz", {"X-Big": "y" * 8000})
    assert status == 200


@pytest.mark.server
def test_a_malformed_request_line_is_json(served):
    base, _ = served
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"NOT A REQUEST\r\n\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"Content-Type: application/json" in head
    assert json.loads(body)["error"]["code"] == 400
