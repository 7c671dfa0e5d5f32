"""Small HTTP helpers for tests against a real ``cropstack serve`` (urllib only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def call(
    base: str,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], bytes]:
    """One request; (status, headers, body bytes), HTTP errors included."""
    request = urllib.request.Request(base + path, data=body, method=method)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def call_json(base: str, method: str, path: str, key: str | None = None, **kw: Any) -> Any:
    """A request whose answer must be JSON; (status, parsed body)."""
    headers = dict(kw.pop("headers", {}))
    if key:
        headers["Api-Key"] = key
    status, _headers, raw = call(base, method, path, headers=headers, **kw)
    return status, json.loads(raw) if raw else None


def multipart(data: bytes, filename: str = "image.png") -> tuple[bytes, str]:
    """A multipart body with one ``filedata`` file; (body, Content-Type)."""
    boundary = "cropstack-ops-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="filedata"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    )
    return head.encode() + data + f"\r\n--{boundary}--\r\n".encode(), (
        f"multipart/form-data; boundary={boundary}"
    )


def upload(base: str, key: str, org: str, data: bytes, filename: str = "image.png") -> str:
    """Upload ``data`` to ``org``; the new image's hash (asserts a 200)."""
    body, content_type = multipart(data, filename)
    status, answer = call_json(
        base, "POST", f"/sourceimages/{org}", key, body=body,
        headers={"Content-Type": content_type},
    )  # fmt: skip
    assert status == 200, answer
    return answer["items"][0]["hash"]
